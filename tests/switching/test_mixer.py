"""Mixer: the adaptive switcher on scripted losses, the corrector's fused update, memory release, resume."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import AdaptiveSwitch, Corrector, OptimizerSpec, Policy
from hyperswitch.switching.switcher import Switcher

# The adaptive rule (switcher.py's docstring): r_t = |L[t-1] - L[t]| / |L[t-1]|; the rule fires on the observation
# where the mean of the last K rates is first below theta (strictly), and the next update is phase 2's first.
# unit step: L are the updates' mini-batch losses; unit epoch: the epochs' mean losses (3 updates per epoch here).
# Each case: its losses, the observation that fires (step or epoch; None: never), the mean that fires it and the
# switch step (the first phase-2 update), all worked out by hand in the comment above it.
ADAPTIVE_CASES = [
    # r = 0.5, 0.2, 0.05 -> K=1: 0.05 < 0.1 at step 4 -> switch at update 5
    pytest.param("step", 0.1, 1, [1.0, 0.5, 0.4, 0.38, 0.37, 0.36], 4, 0.05, 5, id="step-K1-fires-at-4"),
    # r = 0.2, 0.1, 0.02/0.72 = 0.02778, 0.01/0.7 = 0.01429 -> K=3 means: step 4 (0.2 + 0.1 + 0.02778)/3 = 0.10926
    # (not below 0.1), step 5 (0.1 + 0.02778 + 0.01429)/3 = 0.04735 -> switch at update 6
    pytest.param("step", 0.1, 3, [1.0, 0.8, 0.72, 0.7, 0.69, 0.68, 0.67], 5, (0.1 + 0.02 / 0.72 + 0.01 / 0.7) / 3, 6,
                 id="step-K3-fires-at-5"),
    # r = 0.5, 0.5, 0.5, 0.2, 0.05, 0.005/0.19 = 0.02632 -> K=2 means 0.5, 0.5, 0.35, 0.125, then step 7
    # (0.05 + 0.02632)/2 = 0.03816 < 0.05 -> switch at update 8
    pytest.param("step", 0.05, 2, [2.0, 1.0, 0.5, 0.25, 0.2, 0.19, 0.185, 0.18], 7, (0.05 + 0.005 / 0.19) / 2, 8,
                 id="step-K2-fires-at-7"),
    # a rise is a change too (|.|): r = 0.1, 0.45/0.9 = 0.5, 0.15/1.35 = 0.1111, 0.01/1.2 = 0.00833 -> K=2 means
    # 0.3, 0.3056, then step 5 (0.1111 + 0.00833)/2 = 0.05972 < 0.2 -> switch at update 6 (signed rates: step 3)
    pytest.param("step", 0.2, 2, [1.0, 0.9, 1.35, 1.2, 1.19, 1.18], 5, (0.15 / 1.35 + 0.01 / 1.2) / 2, 6,
                 id="step-K2-rise-counts-fires-at-5"),
    # a steady 10% fall: every r = 0.1, never below 0.05 (19 rates: 17 full windows of 3)
    pytest.param("step", 0.05, 3, [0.9**t for t in range(20)], None, None, None, id="step-K3-never"),
    # r = 0.5 exactly, every step: equal to theta is not below it
    pytest.param("step", 0.5, 1, [1.0, 0.5, 0.25, 0.125, 0.0625], None, None, None, id="step-K1-equal-never"),
    # epoch means: r = 0.5, 0.1, 0.01/0.45 = 0.02222 -> K=2 means 0.3 (epoch 3), then epoch 4 (0.1 + 0.02222)/2
    # = 0.06111 < 0.1 -> after update 12 -> switch at update 13
    pytest.param("epoch", 0.1, 2, [1.0, 0.5, 0.45, 0.44, 0.43], 4, (0.1 + 0.01 / 0.45) / 2, 13,
                 id="epoch-K2-fires-at-4"),
    # epoch means: r = 0.02/2 = 0.01 < 0.05 at epoch 2 -> after update 6 -> switch at update 7
    pytest.param("epoch", 0.05, 1, [2.0, 1.98, 1.5, 1.0], 2, 0.01, 7, id="epoch-K1-fires-at-2"),
    # epoch means fall 20% each epoch: r = 0.2 always, never below 0.1
    pytest.param("epoch", 0.1, 2, [1.0, 0.8, 0.64, 0.512, 0.4096], None, None, None, id="epoch-K2-never"),
]
PER_EPOCH = 3  # updates per epoch in the epoch cases


def scripted_updates(unit, losses):
    """(update, mini-batch loss, epoch mean or None) for each update: unit step, one update per loss; unit epoch,
    PER_EPOCH updates per epoch whose mini-batch losses are all the epoch's mean (constant, so that a rule that
    looked at mini-batch losses would see rates of 0 and fire at once)."""
    if unit == "step":
        return [(t, loss, None) for t, loss in enumerate(losses, start=1)]
    out = []
    for e, mean in enumerate(losses, start=1):
        out += [(PER_EPOCH * (e - 1) + i, mean, mean if i == PER_EPOCH else None) for i in range(1, PER_EPOCH + 1)]
    return out


@pytest.mark.parametrize(("unit", "theta", "K", "losses", "fires", "value", "switch_step"), ADAPTIVE_CASES)
def test_adaptive_switch_fires_where_worked_out_by_hand(unit, theta, K, losses, fires, value, switch_step):
    """The Switcher alone, then the switch policy's stepper fed the same losses: the switch lands on the update
    computed by hand, the report says where the rule fired and on what mean, and a rule that never fires says so."""
    sw = Switcher(AdaptiveSwitch(theta=theta, K=K, unit=unit))
    fired_after = None  # (update, epoch or None) of the observation that fired the rule
    for step, loss, epoch_mean in scripted_updates(unit, losses):
        due = sw.observe_step(step, loss)
        if epoch_mean is not None:
            due = sw.observe_epoch(step // PER_EPOCH, epoch_mean, step=step)
        if due:
            fired_after = (step, step // PER_EPOCH if unit == "epoch" else None)
            break
    report = sw.report()
    if fires is None:
        assert fired_after is None and report["fired"] is False and sw.score is None
        n_rates = len(losses) - 1
        assert report["checks"] == n_rates - K + 1  # every full window was checked, none fired
    else:
        index = fired_after[1] if unit == "epoch" else fired_after[0]
        assert index == fires
        assert fired_after[0] + 1 == switch_step
        assert report["fired"] is True and report["at_step"] == switch_step - 1
        assert report.get("at_epoch") == (fires if unit == "epoch" else None)
        assert sw.score == pytest.approx(value, rel=1e-12) and sw.score < theta

    # The same losses through the switch policy's stepper (float64, so each loss is exactly the one written).
    policy = Policy.from_spec({"type": "switch", "phase1": {"name": "sgd", "lr": 0.1},
                               "phase2": {"name": "sgdm", "lr": 0.1},
                               "switch": {"theta": theta, "K": K, "unit": unit}})
    updates = scripted_updates(unit, losses)
    script = iter([loss for _, loss, _ in updates])

    def scripted_loss(outputs, targets):  # the model's output times 0 (a gradient of 0) plus the next loss
        return outputs.sum() * 0.0 + torch.tensor(next(script), dtype=torch.float64)

    stepper = policy.build(nn.Linear(2, 2).double(), scripted_loss)
    x, y = torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    names, switch_events = [], []
    for step, loss, epoch_mean in updates:
        report_t = stepper.step(x, y)
        assert report_t.step == step and report_t.loss == loss
        names.append(report_t.optimizer)
        switch_events += [e.step for e in report_t.events if e.kind == "switch"]
        if epoch_mean is not None:
            stepper.end_epoch(step // PER_EPOCH, epoch_mean)
    n = len(updates)
    if switch_step is None:
        assert names == ["sgd"] * n and switch_events == [] and "switch_step" not in stepper.switch_report()
    else:
        assert names == ["sgd"] * (switch_step - 1) + ["sgdm"] * (n - switch_step + 1)
        assert switch_events == [switch_step] and stepper.switch_report()["switch_step"] == switch_step


def test_smaller_theta_switches_later():
    losses = [1.0 / t for t in range(1, 2000)]  # rate ~ 1/t
    steps = []
    for theta in (0.05, 0.01, 0.002):
        sw = Switcher(AdaptiveSwitch(theta=theta, K=5, unit="step"))
        steps.append(next(s for s, loss in enumerate(losses, 1) if sw.observe_step(s, loss)))
    assert steps == sorted(steps) and len(set(steps)) == 3


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
    assert spec.switch == AdaptiveSwitch(theta=0.001, K=5, unit="step")
    assert spec.corrector == Corrector(T1=10, mu=0.8, beta=0.9)
    assert spec.phase1 == OptimizerSpec("kfac", {"inverse": "cholesky"}) and spec.phase2 == OptimizerSpec("sgdm")
    assert spec.as_dict() == {"type": "mixer", "phase1": {"name": "kfac", "inverse": "cholesky"},
                              "phase2": {"name": "sgdm"}, "switch": {"theta": 0.001, "K": 5, "unit": "step"},
                              "corrector": {"T1": 10, "mu": 0.8, "beta": 0.9}}


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


@pytest.mark.parametrize("fit", ["symmetric", "one_sided"])
def test_the_gen_lr_rule_passes_its_fit_on(fit):
    pol = Policy.from_spec({"type": "single", "optimizer": {"name": "sgd", "lr": 0.05},
                            "lr_rule": {"name": "gen", "fit": fit, "phi": 2}})
    stepper = pol.build(model(), nn.functional.cross_entropy)
    assert type(stepper.optimizer).__name__ == "GeN" and stepper.optimizer.param_groups[0]["fit"] == fit


def test_switcher_never_fires_before_K_rates_exist():
    for K in (1, 4, 7):
        sw = Switcher(AdaptiveSwitch(theta=0.5, K=K, unit="step"))
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
