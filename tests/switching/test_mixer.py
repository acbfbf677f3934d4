"""Mixer: the adaptive switcher on scripted losses, the corrector's fused update, memory release, resume."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.switching.switcher import Switcher


def first_switch(losses, theta, K):
    """Independent reference: the first t (1-based) at which mean of the last K rates < theta."""
    rates = []
    for t in range(1, len(losses)):
        rates.append(abs(losses[t - 1] - losses[t]) / max(abs(losses[t - 1]), 1e-12))
        if len(rates) >= K and sum(rates[-K:]) / K < theta:
            return t + 1  # losses[t] is update t+1's loss
    return None


@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("theta", [0.05, 0.01, 0.001])
def test_switcher_fires_at_first_step_condition_holds(theta, K):
    g = torch.Generator().manual_seed(K)
    losses = [float(2.0 * 0.9 ** t + 0.01 * torch.rand(1, generator=g)) for t in range(120)]
    expected = first_switch(losses, theta, K)
    sw = Switcher({"theta": theta, "K": K, "unit": "step"})
    fired = None
    for step, loss in enumerate(losses, start=1):
        if sw.observe_step(step, loss):
            fired = step
            break
    assert fired == expected
    if expected is not None:
        assert sw.score < theta


def test_smaller_theta_switches_later():
    losses = [1.0 / t for t in range(1, 2000)]  # rate ~ 1/t
    steps = []
    for theta in (0.05, 0.01, 0.002):
        sw = Switcher({"theta": theta, "K": 5, "unit": "step"})
        steps.append(next(s for s, loss in enumerate(losses, 1) if sw.observe_step(s, loss)))
    assert steps == sorted(steps) and len(set(steps)) == 3


def test_epoch_unit_uses_epoch_means():
    sw = Switcher({"theta": 0.1, "K": 2, "unit": "epoch"})
    assert not sw.observe_step(1, 5.0)  # steps are ignored with unit epoch
    means = [1.0, 0.5, 0.45, 0.44]  # rates 0.5, 0.1, 0.022 -> mean of last 2 below 0.1 after epoch 4
    fired = [sw.observe_epoch(e, m) for e, m in enumerate(means, start=1)]
    assert fired == [False, False, False, True]


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))


def mixer(**kw):
    spec = {"type": "mixer", "phase1": {"name": "kfac", "lr": 0.05, "damping": 0.1, "inverse_interval": 1},
            "phase2": {"name": "sgdm", "lr": 0.05, "momentum": 0.9}, "switch": {"at": 3},
            "corrector": {"T1": 4, "mu": 0.8, "beta": 0.9}}
    spec.update(kw)
    return Policy.from_spec(spec)


def test_mixer_defaults_are_the_papers():
    spec = Policy.from_spec({"type": "mixer"}).spec
    assert spec["switch"] == {"theta": 0.001, "K": 5, "unit": "step"}
    assert spec["corrector"] == {"T1": 10, "mu": 0.8, "beta": 0.9}
    assert spec["phase1"]["name"] == "kfac" and spec["phase1"]["inverse"] == "cholesky"
    assert spec["phase2"]["name"] == "sgdm"


def test_corrector_update_is_the_fused_momentum_formula():
    x, y = data()
    m = model()
    stepper = mixer().build(m, nn.functional.cross_entropy)
    for _ in range(3):
        assert stepper.step(x, y).optimizer == "kfac"
    v = [torch.zeros_like(p) for p in m.parameters()]
    for k in range(4):
        # Reference, computed outside the stepper: g, the frozen preconditioner's direction, v, w.
        ref = copy.deepcopy(m)
        loss = nn.functional.cross_entropy(ref(x), y)
        grads = torch.autograd.grad(loss, list(ref.parameters()))
        for p, g in zip(m.parameters(), grads, strict=True):
            p.grad = g.clone()
        second = stepper.opt1.precondition_grads()
        expected = []
        for i, (p, g) in enumerate(zip(m.parameters(), grads, strict=True)):
            v[i] = 0.9 * v[i] + 0.8 * g + 0.2 * second[p]
            expected.append(p.detach() - 0.05 * v[i])
        report = stepper.step(x, y)
        assert report.optimizer == "fusion" and report.lr == 0.05
        for p, e in zip(m.parameters(), expected, strict=True):
            torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)
        assert report.switched == (k == 0)
    assert [e.kind for e in report.events] == ["fusion_end"]
    assert stepper.step(x, y).optimizer == "sgdm"


def test_memory_falls_to_first_order_after_fusion():
    x, y = data()
    m = model()
    stepper = mixer().build(m, nn.functional.cross_entropy)
    seen = {}
    for _ in range(12):
        r = stepper.step(x, y)
        seen.setdefault(r.optimizer, []).append(stepper.state_bytes())
    param_bytes = sum(p.numel() * p.element_size() for p in m.parameters())
    assert max(seen["kfac"]) > 2 * param_bytes  # factors + caches + momentum
    assert seen["sgdm"][-1] == param_bytes  # just the momentum buffers: K-FAC state freed
    assert stepper.opt1 is None
    # The corrector's velocity seeds SGD's momentum buffer.
    assert all("momentum_buffer" in stepper.opt2.state[p] for p in m.parameters())


def test_ablation_forms():
    x, y = data()
    never = mixer(switch="never").build(model(), nn.functional.cross_entropy)
    assert {never.step(x, y).optimizer for _ in range(6)} == {"kfac"}
    direct = mixer(corrector={"T1": 0}).build(model(), nn.functional.cross_entropy)
    assert [direct.step(x, y).optimizer for _ in range(5)] == ["kfac"] * 3 + ["sgdm"] * 2


@pytest.mark.parametrize("save_at", [2, 5, 9])  # in phase 1, mid-fusion, in phase 2
def test_resume_mid_run_is_identical(save_at, tmp_path):
    x, y = data()
    pol = mixer()
    m1 = model()
    s1 = pol.build(m1, nn.functional.cross_entropy)
    for _ in range(save_at):
        s1.step(x, y)
    torch.save({"model": m1.state_dict(), "stepper": s1.state_dict()}, tmp_path / "ck.pt")
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    m2 = model()
    m2.load_state_dict(ck["model"])
    s2 = pol.build(m2, nn.functional.cross_entropy)
    s2.load_state_dict(ck["stepper"])
    for _ in range(12 - save_at):
        r1, r2 = s1.step(x, y), s2.step(x, y)
        assert (r1.optimizer, r1.loss, [e.kind for e in r1.events]) == (r2.optimizer, r2.loss,
                                                                         [e.kind for e in r2.events])
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_corrector_needs_a_preconditioner():
    with pytest.raises(ConfigError, match="policy.corrector.T1: the corrector needs a phase-1 optimizer"):
        Policy.from_spec({"type": "switch", "phase1": {"name": "adam"}, "phase2": {"name": "sgdm"},
                          "switch": {"at": 5}, "corrector": {"T1": 3}})
    with pytest.raises(ConfigError, match="policy.switch.theta: cannot be combined"):
        Policy.from_spec({"type": "mixer", "switch": {"at": 5, "theta": 0.1}})
    with pytest.raises(ConfigError, match=r"policy.corrector.mu: must be <= 1.0 \(got 1.5\)"):
        Policy.from_spec({"type": "mixer", "corrector": {"mu": 1.5}})


def test_gen_lr_rule_wraps_each_phase():
    x, y = data()
    pol = Policy.from_spec({"type": "mixer", "phase1": {"name": "kfac", "lr": 0.05, "damping": 0.1},
                            "phase2": {"name": "sgd", "lr": 0.05}, "switch": {"at": 4}, "corrector": {"T1": 0},
                            "lr_rule": {"name": "gen", "phi": 2, "gamma": 0.5}})
    stepper = pol.build(model(), nn.functional.cross_entropy)
    lrs = [stepper.step(x, y).lr for _ in range(10)]
    assert type(stepper.opt2).__name__ == "GeN" and stepper.opt2.base.__class__ is torch.optim.SGD
    assert len(set(lrs)) > 2  # GeN moved the learning rate


def test_switcher_never_fires_before_K_rates_exist():
    for K in (1, 4, 7):
        sw = Switcher({"theta": 0.5, "K": K, "unit": "step"})
        fired = next(s for s in range(1, 50) if sw.observe_step(s, 1.0))  # rates are 0 from the 2nd loss on
        assert fired == K + 1  # K rates need K + 1 losses


def _loss_jump(losses, s):
    """Mean loss over the 5 updates from the switch on minus the 5 before, and the step-to-step noise
    (standard deviation of successive differences over the 30 updates before the switch)."""
    import statistics

    pre = losses[s - 31:s - 1]
    noise = statistics.pstdev([b - a for a, b in zip(pre, pre[1:], strict=False)])
    return statistics.mean(losses[s - 1:s + 4]) - statistics.mean(losses[s - 6:s - 1]), noise


def test_mixer_on_digits_switches_and_keeps_first_order_accuracy():
    from hyperswitch.train.loop import train_run

    torch.set_num_threads(1)
    base = {"type": "mixer", "phase1": {"name": "kfac", "lr": 0.05, "damping": 0.1},
            "phase2": {"name": "sgdm", "lr": 0.05, "momentum": 0.9},
            "switch": {"theta": 0.05, "K": 2, "unit": "epoch"}}
    train = {"steps": 900, "eval_every": 100}
    sgdm = train_run({"name": "digits_mlp"}, Policy.from_spec({"type": "single", "optimizer": base["phase2"]}),
                     train, seed=0)
    runs = {T1: train_run({"name": "digits_mlp"}, Policy.from_spec({**base, "corrector": {"T1": T1}}), train, seed=0)
            for T1 in (10, 0)}
    on = runs[10]
    s = on.summary["switch_step"]
    assert s is not None and 100 < s < 900
    names = [r["optimizer"] for r in on.steps]
    assert names[s - 2] == "kfac" and names[s - 1:s + 9] == ["fusion"] * 10 and names[s + 9] == "sgdm"
    assert on.summary["val_accuracy"] >= sgdm.summary["val_accuracy"] - 0.01
    jump, noise = _loss_jump([r["loss"] for r in on.steps], s)
    assert abs(jump) <= 3 * noise, (jump, noise)
    # Without the corrector (shown side by side in docs/benchmarks.md): same switch step, direct to SGD.
    off = runs[0]
    assert off.summary["switch_step"] == s and [r["optimizer"] for r in off.steps][s - 1] == "sgdm"
