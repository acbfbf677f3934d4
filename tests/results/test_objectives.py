"""Objectives, constraints and the Pareto front (hyperswitch.results.objectives), and the export rules built on them
(``select_configurations`` with ``objectives`` / ``constraints``): checked against brute force and hand numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.figures import memory as fm
from hyperswitch.results.objectives import (
    Constraint,
    feasible,
    pareto_front,
    parse_constraint,
    parse_constraints,
    study_constraints,
    study_objectives,
)
from hyperswitch.results.select import feasible_configurations, select_configurations


def brute_front(points: np.ndarray, modes: list[str]) -> list[int]:
    """Every row that no other row dominates, by the definition, comparing every pair."""
    out = []
    for i, p in enumerate(points):
        if not np.isfinite(p).all():
            continue
        dominated = False
        for j, q in enumerate(points):
            if j == i or not np.isfinite(q).all():
                continue
            at_least = all((q[k] >= p[k]) if m == "max" else (q[k] <= p[k]) for k, m in enumerate(modes))
            better = any((q[k] > p[k]) if m == "max" else (q[k] < p[k]) for k, m in enumerate(modes))
            dominated |= at_least and better
        if not dominated:
            out.append(i)
    return out


@pytest.mark.parametrize("k", [2, 3])
def test_pareto_front_equals_brute_force_on_random_points_in_every_direction(k):
    rng = np.random.default_rng(k)
    for modes in itertools.product(("max", "min"), repeat=k):
        for trial in range(25):
            n = int(rng.integers(1, 40))
            # small integers: many ties and repeated points; some NaN and inf
            points = rng.integers(0, 6, size=(n, k)).astype(float)
            if trial % 3 == 0:
                points[rng.integers(0, n)] = np.nan
            if trial % 5 == 0:
                points[rng.integers(0, n), 0] = np.inf
            assert pareto_front(points, list(modes)).tolist() == brute_front(points, list(modes)), (modes, points)
        continuous = rng.normal(size=(80, k))
        assert pareto_front(continuous, list(modes)).tolist() == brute_front(continuous, list(modes))


def test_the_figures_two_objective_front_is_the_same_front():
    rng = np.random.default_rng(7)
    for x_mode, y_mode in itertools.product(("max", "min"), repeat=2):
        x, y = rng.integers(0, 8, 30).astype(float), rng.normal(size=30)
        got = fm.pareto_front(x, y, y_mode, x_mode)
        brute = brute_front(np.column_stack([x, y]), [x_mode, y_mode])
        assert sorted(got.tolist()) == brute and list(x[got]) == sorted(x[got])


def test_constraints_are_parsed_not_evaluated_with_optunas_sign():
    c = parse_constraint("peak_memory_bytes <= 2e9", "constraints[0]")
    assert (c.metric, c.op, c.bound, c.text) == ("peak_memory_bytes", "<=", 2e9, "peak_memory_bytes <= 2e+09")
    assert c.value(2.5e9) == 0.5e9 and c.value(1e9) == -1e9 and c.satisfied(2e9) and not c.satisfied(2.1e9)
    g = parse_constraint("  val_accuracy>=.9 ", "k")
    assert (g.op, g.bound) == (">=", 0.9) and g.value(0.8) == pytest.approx(0.1) and g.value(0.95) < 0
    assert not g.satisfied(None) and not g.satisfied(float("nan"))
    assert parse_constraints(["wall_time_s <= 600", "peak_memory_bytes <= 2e9"]) == (
        Constraint("wall_time_s", "<=", 600.0), Constraint("peak_memory_bytes", "<=", 2e9))
    assert parse_constraints(None) == ()
    meta = {"metric": ["val_accuracy", "wall_time_s"], "mode": ["max", "min"],
            "constraints": ["peak_memory_bytes <= 2e+09"]}
    assert study_objectives(meta) == (["val_accuracy", "wall_time_s"], ["max", "min"])
    assert study_objectives({"metric": "val_loss"}) == (["val_loss"], ["min"])
    assert study_constraints(meta) == (Constraint("peak_memory_bytes", "<=", 2e9),)
    assert feasible(study_constraints(meta), {"peak_memory_bytes": 1.0}) and not feasible(study_constraints(meta), {})


@pytest.mark.parametrize(("text", "rule"), [
    ("wall_time_s < 600", "must be METRIC <= NUMBER or METRIC >= NUMBER (e.g. peak_memory_bytes <= 2e9) "
                          "(got 'wall_time_s < 600')"),
    ("__import__('os').system('x') <= 1", "must be METRIC <= NUMBER or METRIC >= NUMBER (e.g. peak_memory_bytes "
                                           "<= 2e9) (got \"__import__('os').system('x') <= 1\")"),
    ("wall_time_s <= 1e999", "the bound must be a finite number (got 'wall_time_s <= 1e999')"),
    ("speed >= 3", "speed is not a results metric (one of: val_accuracy, best_val_accuracy, val_loss, "
                   "val_recon_error, train_loss, time_to_target_s, steps_to_target, wall_time_s, peak_memory_bytes, "
                   "switch_step) (got 'speed >= 3')"),
    (600, "must be METRIC <= NUMBER or METRIC >= NUMBER (e.g. peak_memory_bytes <= 2e9) (got 600)"),
])
def test_a_bad_constraint_names_key_rule_and_value(text, rule):
    with pytest.raises(ConfigError) as e:
        parse_constraints([text])
    assert str(e.value) == f"constraints[0]: {rule}"


# --- export rules -------------------------------------------------------------------------------------------
def trials(rows: list[tuple[str, int, str, float, float, float]]) -> pd.DataFrame:
    """(config, seed, status, val_accuracy, wall_time_s, peak_memory_bytes) rows as a trials table."""
    return pd.DataFrame([{"trial_id": f"{c}-s{s}", "config_id": c, "seed": s, "status": st, "val_accuracy": a,
                          "wall_time_s": t, "peak_memory_bytes": m} for c, s, st, a, t, m in rows])


OBJ = [("val_accuracy", "max"), ("wall_time_s", "min")]


def test_pareto_of_two_objectives_exports_the_front_of_the_seeds_means():
    rng = np.random.default_rng(3)
    rows = []
    for c in range(12):
        for s in range(3):
            rows.append((f"c{c:04d}", s, "completed", float(rng.integers(0, 5)) / 10, float(rng.integers(1, 6)), 1.0))
    rows.append(("c0012", 0, "diverged", np.nan, 0.1, 1.0))  # a failed seed: left out
    rows.append(("c0012", 1, "completed", 1.0, 0.1, 1.0))
    t = trials(rows)
    sel = select_configurations(t, "val_accuracy", "max", "pareto", top=100, objectives=OBJ)
    means = t[t.config_id != "c0012"].groupby("config_id")[["val_accuracy", "wall_time_s"]].mean()
    expected = {str(means.index[i]) for i in brute_front(means.to_numpy(), ["max", "min"])}
    assert {c.config_id for c in sel.choices} == expected and sel.front_size == len(expected)
    assert [c.rank for c in sel.choices] == list(range(1, len(expected) + 1))
    firsts = [c.objectives[0][1] for c in sel.choices]
    assert firsts == sorted(firsts, reverse=True)  # ranked by the first objective, best first
    for c in sel.choices:
        (m1, mean1, _, vals1), (m2, mean2, _, vals2) = c.objectives
        assert (m1, m2) == ("val_accuracy", "wall_time_s") and c.n == 3
        assert mean1 == pytest.approx(sum(vals1) / 3) and mean2 == pytest.approx(means.loc[c.config_id, "wall_time_s"])
    assert any("c0012" in n and "left out" in n for n in sel.notes)
    top2 = select_configurations(t, "val_accuracy", "max", "pareto", top=2, objectives=OBJ)
    assert [c.config_id for c in top2.choices] == [c.config_id for c in sel.choices[:2]]
    with pytest.raises(ConfigError, match=r"--max-time-ratio: applies to a single-objective study"):
        select_configurations(t, "val_accuracy", "max", "pareto", max_time_ratio=1.5, objectives=OBJ)


def test_constraints_leave_out_infeasible_configurations_by_their_seeds_means():
    # c0000: best accuracy but mean memory 2.5 > 2 (one seed at 1 is not enough); c0001 second best, mean 1.5
    t = trials([("c0000", 0, "completed", 0.9, 1, 1.0), ("c0000", 1, "completed", 0.9, 1, 4.0),
                ("c0001", 0, "completed", 0.8, 1, 1.0), ("c0001", 1, "completed", 0.8, 1, 2.0),
                ("c0002", 0, "completed", 0.7, 1, np.nan), ("c0002", 1, "completed", 0.7, 1, np.nan)])
    cons = [Constraint("peak_memory_bytes", "<=", 2.0)]
    assert feasible_configurations(t, cons) == {"c0000": False, "c0001": True, "c0002": False}
    for rule in ("mean", "best"):
        sel = select_configurations(t, "val_accuracy", "max", rule, constraints=cons)
        assert sel.choices[0].config_id == "c0001", rule
        assert "2 configuration(s) left out: infeasible by the study's constraints (peak_memory_bytes <= 2) by " \
            "their seeds' means (c0000, c0002)" in sel.notes
    assert select_configurations(t, "val_accuracy", "max").choices[0].config_id == "c0000"  # unconstrained
    with pytest.raises(ConfigError, match=r"--select: no configuration satisfies the study's constraints"):
        select_configurations(t, "val_accuracy", "max", constraints=[Constraint("wall_time_s", "<=", 0.5)])
