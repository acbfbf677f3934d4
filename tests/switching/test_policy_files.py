"""Every shipped policy file loads, validates and trains digits_mlp; Mixer's parameters are searchable."""

from __future__ import annotations

import pytest

from hyperswitch.search.space import space_from_text
from hyperswitch.switching import load_policy
from hyperswitch.train.loop import train_run
from tests._helpers import ROOT

POLICY_FILES = sorted((ROOT / "policies").glob("*.yaml"))


def test_the_papers_settings_are_shipped():
    names = {p.stem for p in POLICY_FILES}
    assert {"mixer_paper", "mixer_digits", "gen_sgd", "gen_adamw", "kfac", "shampoo", "ief", "swats", "sgdm",
            "adamw", "iomt_paper", "mixer_gen"} <= names
    paper = load_policy(ROOT / "policies" / "mixer_paper.yaml")
    mixer = paper.spec.as_dict()
    assert (mixer["switch"]["theta"], mixer["switch"]["K"], mixer["corrector"]["T1"], mixer["corrector"]["mu"]) == (
        0.001, 5, 10, 0.8)
    assert "on digits_mlp it does not switch" in paper.description
    # the README's example: the same Mixer with thresholds that switch on digits_mlp (tests/switching/
    # test_switch_report.py runs it), the corrector as the paper's
    digits = load_policy(ROOT / "policies" / "mixer_digits.yaml")
    assert digits.spec.as_dict()["switch"] == {"theta": 0.35, "K": 2, "unit": "epoch"}
    assert {k: digits.spec.as_dict()[k] for k in ("phase1", "phase2", "corrector")} == {
        k: mixer[k] for k in ("phase1", "phase2", "corrector")}
    assert digits.workload["name"] == "digits_mlp" and digits.train["steps"] == 300
    gen = load_policy(ROOT / "policies" / "gen_sgd.yaml").spec.as_dict()["lr_rule"]
    assert (gen["phi"], gen["gamma"]) == (8, 0.9)
    assert load_policy(ROOT / "policies" / "ief.yaml").spec.as_dict()["optimizer"]["damping"] == 1e-7
    combo = load_policy(ROOT / "policies" / "mixer_gen.yaml").spec.as_dict()
    assert combo["type"] == "mixer" and combo["lr_rule"]["name"] == "gen"


def test_top_level_api_is_the_design_contract():
    import hyperswitch

    pol = hyperswitch.load_policy(ROOT / "policies" / "mixer_paper.yaml")
    assert isinstance(pol, hyperswitch.Policy) and pol.type == "mixer"


@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.stem for p in POLICY_FILES])
def test_policy_file_trains_digits(path):
    policy = load_policy(path)
    res = train_run(policy.workload or {"name": "digits_mlp"}, policy, {"steps": 40, "eval_every": 20}, seed=0)
    assert res.status == "completed"
    first = sum(r["loss"] for r in res.steps[:5]) / 5
    last = sum(r["loss"] for r in res.steps[-5:]) / 5
    assert last < first, (first, last)
    assert res.summary["val_accuracy"] > 0.5


def test_mixer_parameters_are_search_parameters(tmp_path):
    text = """\
name: mixer_params
workload: {name: digits_mlp}
policy:
  type: mixer
  phase1: {name: kfac, lr: 0.05, damping: 0.1}
  phase2: {name: sgdm, lr: 0.05}
  switch: {theta: $theta, K: $K}
  corrector: {T1: $T1, mu: $mu}
  lr_rule: {name: gen, phi: $phi, gamma: $gamma}
parameters:
  theta: {type: float, low: 0.0001, high: 0.1, log: true}
  K: {type: int, low: 1, high: 10}
  T1: {type: categorical, choices: [0, 10, 50]}
  mu: {type: float, low: 0.5, high: 0.95}
  phi: {type: categorical, choices: [1, 4, 8]}
  gamma: {type: float, low: 0.5, high: 0.95}
"""
    space = space_from_text(text, str(tmp_path / "m.yaml"))
    assert space.sampled_names == ["theta", "K", "T1", "mu", "phi", "gamma"]
    _, policy = space.instantiate(space.resolve({"theta": 0.01, "K": 3, "T1": 10, "mu": 0.8, "phi": 4,
                                                 "gamma": 0.9}))
    assert policy["switch"] == {"theta": 0.01, "K": 3} and policy["corrector"] == {"T1": 10, "mu": 0.8}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.stem)
def test_load_and_build_leave_the_callers_generator_alone(path):
    """load_policy checks values by building each optimizer on a probe model; the probe draws from a generator of
    its own, so the caller's global CPU generator is the same afterwards (it reseeded it to 0, issue 13). Building
    the stepper for a real model draws nothing either: a run's random stream is its workload seed's alone."""
    import torch
    from torch import nn

    torch.manual_seed(1234)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    before = torch.get_rng_state()
    policy = load_policy(path)
    assert torch.equal(torch.get_rng_state(), before), "load_policy moved the global generator"
    policy.build(model, nn.functional.cross_entropy)
    assert torch.equal(torch.get_rng_state(), before), "Policy.build moved the global generator"
