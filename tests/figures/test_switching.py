"""Switch points, their table per group, and IOMT's timeline, against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperswitch.figures import switching as fs
from hyperswitch.figures.data import NotApplicable
from tests.figures.figtables import events_frame, steps_frame, trials_frame, valid


@pytest.fixture()
def runs():
    trials = trials_frame([
        {"trial_id": "t1", "config_id": "c1", "seed": 0, "theta": 0.01, "switch_step": 11},
        {"trial_id": "t2", "config_id": "c1", "seed": 1, "theta": 0.01, "switch_step": 13},
        {"trial_id": "t3", "config_id": "c2", "seed": 0, "theta": 0.001, "switch_step": None},
        {"trial_id": "t4", "config_id": "c2", "seed": 1, "theta": 0.001, "switch_step": 20},
        {"trial_id": "t5", "config_id": "c3", "seed": 0, "theta": 0.1, "status": "running"},
    ])
    events = events_frame([("t1", 11, "switch", {}), ("t1", 21, "fusion_end", {}), ("t1", 30, "switch", {}),
                           ("t2", 13, "switch", {}), ("t5", 4, "switch", {})])
    # 5 steps per epoch: step 11 and 13 are in epoch 3, step 20 in epoch 4
    steps = steps_frame({t: [(s, (s - 1) // 5 + 1) for s in range(1, 31)] for t in ("t1", "t2", "t3", "t4")},
                        ("step", "epoch"))
    return trials, events, steps


def test_switch_points_first_event_then_trial_column(runs):
    trials, events, steps = runs
    p = fs.switch_points(trials, events, steps).set_index("trial_id")
    assert p.index.tolist() == ["t1", "t2", "t3", "t4"]  # finished trials only
    assert p.switch_step.tolist()[:2] == [11, 13] and np.isnan(p.switch_step["t3"]) and p.switch_step["t4"] == 20
    assert p.switched.tolist() == [True, True, False, True]
    assert p.switch_epoch.tolist()[:2] == [3, 3] and p.switch_epoch["t4"] == 4


def test_switch_table_mean_spread_per_configuration(runs):
    trials, events, steps = runs
    t = fs.switch_table(fs.switch_points(trials, events, steps), trials, ["config_id"])
    rows = t.rows.set_index("config_id")
    assert rows.loc["c1", ["runs", "switched"]].tolist() == [2, 2]
    assert rows.loc["c1", "step_mean"] == 12 and rows.loc["c1", "step_std"] == pytest.approx(math.sqrt(2))
    assert rows.loc["c1", ["step_min", "step_max"]].tolist() == [11, 13]
    assert rows.loc["c1", "epoch_mean"] == 3 and rows.loc["c1", "epoch_std"] == 0
    assert rows.loc["c2", ["runs", "switched"]].tolist() == [2, 1] and rows.loc["c2", "step_mean"] == 20
    assert np.isnan(rows.loc["c2", "step_std"])  # one run switched: no spread
    fig = valid(fs.switch_figure(fs.switch_points(trials, events, steps), trials, ["theta"]))
    assert len(fig.data) == 2 and fig.layout.yaxis.title.text == "switch step"
    assert [tr.name for tr in fig.data] == ["theta=0.001", "theta=0.01"]  # ordered by value


def test_switch_table_bins_a_parameter_with_many_values():
    trials = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i}", "seed": 0, "theta": 10 ** (-4 + 3 * i / 99),
                            "switch_step": 10 + i} for i in range(100)])
    p = fs.switch_points(trials, events_frame([]).reindex(columns=["trial_id", "step", "kind", "detail"]))
    t = fs.switch_table(p, trials, ["theta"])
    assert t.binned == ["theta"] and len(t.rows) == fs.MAX_LEVELS and t.rows.runs.sum() == 100


def test_no_switch_says_so(runs):
    trials, _, _ = runs
    none = trials.assign(switch_step=None)
    p = fs.switch_points(none, events_frame([]).reindex(columns=["trial_id", "step", "kind", "detail"]))
    with pytest.raises(NotApplicable, match="no finished run switched"):
        fs.switch_table(p, none, ["config_id"])


def test_iomt_timeline_scores_come_from_the_next_cycle_event():
    ev = events_frame([
        ("r", 1, "iomt_cycle", {"cycle": 0, "candidate": 0, "name": "sgd", "score": None, "select": "random"}),
        ("r", 6, "iomt_cycle", {"cycle": 1, "candidate": 1, "name": "adam", "score": 0.3, "select": "random"}),
        ("r", 11, "iomt_cycle", {"cycle": 2, "candidate": 0, "name": "sgd", "score": -0.2, "select": "surrogate"}),
        ("q", 1, "iomt_cycle", {"cycle": 0, "candidate": 1, "name": "adam", "score": None, "select": "random"}),
    ])
    assert fs.iomt_runs(ev) == ["q", "r"]
    d = fs.iomt_timeline_data(ev, "r")
    assert d.cycle.tolist() == [0, 1, 2] and d.step.tolist() == [1, 6, 11]
    assert d.candidate == ["sgd", "adam", "sgd"] and d.select[-1] == "surrogate"
    assert d.score[:2] == pytest.approx([0.3, -0.2]) and np.isnan(d.score[2])
    fig = valid(fs.iomt_timeline_figure(d))
    assert list(fig.layout.yaxis.categoryarray) == ["adam", "sgd"]
    with pytest.raises(NotApplicable, match="no IOMT cycles"):
        fs.iomt_timeline_data(ev, "nope")
