"""The fixed-step switch and the single-optimizer policy, on a real model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import FixedSwitch, Policy, load_policy


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=g)
    y = (x[:, 0] > 0).long()
    return x, y


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))


def spec(switch):
    return {"type": "switch", "phase1": {"name": "adam", "lr": 1e-2}, "phase2": {"name": "sgdm", "lr": 0.05},
            "switch": switch}


def test_switch_at_step_n():
    x, y = data()
    stepper = Policy.from_spec(spec({"at": 4})).build(model(), nn.functional.cross_entropy)
    reports = [stepper.step(x, y) for _ in range(8)]
    assert [r.optimizer for r in reports] == ["adam"] * 4 + ["sgdm"] * 4
    assert [r.switched for r in reports] == [False] * 4 + [True] + [False] * 3
    ev = reports[4].events[0]
    assert (ev.step, ev.kind, ev.detail["from"], ev.detail["to"]) == (5, "switch", "adam", "sgdm")
    assert reports[4].lr == 0.05 and reports[0].lr == 1e-2


def test_switch_at_zero_and_never():
    x, y = data()
    s0 = Policy.from_spec(spec({"at": 0})).build(model(), nn.functional.cross_entropy)
    assert s0.step(x, y).optimizer == "sgdm"
    never = Policy.from_spec(spec("never")).build(model(), nn.functional.cross_entropy)
    assert {never.step(x, y).optimizer for _ in range(5)} == {"adam"}


def test_switch_at_epoch_boundary():
    x, y = data()
    stepper = Policy.from_spec(spec({"at": 2, "unit": "epoch"})).build(model(), nn.functional.cross_entropy)
    names = []
    for epoch in (1, 2, 3):
        for _ in range(3):
            names.append(stepper.step(x, y).optimizer)
        stepper.end_epoch(epoch, 0.0)
    assert names == ["adam"] * 6 + ["sgdm"] * 3


def test_state_dict_resumes_identically_across_the_switch():
    x, y = data()
    pol = Policy.from_spec(spec({"at": 3}))
    m1 = model()
    s1 = pol.build(m1, nn.functional.cross_entropy)
    for _ in range(2):
        s1.step(x, y)
    m2 = model()
    m2.load_state_dict(m1.state_dict())
    s2 = pol.build(m2, nn.functional.cross_entropy)
    s2.load_state_dict(s1.state_dict())
    for _ in range(4):
        r1, r2 = s1.step(x, y), s2.step(x, y)
        assert r1.optimizer == r2.optimizer and r1.loss == r2.loss
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_single_policy_reduces_loss():
    x, y = data()
    stepper = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.1}}).build(
        model(), nn.functional.cross_entropy)
    losses = [stepper.step(x, y).loss for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


def test_policy_file_errors_name_file_key_rule_value(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("policy:\n  type: switch\n  phase1: {name: adam}\n  phase2: {name: sgdm, momentum: 2}\n"
                 "  switch: {at: 3}\n")
    with pytest.raises(ConfigError) as exc:
        load_policy(p)
    msg = str(exc.value)
    assert str(p) in msg and "policy.phase2" in msg and "momentum must be in [0, 1)" in msg and "2" in msg
    p.write_text("policy: {type: single, optimizer: {name: sgd}}\nextra: 1\n")
    with pytest.raises(ConfigError, match="extra: unknown key"):
        load_policy(p)


def test_shipped_quickstart_policy_loads():
    from tests._helpers import ROOT

    pol = load_policy(ROOT / "policies" / "quickstart_switch.yaml")
    assert pol.optimizer_names() == ["adam", "sgdm"] and pol.spec.switch == FixedSwitch(at=100, unit="step")
