"""transfer: the pre-trained backbone (deterministic, cached, not the trial's), head-only vs full tuning, the
target task's rows, and the transferability numbers that IOMT's omega_t takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads.digits import digits_split
from hyperswitch.workloads.transfer import pretrained, transferability

SPEC = {"name": "transfer", "hidden": 32, "pretrain_epochs": 10}


def test_pretraining_is_deterministic_cached_and_leaves_the_callers_rng_alone():
    pretrained.cache_clear()
    torch.manual_seed(5)
    expect = torch.rand(3)
    torch.manual_seed(5)
    state, acc = pretrained(32, 0.2, 0, 10)
    assert torch.equal(torch.rand(3), expect)
    assert pretrained(32, 0.2, 0, 10)[0] is state  # cached in-process
    pretrained.cache_clear()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a trial with 2 CPUs gets the very same backbone
    try:
        again, acc2 = pretrained(32, 0.2, 0, 10)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert acc2 == acc > 0.9  # digits 0-4 are learnt
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_backbone_is_the_pretrained_one_whatever_the_seed_head_is_the_seeds():
    state, _ = pretrained(32, 0.2, 0, 10)
    a, b = build_workload(SPEC, seed=0), build_workload(SPEC, seed=1)
    for k, v in a.model.backbone.state_dict().items():
        assert torch.equal(v, state["backbone." + k]) and torch.equal(v, b.model.backbone.state_dict()[k])
    assert not torch.equal(a.model.head.weight, b.model.head.weight)
    assert a.model.head.out_features == 5
    assert list(a.model.modules())[-1] is a.model.head  # the last Linear: what IOMT's layers: last compresses


def test_target_rows_are_digits_5_to_9_relabelled():
    wl = build_workload(SPEC, seed=0)
    xtr, ytr, xval, yval = digits_split(0.2, 0)
    t = ytr >= 5
    np.testing.assert_array_equal(wl.train.x.numpy(), xtr[t])
    np.testing.assert_array_equal(wl.train.y.numpy(), ytr[t] - 5)
    np.testing.assert_array_equal(wl.val_y.numpy(), yval[yval >= 5] - 5)
    half = build_workload({**SPEC, "dataset_fraction": 0.5}, seed=0)
    assert len(half.train.y) == round(0.5 * t.sum())


@pytest.mark.parametrize("mode", ["head", "full"])
def test_head_mode_trains_only_the_head_full_mode_everything(mode):
    spec = {**SPEC, "mode": mode}
    wl = build_workload(spec, seed=0)
    trainable = {n for n, p in wl.model.named_parameters() if p.requires_grad}
    assert trainable == ({"head.weight", "head.bias"} if mode == "head"
                         else {n for n, _ in wl.model.named_parameters()})
    before = {k: v.clone() for k, v in wl.model.state_dict().items()}
    policy = Policy.from_spec({"type": "single", "optimizer": {"name": "kfac", "lr": 0.05}})
    stepper = policy.build(wl.model, wl.loss_fn)
    assert len(stepper.optimizer.layers) == (1 if mode == "head" else 3)
    for xb, yb in wl.train:
        stepper.step(xb, yb)
    after = wl.model.state_dict()
    backbone_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert backbone_moved == (mode == "full")
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert wl.evaluate()["val_accuracy"] > 0.5


def test_transferability_numbers():
    got = transferability(SPEC)
    state, _ = pretrained(32, 0.2, 0, 10)
    wl = build_workload(SPEC, seed=0)
    wl.model.head.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]})  # the source head
    with torch.no_grad():
        p_tr = torch.softmax(wl.model(wl.train.x).double(), 1).numpy()
        p_val = torch.softmax(wl.model(wl.val_x).double(), 1).numpy()
    y = wl.train.y.numpy()
    # omega_p by explicit loops: P(y | z) = sum_{i: y_i = y} p_iz / sum_i p_iz; predict argmax_y sum_z P(y|z) p_z.
    cond = np.array([[p_tr[y == c, z].sum() / p_tr[:, z].sum() for z in range(5)] for c in range(5)])
    pred = [max(range(5), key=lambda c, p=p: sum(cond[c, z] * p[z] for z in range(5))) for p in p_val]
    assert got["omega_p"] == pytest.approx(np.mean(np.array(pred) == wl.val_y.numpy()))
    # LEEP by its definition, with the same conditional.
    eep = [sum(cond[y[i], z] * p_tr[i, z] for z in range(5)) for i in range(len(y))]
    assert got["leep"] == pytest.approx(float(np.mean(np.log(eep))), rel=1e-9)
    assert got["source_accuracy"] > 0.9
    random_backbone = transferability({**SPEC, "pretrain_epochs": 0})
    assert got["omega_p"] > random_backbone["omega_p"] + 0.1 and got["leep"] > random_backbone["leep"]
    assert 0.0 <= got["omega_p"] <= 1.0 and np.isfinite(got["logme"])


def test_iomt_with_transferability_runs_on_transfer():
    t = transferability(SPEC)
    policy = Policy.from_spec({"type": "iomt", "tau": 5, "n_ini": 2, "use_transferability": True,
                               "omega_p": t["omega_p"], "logme": t["logme"], "leep": t["leep"]})
    res = train_run({**SPEC, "mode": "head"}, policy, {"steps": 30, "eval_every": 30}, seed=0)
    assert res.status == "completed" and sum(e["kind"] == "iomt_cycle" for e in res.events) == 6
    assert res.summary["val_accuracy"] > 0.4


@pytest.mark.parametrize(("change", "key", "rule"), [
    ({"mode": "lora"}, "workload.mode", "must be one of head, full"),
    ({"pretrain_epochs": -1}, "workload.pretrain_epochs", "must be >= 0"),
    ({"hidden": 0}, "workload.hidden", "must be >= 1"),
])
def test_bad_options(change, key, rule):
    with pytest.raises(ConfigError) as err:
        validate_workload({**SPEC, **change})
    assert err.value.key == key and rule in err.value.rule and err.value.value == next(iter(change.values()))
