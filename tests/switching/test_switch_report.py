"""A switch rule says whether it fired and what it saw (issue 12, item 3).

``hyperswitch train policies/mixer_paper.yaml`` (000's theta 0.001, K 5) never switches on digits_mlp; its text
and JSON output say so with the rule's lowest statistic and where, which the tests recompute from the run's own
per-step losses. ``policies/mixer_digits.yaml`` switches there, at the step and on the value the rule gives
when recomputed from the epochs' mean losses.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections import defaultdict
from contextlib import redirect_stdout

import pytest
import torch
from torch import nn

from hyperswitch import cli
from hyperswitch.switching import AdaptiveSwitch, Policy, explain_switch, load_policy
from hyperswitch.switching.switcher import Switcher
from hyperswitch.train import driver
from tests._helpers import ROOT

NUM = r"([0-9.e+-]+)"


def window_means(losses, K):
    """Independent reference: [(i, mean of the last K rates)] for every full window, i 1-based in ``losses``,
    rate_i = |L[i-1] - L[i]| / max(|L[i-1]|, 1e-12)."""
    out, rates = [], []
    for i in range(1, len(losses)):
        rates.append(abs(losses[i - 1] - losses[i]) / max(abs(losses[i - 1]), 1e-12))
        if len(rates) >= K:
            out.append((i + 1, sum(rates[-K:]) / K))
    return out


def roundtrip(state):
    """Through a checkpoint file as runs write and read them (torch.save, weights_only load)."""
    d = driver.save_state({"state": state})
    try:
        return driver.load_state(d)["state"]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def train_cli(policy, *args):
    """``hyperswitch train POLICY ARGS`` printed as text and as ``--json``, from one training run: the real
    ``run_job`` is called once and its result (with the per-step records the CLI does not print) kept."""
    runs = []

    def run_job(*a, **k):
        if not runs:
            runs.append(real(*a, **k))
        return runs[0]

    real = driver.run_job
    outputs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "run_job", run_job)
        for extra in ((), ("--json",)):
            buf = io.StringIO()
            with redirect_stdout(buf):
                assert cli.main(["train", str(ROOT / "policies" / policy), *args, *extra]) == 0
            outputs.append(buf.getvalue())
    return outputs[0], json.loads(outputs[1]), runs[0]


def test_mixer_paper_says_why_it_does_not_switch():
    text, js, run = train_cli("mixer_paper.yaml", "--steps", "100", "--seed", "0")
    losses = [r["loss"] for r in run["steps"]]
    assert [r["step"] for r in run["steps"]] == list(range(1, 101))
    means = window_means(losses, 5)  # the rule on mini-batch losses (unit step), K 5
    assert len(means) == 95 and min(m for _, m in means) >= 0.001  # it really never fired
    low_step, low = min(means, key=lambda t: t[1])

    sw = js["switch"]
    assert sw["fired"] is False and sw["rule"] == "adaptive" and sw["unit"] == "step"
    assert (sw["K"], sw["threshold"], sw["checks"]) == (5, 0.001, 95)
    assert sw["closest"] == pytest.approx(low, rel=1e-12) and sw["closest_at_step"] == low_step
    assert sw["last"] == pytest.approx(means[-1][1], rel=1e-12) and sw["last_at_step"] == 100
    assert "switch_step" not in sw and js["summary"]["switch_step"] is None
    assert not [e for e in js["events"] if e["kind"] == "switch"]

    m = re.search(r"no switch: the mean loss-change rate over the last K=5 steps stayed >= θ=0\.001 in all 95 "
                  rf"checks; lowest {NUM} at step (\d+), last {NUM} at step 100", text)
    assert m, text
    assert float(m.group(1)) == pytest.approx(low, rel=5e-3) and int(m.group(2)) == low_step
    assert float(m.group(3)) == pytest.approx(means[-1][1], rel=5e-3)


def test_mixer_digits_switches_where_the_rule_says():
    policy = load_policy(ROOT / "policies" / "mixer_digits.yaml")
    rule = policy.spec.switch
    assert isinstance(rule, AdaptiveSwitch)
    theta, K = rule.theta, rule.K
    assert rule.unit == "epoch" and policy.train["steps"] == 300
    text, js, run = train_cli("mixer_digits.yaml", "--steps", "115", "--seed", "0")
    rows = run["steps"]
    by_epoch = defaultdict(list)
    for r in rows:
        by_epoch[r["epoch"]].append(r)
    size = len(by_epoch[1])
    full = [e for e in sorted(by_epoch) if len(by_epoch[e]) == size]
    means = [sum(r["loss"] for r in by_epoch[e]) / size for e in full]  # the rule's input: epoch mean losses
    windows = window_means(means, K)  # (epoch, statistic)
    fired_epoch, value = next((e, v) for e, v in windows if v < theta)
    before = [v for e, v in windows if e < fired_epoch]
    at_step = by_epoch[fired_epoch][-1]["step"]

    sw = js["switch"]
    assert sw["fired"] is True and sw["unit"] == "epoch" and (sw["K"], sw["threshold"]) == (K, theta)
    assert sw["value"] == pytest.approx(value, rel=1e-12) and sw["value"] < theta
    assert (sw["at_epoch"], sw["at_step"], sw["switch_step"]) == (fired_epoch, at_step, at_step + 1)
    assert sw["checks"] == len(before) + 1 and min(before) >= theta
    assert (fired_epoch, at_step + 1) == (5, 111)  # what the README says for seed 0
    switch = [e for e in js["events"] if e["kind"] == "switch"]
    assert [e["step"] for e in switch] == [at_step + 1] == [js["summary"]["switch_step"]]
    assert json.loads(switch[0]["detail"])["score"] == pytest.approx(value, rel=1e-12)
    assert {r["optimizer"] for r in rows if r["step"] <= at_step} == {"kfac"}
    assert rows[at_step]["optimizer"] == "fusion"  # step at_step + 1: the first update after the switch

    m = re.search(rf"switched kfac -> sgdm at step (\d+): after epoch (\d+) \(step (\d+)\) the mean loss-change "
                  rf"rate over the last K={K} epochs was {NUM} < θ=0\.35", text)
    assert m, text
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (at_step + 1, fired_epoch, at_step)
    assert float(m.group(4)) == pytest.approx(value, rel=5e-3)


def test_switcher_report_survives_its_state_dict():
    losses = [1.0, 0.5, 0.45, 0.44, 0.43, 0.6, 0.59]
    sw = Switcher(AdaptiveSwitch(theta=0.01, K=2, unit="step"))
    for step, loss in enumerate(losses[:4], start=1):
        sw.observe_step(step, loss)
    copy = Switcher(AdaptiveSwitch(theta=0.01, K=2, unit="step"))
    copy.load_state_dict(roundtrip(sw.state_dict()))
    assert copy.report() == sw.report()
    for step, loss in enumerate(losses[4:], start=5):
        assert copy.observe_step(step, loss) == sw.observe_step(step, loss)
    ref = window_means(losses, 2)
    low_step, low = min(ref, key=lambda t: t[1])
    rep = copy.report()
    assert rep == sw.report() and rep["fired"] is False and rep["checks"] == len(ref)
    assert (rep["closest"], rep["closest_at_step"]) == (pytest.approx(low), low_step)
    # a checkpoint written before the report existed still loads (what it saw before is unknown)
    old = Switcher(AdaptiveSwitch(theta=0.01, K=2, unit="step"))
    old.load_state_dict({"prev": 0.44, "rates": [0.1, 0.02], "due": False, "score": None})
    assert old.report()["checks"] == 0 and old.report()["closest"] is None
    assert "never checked" in explain_switch(Switcher(AdaptiveSwitch(theta=0.1, K=5, unit="step")).report())


def test_stepper_report_is_restored_with_the_policy_state():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 5, generator=g), (torch.randn(32, generator=g) > 0).long()
    spec = {"type": "switch", "phase1": {"name": "adam", "lr": 1e-2}, "phase2": {"name": "sgdm", "lr": 0.05},
            "switch": {"theta": 1e-9, "K": 3}}

    def build():
        torch.manual_seed(0)
        return Policy.from_spec(spec).build(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)),
                                            nn.functional.cross_entropy)

    s1 = build()
    for _ in range(6):
        s1.step(x, y)
    s2 = build()
    s2.load_state_dict(roundtrip(s1.state_dict()))
    assert s2.switch_report() == s1.switch_report()
    assert s1.switch_report()["checks"] == 3 and s1.switch_report()["fired"] is False
    fixed = Policy.from_spec({**spec, "switch": {"at": 2}}).build(nn.Linear(5, 2), nn.functional.cross_entropy)
    for _ in range(4):
        fixed.step(x, y)
    rep = fixed.switch_report()
    assert (rep["fired"], rep["at_step"], rep["switch_step"]) == (True, 2, 3)
    assert explain_switch(rep).startswith("switched adam -> sgdm at step 3")


def test_swats_switch_is_an_event_and_a_report():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    stepper = Policy.from_spec({"type": "single", "optimizer": {"name": "swats", "lr": 1e-2, "eps": 0.3}}).build(
        model, nn.functional.cross_entropy)
    reports = [stepper.step(x, y) for _ in range(8)]
    rep = stepper.switch_report()
    assert rep["fired"] is True and rep["rule"] == "swats" and rep["threshold"] == 0.3
    assert stepper.optimizer.param_groups[0]["phase"] == "sgd"
    switched = [r for r in reports if r.switched]
    assert [r.step for r in switched] == [rep["switch_step"]] == [rep["at_step"] + 1]
    assert switched[0].events[0].detail["lr"] == rep["lr"]
    plain = Policy.from_spec({"type": "single", "optimizer": {"name": "swats"}}).build(
        nn.Linear(5, 2), nn.functional.cross_entropy)
    plain.step(x, y)
    assert plain.switch_report()["fired"] is False and "no switch: SWATS" in explain_switch(plain.switch_report())
    assert Policy.from_spec({"type": "single", "optimizer": {"name": "sgd"}}).build(
        nn.Linear(5, 2), nn.functional.cross_entropy).switch_report() is None
