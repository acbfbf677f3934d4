"""Conditional parameters (``when: {OTHER: CHOICE}``): the README's switch policy (``at`` only for a fixed switch,
``theta``/``K``/``unit`` only for the adaptive one) validated, sampled define-by-run only where they apply, told
to Optuna with their active distributions only, enumerated once per active combination on a grid, absent from
trial rows (null in trials.parquet), and left out of the exported policy. Searchers are driven as Tune drives them
(no Ray); the study files are the real store's."""

from __future__ import annotations

import math
import random

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hyperswitch.errors import ConfigError
from hyperswitch.export import export_study
from hyperswitch.figures import parameter as fp
from hyperswitch.results import open_study
from hyperswitch.results.schema import COMPLETED, RUNNING
from hyperswitch.search.runner import build_searcher, prepare_study
from hyperswitch.search.seeds import QMCProposer, search_lag
from hyperswitch.search.space import space_from_text
from hyperswitch.search.trial import trial_row
from tests.search.test_proposals import drive as proposals_drive
from tests.search.test_proposals import gap, resume

SPACE = """\
name: cond
workload: {{name: digits_mlp, batch_size: 32, hidden: 16}}
policy:
  type: switch
  phase1: {{name: adam, lr: 0.001}}
  phase2: {{name: sgdm, lr: $lr, momentum: 0.9}}
  switch: $switch_rule
train: {{steps: 20, eval_every: 10}}
parameters:
  lr: {lr}
  switch_kind:
    type: categorical
    choices: [fixed, adaptive]
    sets:
      fixed: {{switch_rule: {{at: $at}}}}
      adaptive: {{switch_rule: {{theta: $theta, K: $K, unit: $unit}}}}
  at: {{type: int, low: 0, high: 20, step: 5, when: {{switch_kind: fixed}}}}
  theta: {theta}
  K: {{type: int, low: 2, high: 4, when: {{switch_kind: adaptive}}}}
  unit: {{type: categorical, choices: [step, epoch], when: {{switch_kind: [adaptive]}}}}
search: {search}
seeds: 2
max_concurrent: 2
{extra}"""
LR = "{type: float, low: 0.01, high: 0.3, log: true}"
THETA = "{type: float, low: 0.001, high: 0.1, log: true, when: {switch_kind: adaptive}}"


def space(search: str = "{algorithm: tpe, samples: 12, seed: 0, n_startup: 4}", lr: str = LR, theta: str = THETA,
          extra: str = "", text: str | None = None):
    return space_from_text(text or SPACE.format(search=search, lr=lr, theta=theta, extra=extra), "cond.yaml")


def value(cfg: dict) -> float:
    """A made-up objective: the adaptive rule wins near theta 0.01, the fixed one near at 10."""
    p = cfg["params"]
    base = -math.log(p["lr"] / 0.05) ** 2 if isinstance(p["lr"], float) else 0.0
    if p["switch_kind"] == "fixed":
        return base - abs(p["at"] - 10) / 10 + 0.001 * cfg["seed"]
    return base + 0.5 - math.log(p["theta"] / 0.01) ** 2 / 10 - 0.1 * (p["unit"] == "epoch") + 0.001 * cfg["seed"]


ACTIVE = {"fixed": {"lr", "switch_kind", "at"}, "adaptive": {"lr", "switch_kind", "theta", "K", "unit"}}


def drive(searcher, rng: random.Random, slots: int, stop=None):
    """Tune's loop (test_proposals.drive) with this space's objective."""
    return proposals_drive(searcher, rng, slots, stop, objective=value)


def test_the_readme_example_resolves_only_what_applies():
    s = space()
    assert s.conditions == {"at": ("switch_kind", ("fixed",)), "theta": ("switch_kind", ("adaptive",)),
                            "K": ("switch_kind", ("adaptive",)), "unit": ("switch_kind", ("adaptive",))}
    fixed = s.resolve({"lr": 0.1, "switch_kind": "fixed", "at": 5})
    assert s.instantiate(fixed)[1]["switch"] == {"at": 5} and "theta" not in fixed and "K" not in fixed
    adaptive = s.resolve({"lr": 0.1, "switch_kind": "adaptive", "theta": 0.01, "K": 3, "unit": "epoch"})
    assert s.instantiate(adaptive)[1]["switch"] == {"theta": 0.01, "K": 3, "unit": "epoch"} and "at" not in adaptive
    assert s.active_values({"lr": 0.1, "switch_kind": "fixed", "at": 5.0, "theta": float("nan"), "K": None}) == \
        {"lr": 0.1, "switch_kind": "fixed", "at": 5.0}
    d = {e["name"]: e for e in s.distributions()}
    assert d["at"]["when"] == {"switch_kind": ["fixed"]} and "when" not in d["lr"]


@pytest.mark.parametrize(("change", "message"), [
    (("  at: {type: int, low: 0, high: 20, step: 5, when: {switch_kind: fixed}}",
      "  at: {type: int, low: 0, high: 20, step: 5, when: {switch_knd: fixed}}"),
     "parameters.at.when.switch_knd: is not a parameter; did you mean switch_kind? a condition names a categorical "
     "parameter"),
    (("when: {switch_kind: fixed}", "when: {lr: 0.1}"),
     "parameters.at.when.lr: parameter lr is float; a condition names a categorical parameter"),
    (("when: {switch_kind: fixed}", "when: {switch_kind: never}"),
     "parameters.at.when.switch_kind: must be among the choices of parameters.switch_kind (fixed, adaptive) "
     "(got 'never')"),
    (("when: {switch_kind: fixed}", "when: {switch_kind: fixed, lr: 1}"),
     "parameters.at.when: must name one categorical parameter and its choice(s): {OTHER: CHOICE} or "
     "{OTHER: [CHOICE, ...]} (got {'switch_kind': 'fixed', 'lr': 1})"),
    (("  switch: $switch_rule", "  switch: {at: $at}"),
     "parameters.at.when: $at is used unconditionally at policy.switch.at; a conditional parameter is used only in "
     "parameters.switch_kind.sets.fixed (the sets of the choices it applies to) (got '$at')"),
    (("{switch_rule: {theta: $theta, K: $K, unit: $unit}}", "{switch_rule: {theta: $theta, K: $K, unit: $unit, "
                                                            "at: $at}}"),
     "parameters.at.when: $at is used at parameters.switch_kind.sets.adaptive.switch_rule.at, where it does not "
     "apply (it is sampled when switch_kind is fixed) (got '$at')"),
    (("search:", "derived: {k2: K * 2}\nsearch:"),
     "parameters.K.when: K is used in derived.k2, which every configuration computes; a conditional parameter is "
     "used only in its condition's sets (got 'K')"),
    (("choices: [step, epoch], when: {switch_kind: [adaptive]}", "choices: [step, epoch], when: {K: [2]}"),
     "parameters.unit.when.K: parameter K is int; a condition names a categorical parameter"),
])
def test_bad_conditions_are_one_line(change, message):
    text = SPACE.format(search="tpe", lr=LR, theta=THETA, extra="")
    assert change[0] in text
    with pytest.raises(ConfigError) as e:
        space(text=text.replace(change[0], change[1], 1))
    assert str(e.value) == f"cond.yaml: {message}"


def test_conditions_in_a_cycle_are_refused():
    text = SPACE.format(search="tpe", lr="{type: categorical, choices: [0.01, 0.1], when: {unit: step}}",
                        theta=THETA, extra="")
    text = text.replace("when: {switch_kind: [adaptive]}", "when: {lr: 0.01}")
    with pytest.raises(ConfigError) as e:
        space(text=text)
    assert str(e.value) == "cond.yaml: parameters.lr.when: conditions form a cycle (got 'lr -> unit -> lr')"


# --- sampling --------------------------------------------------------------------------------------------
def test_tpe_samples_and_is_told_only_the_parameters_that_apply():
    s = space()
    lag = search_lag(s.max_concurrent, len(s.seeds))
    searcher = build_searcher(s, [], lag)
    proposed, _, _ = drive(searcher, random.Random(0), slots=2)
    again, _, _ = drive(build_searcher(s, [], lag), random.Random(3), slots=3)
    assert len(proposed) == 12 and again == proposed
    kinds = {p["switch_kind"] for p in proposed.values()}
    assert kinds == {"fixed", "adaptive"}
    for p in proposed.values():
        assert set(p) == ACTIVE[p["switch_kind"]], p
    told = [t for t in searcher.proposer.study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(told) == 10
    for t in told:  # each told trial carries its active parameters and their distributions only
        assert set(t.params) == set(t.distributions) == ACTIVE[t.params["switch_kind"]]
    assert isinstance(told[0].distributions["lr"], FloatDistribution)


def test_qmc_keeps_the_coordinates_that_apply():
    s = space("{algorithm: qmc, samples: 16, seed: 2}")
    full = QMCProposer(s.optuna_space(), 2)  # the same sequence without conditions
    cond = build_searcher(s, [], 1).proposer
    for k in range(16):
        a, b = full.propose(k, [], []), cond.propose(k, [], [])
        assert set(b) == ACTIVE[b["switch_kind"]] and b == {n: a[n] for n in b}


def test_a_grid_enumerates_each_active_combination_once():
    s = space("{algorithm: grid, seed: 1}", lr="{type: categorical, choices: [0.03, 0.1]}",
              theta="{type: categorical, choices: [0.001, 0.01, 0.1], when: {switch_kind: adaptive}}")
    # lr x (at: 5 values + theta x K x unit: 3 x 3 x 2) = 2 x (5 + 18) = 46; the full product would be 360
    assert s.n_configurations() == 46
    points = s.grid_points()
    assert len(points) == 46 and len({tuple(sorted(p.items())) for p in points}) == 46
    assert all(set(p) == ACTIVE[p["switch_kind"]] for p in points)
    proposed, _, _ = drive(build_searcher(s, [], 1), random.Random(0), slots=2)
    assert sorted(map(lambda p: tuple(sorted(p.items())), proposed.values())) == \
        sorted(tuple(sorted(p.items())) for p in points)


def test_start_points_give_exactly_the_parameters_that_apply():
    sp = "  start_points:\n    - {lr: 0.1, switch_kind: fixed, at: 10}\n" \
         "    - {lr: 0.1, switch_kind: adaptive, theta: 0.01, K: 3, unit: step}\n"
    s = space("\n  algorithm: tpe\n  samples: 4\n" + sp)
    assert s.start_points == [{"lr": 0.1, "switch_kind": "fixed", "at": 10},
                              {"lr": 0.1, "switch_kind": "adaptive", "theta": 0.01, "K": 3, "unit": "step"}]
    with pytest.raises(ConfigError) as e:
        space("\n  algorithm: tpe\n  start_points:\n    - {lr: 0.1, switch_kind: fixed, at: 10, K: 3}\n")
    assert str(e.value) == "cond.yaml: search.start_points[0].K: does not apply here: it is sampled only when " \
                           "switch_kind is adaptive (got 3)"
    with pytest.raises(ConfigError) as e:
        space("\n  algorithm: tpe\n  start_points:\n    - {lr: 0.1, switch_kind: adaptive, theta: 0.01, K: 3}\n")
    assert str(e.value) == "cond.yaml: search.start_points[0].unit: is required: a start point gives every sampled " \
                           "parameter that applies"


# --- the study's files -----------------------------------------------------------------------------------
def test_rows_resume_and_export_leave_out_what_does_not_apply(tmp_path):
    s = space()
    lag = search_lag(s.max_concurrent, len(s.seeds))
    (tmp_path / "cond.yaml").write_text(s.text)
    reference, _, _ = drive(build_searcher(s, [], lag), random.Random(0), slots=2)
    # interrupted after 9 trials, rebuilt from the study's Parquet table (the --resume path)
    store = prepare_study(s, tmp_path / "runs", None, resume=False)
    _, finished, running = drive(build_searcher(s, [], lag), random.Random(1), slots=3, stop=lambda f, run: len(f) >= 9)
    for cfg in finished:
        store.write_trial_parts(trial_row(s, cfg, None, COMPLETED, {"val_accuracy": value(cfg), "wall_time_s": 1.0}),
                                [], [])
    skipped = gap({c["config_id"] for c in finished}, running)
    for cfg in running:
        if cfg["config_id"] != skipped:
            store.write_trial_parts(trial_row(s, cfg, None, RUNNING, {"val_accuracy": 0.0}), [], [])
    rest, done, _ = drive(resume(store, s, lag), random.Random(2), slots=3)
    for cfg in done:
        store.write_trial_parts(trial_row(s, cfg, None, COMPLETED, {"val_accuracy": value(cfg), "wall_time_s": 1.0}),
                                [], [])
    store.compact()
    store.update_meta(status="completed")
    t = open_study(store.root).trials
    held = {cid: s.active_values({n: g.iloc[0][n] for n in s.sampled_names}) for cid, g in t.groupby("config_id")}
    assert held == reference and {c: reference[c] for c in rest} == rest  # the uninterrupted study's configurations
    assert len(t) == 24
    for _, row in t.iterrows():  # null where it does not apply, a value where it does
        for n in ("at", "theta", "K", "unit"):
            applies = n in ACTIVE[row["switch_kind"]]
            missing = row[n] is None or (isinstance(row[n], float) and math.isnan(row[n]))
            assert applies != missing, (row["trial_id"], n, row[n])
    assert t["unit"].dropna().isin(["step", "epoch"]).all()  # a string column with nulls

    # export: the policy of the best configuration, with only the parameters that apply to it
    [result] = export_study(store.root, output=tmp_path / "best.yaml")
    best = reference[result.choice.config_id]
    doc = result.document
    assert doc["provenance"]["parameters"] == {k: v for k, v in best.items()}
    if best["switch_kind"] == "adaptive":
        assert doc["policy"]["switch"] == {"theta": best["theta"], "K": best["K"], "unit": best["unit"]}
    else:
        assert doc["policy"]["switch"] == {"at": best["at"]}
    for n in ("at", "theta", "K", "unit"):
        assert (n in doc["provenance"]["parameters"]) == (n in best)

    # the parameter views use the configurations where a parameter applies; importance ranks the others
    adaptive = sum(p["switch_kind"] == "adaptive" for p in held.values())
    d = fp.sensitivity_data(t, "K", "val_accuracy")
    assert int(d.n.sum()) == 2 * adaptive
    imp = fp.importance_data(t, ["lr", "switch_kind", "at", "theta", "K", "unit"], "val_accuracy")
    assert set(imp.params) == {"lr", "switch_kind"} and "not ranked: at, theta, K, unit" in imp.note
    assert isinstance(s.optuna_space()["unit"], CategoricalDistribution)
    assert isinstance(s.optuna_space()["K"], IntDistribution)


@pytest.mark.parametrize("search", ["{algorithm: nsga2, samples: 10, seed: 0, population_size: 4}",
                                    "{algorithm: gp, samples: 8, seed: 0, n_startup: 4}"])
def test_nsga2_and_gp_sample_what_applies_and_resume_proposes_the_same(search, tmp_path):
    s = space(search)
    lag = search_lag(s.max_concurrent, len(s.seeds))
    searcher = build_searcher(s, [], lag)
    reference, _, _ = drive(searcher, random.Random(0), slots=2)
    assert len(reference) == s.n_configurations() and {p["switch_kind"] for p in reference.values()} == \
        {"fixed", "adaptive"}
    for p in reference.values():  # every proposal, the algorithm's own included, has the parameters that apply
        assert set(p) == ACTIVE[p["switch_kind"]], p
    told = [t for t in searcher.proposer.study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(told) >= 4  # the last proposal learnt from results (NSGA-II: its first generation)
    for t in told:
        assert set(t.params) == set(t.distributions) == ACTIVE[t.params["switch_kind"]]
    # interrupted after 7 trials, then rebuilt from the study's Parquet table: the same configurations
    store = prepare_study(s, tmp_path / "runs", None, resume=False)
    _, finished, running = drive(build_searcher(s, [], lag), random.Random(1), slots=3,
                                 stop=lambda f, run: len(f) >= 7)
    assert all(reference[c["config_id"]] == c["params"] for c in [*finished, *running])  # in any finishing order
    for cfg in finished:
        store.write_trial_parts(trial_row(s, cfg, None, COMPLETED, {"val_accuracy": value(cfg)}), [], [])
    skipped = gap({c["config_id"] for c in finished}, running)
    for cfg in running:
        if cfg["config_id"] != skipped:
            store.write_trial_parts(trial_row(s, cfg, None, RUNNING, {"val_accuracy": 0.0}), [], [])
    rest, _, _ = drive(resume(store, s, lag), random.Random(2), slots=3)
    assert rest and {c: reference[c] for c in rest} == rest


# a conditional parameter inside another categorical's sets: theta applies when switch_kind is adaptive, and so does
# style, whose sets give the adaptive rule (with $theta) that switch_kind's adaptive set uses
NESTED = """\
name: nested
workload: {name: digits_mlp, batch_size: 32, hidden: 16}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: $switch_rule
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.3, log: true}
  switch_kind:
    type: categorical
    choices: [fixed, adaptive]
    sets:
      fixed: {switch_rule: {at: $at}}
      adaptive: {switch_rule: $adaptive_rule}
  style:
    type: categorical
    choices: [plain, per_epoch]
    when: {switch_kind: adaptive}
    sets:
      plain: {adaptive_rule: {theta: $theta, K: 2}}
      per_epoch: {adaptive_rule: {theta: $theta, K: 2, unit: epoch}}
  at: {type: int, low: 0, high: 20, step: 5, when: {switch_kind: fixed}}
  theta: {type: float, low: 0.001, high: 0.1, log: true, when: {switch_kind: adaptive}}
search: {algorithm: random, samples: 6, seed: 0}
seeds: 1
"""


def test_a_conditional_parameter_inside_another_categoricals_sets(tmp_path):
    s = space(text=NESTED)
    assert s.conditions["style"] == ("switch_kind", ("adaptive",)) and s.conditions["theta"] == s.conditions["style"]
    fixed = s.resolve({"lr": 0.1, "switch_kind": "fixed", "at": 5})
    assert s.instantiate(fixed)[1]["switch"] == {"at": 5}
    assert "style" not in fixed and "theta" not in fixed and "adaptive_rule" not in fixed  # its sets are not used
    for style, rule in (("plain", {"theta": 0.01, "K": 2}), ("per_epoch", {"theta": 0.01, "K": 2, "unit": "epoch"})):
        values = s.resolve({"lr": 0.1, "switch_kind": "adaptive", "style": style, "theta": 0.01})
        assert s.instantiate(values)[1]["switch"] == rule, style

    # the study's rows: null where a parameter does not apply
    store = prepare_study(s, tmp_path / "runs", None, resume=False)
    searcher = build_searcher(s, [], 1)
    proposed = [searcher.suggest(f"t{n}") for n in range(6)]
    assert {c["params"]["switch_kind"] for c in proposed} == {"fixed", "adaptive"}
    for cfg in proposed:
        p = cfg["params"]
        assert set(p) == ({"lr", "switch_kind", "at"} if p["switch_kind"] == "fixed" else
                          {"lr", "switch_kind", "style", "theta"}), p
        switch = s.instantiate(s.resolve(p))[1]["switch"]
        assert switch == ({"at": p["at"]} if p["switch_kind"] == "fixed" else
                          {"theta": p["theta"], "K": 2, **({"unit": "epoch"} if p["style"] == "per_epoch" else {})})
        row = trial_row(s, cfg, None, COMPLETED, {"val_accuracy": 0.5})
        assert row["optimizers"] == "adam,sgdm"  # the policy was instantiated and validated
        store.write_trial_parts(row, [], [])
    store.compact()
    t = open_study(store.root).trials
    for _, row in t.iterrows():
        adaptive = row["switch_kind"] == "adaptive"
        for n, applies in (("at", not adaptive), ("style", adaptive), ("theta", adaptive)):
            missing = row[n] is None or (isinstance(row[n], float) and math.isnan(row[n]))
            assert applies != missing, (row["trial_id"], n, row[n])
        assert "adaptive_rule" not in t.columns  # a name the sets give is a template value, not a column


@pytest.mark.parametrize(("change", "message"), [
    # style applies in every configuration, but $theta only when switch_kind is adaptive
    (("    when: {switch_kind: adaptive}\n    sets:", "    sets:"),
     "parameters.theta.when: $theta is used at parameters.style.sets.plain.adaptive_rule.theta, where it does not "
     "apply (it is sampled when switch_kind is adaptive) (got '$theta')"),
    # style applies when switch_kind is adaptive, but at only when it is fixed
    (("plain: {adaptive_rule: {theta: $theta, K: 2}}", "plain: {adaptive_rule: {theta: $theta, K: $at}}"),
     "parameters.at.when: $at is used at parameters.style.sets.plain.adaptive_rule.K, where it does not apply (it "
     "is sampled when switch_kind is fixed) (got '$at')"),
    # a name style's sets give (applying when switch_kind is adaptive) used in the fixed set
    (("fixed: {switch_rule: {at: $at}}", "fixed: {switch_rule: $adaptive_rule}"),
     "parameters.style.when: $adaptive_rule is used at parameters.switch_kind.sets.fixed.switch_rule, where it does "
     "not apply (it is sampled when switch_kind is adaptive) (got '$adaptive_rule')"),
])
def test_a_conditional_parameter_in_another_categoricals_sets_where_it_may_not_apply_is_refused(change, message):
    assert change[0] in NESTED
    with pytest.raises(ConfigError) as e:
        space(text=NESTED.replace(change[0], change[1], 1))
    assert str(e.value) == f"cond.yaml: {message}"
