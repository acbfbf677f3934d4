"""Learning curves: group means, bands over runs, epochs and time bins, switch markers, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hyperswitch.figures import curves as fc
from hyperswitch.figures.data import NotApplicable
from tests.figures.figtables import steps_frame, trials_frame, valid


@pytest.fixture()
def three_runs():
    trials = trials_frame([{"trial_id": "a", "config_id": "c1", "seed": 0, "lr": 0.1},
                           {"trial_id": "b", "config_id": "c1", "seed": 1, "lr": 0.1},
                           {"trial_id": "c", "config_id": "c2", "seed": 0, "lr": 0.01}])
    cols = ("step", "epoch", "elapsed_s", "loss")
    runs = {"a": [(1, 1, 0.05, 4.0), (2, 1, 0.15, 3.0), (3, 2, 0.25, 2.0), (4, 2, 0.35, 1.0)],
            "b": [(1, 1, 0.05, 2.0), (2, 1, 0.15, 2.0), (3, 2, 0.25, 2.0), (4, 2, 0.35, 2.0)],
            "c": [(1, 1, 0.05, 1.0), (2, 1, 0.15, 1.0), (3, 2, 0.25, 1.0), (4, 2, 0.35, np.nan)]}
    switch = pd.Series({"a": 3.0, "c": 2.0})
    return trials, steps_frame(runs, cols), switch


def test_step_curves_mean_and_std_over_runs(three_runs):
    trials, steps, switch = three_runs
    d = fc.curves_data(steps, fc.run_groups(trials, "lr"), switch, x="step", y="loss", group_by="lr")
    g01, g1 = d.groups  # sorted by name: "lr = 0.01", "lr = 0.1"
    assert g1.name == "lr = 0.1" and g1.x.tolist() == [1, 2, 3, 4]
    assert g1.mean == pytest.approx([3.0, 2.5, 2.0, 1.5])
    assert g1.upper - g1.mean == pytest.approx([math.sqrt(2), math.sqrt(0.5), 0.0, math.sqrt(0.5)])
    assert g1.n.tolist() == [2, 2, 2, 2]
    # one run: no band; its NaN loss at step 4 is left out
    assert g01.x.tolist() == [1, 2, 3] and g01.mean == pytest.approx([1, 1, 1]) and np.isnan(g01.lower).all()
    # switch markers: a at step 3 on its group's mean curve (2.0); c at step 2; b never switched
    marks = {m.group: m for m in d.marks}
    assert marks["lr = 0.1"].x.tolist() == [3.0] and marks["lr = 0.1"].y == pytest.approx([2.0])
    assert marks["lr = 0.1"].runs == ["a"] and marks["lr = 0.01"].x.tolist() == [2.0]
    assert d.n_runs == 3
    fig = valid(fc.curves_figure(d))
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "training loss"
    # group lr=0.1: band (2) + mean; lr=0.01: mean only (no band with one run); 2 marker traces
    assert len(fig.data) == 1 + 3 + 2


def test_epoch_curves_average_each_run_within_an_epoch_first(three_runs):
    trials, steps, switch = three_runs
    d = fc.curves_data(steps, fc.run_groups(trials, "lr"), switch, x="epoch", y="loss")
    g1 = d.groups[1]
    # a: epoch 1 mean 3.5, epoch 2 mean 1.5; b: 2, 2 -> 2.75, 1.75; s.d. |3.5 - 2| / sqrt(2)
    assert g1.x.tolist() == [1, 2] and g1.mean == pytest.approx([2.75, 1.75])
    assert g1.upper - g1.mean == pytest.approx([1.5 / math.sqrt(2), 0.5 / math.sqrt(2)])
    m = {m.group: m for m in d.marks}["lr = 0.1"]
    assert m.x.tolist() == [2.0] and m.y == pytest.approx([1.75])  # a switched at step 3, in epoch 2


def test_switch_marker_in_epochs_needs_no_value_at_the_switch_step(three_runs):
    # A validation metric is recorded on some steps only: a's switch step (3) has none, its epoch (2) has one.
    trials, steps, switch = three_runs
    steps = steps.assign(val_accuracy=[np.nan, 0.5, np.nan, 0.7, np.nan, 0.4, np.nan, 0.6, np.nan, 0.3, np.nan,
                                       np.nan])
    d = fc.curves_data(steps, fc.run_groups(trials, "lr"), switch, x="epoch", y="val_accuracy")
    m = {m.group: m for m in d.marks}
    assert m["lr = 0.1"].x.tolist() == [2.0] and m["lr = 0.1"].y == pytest.approx([0.65])  # (0.7 + 0.6) / 2
    # c switched at step 2, a row with a value (0.3), in epoch 1
    assert m["lr = 0.01"].x.tolist() == [1.0] and m["lr = 0.01"].runs == ["c"]
    assert d.n_runs == 3
    # a per-step curve of the validation accuracy, not the trial's final one
    fig = valid(fc.curves_figure(d))
    assert fig.layout.title.text == "validation accuracy vs epoch" and fig.layout.yaxis.title.text == \
        "validation accuracy"


def test_wall_time_curves_use_equal_time_bins(three_runs):
    trials, steps, _ = three_runs
    d = fc.curves_data(steps, fc.run_groups(trials, fc.NONE), None, x="elapsed_s", y="loss", time_bins=4)
    (g,) = d.groups
    width = 0.35 / 4
    assert g.x == pytest.approx((np.arange(4) + 0.5) * width)
    assert g.mean == pytest.approx([7 / 3, 2.0, 5 / 3, 1.5])
    assert d.time_bins == 4 and not d.marks
    # a switched at step 3 (0.25 s, in bin 2 of 4), c at step 2 (0.15 s, bin 1): marked at their bins' centres
    d = fc.curves_data(steps, fc.run_groups(trials, fc.NONE), pd.Series({"a": 3.0, "c": 2.0}), x="elapsed_s",
                       y="loss", time_bins=4)
    (m,) = d.marks
    assert dict(zip(m.runs, m.x, strict=True)) == pytest.approx({"a": 2.5 * width, "c": 1.5 * width})
    assert dict(zip(m.runs, m.y, strict=True)) == pytest.approx({"a": 5 / 3, "c": 2.0})


def test_groups_by_policy_and_family():
    trials = trials_frame([{"trial_id": "a", "policy_type": "mixer", "optimizers": "kfac,sgdm"},
                           {"trial_id": "b", "policy_type": "single", "optimizers": "kfac"},
                           {"trial_id": "c", "policy_type": "single", "optimizers": "sgdm"},
                           {"trial_id": "d", "policy_type": "switch", "optimizers": "kfac,sgdm"}])
    assert fc.run_groups(trials, fc.POLICY).tolist() == ["mixer: kfac \u2192 sgdm", "single: kfac", "single: sgdm",
                                                         "switch: kfac \u2192 sgdm"]
    assert fc.run_groups(trials, fc.FAMILY).tolist() == ["mixer", "second-order", "first-order",
                                                         "switch (second \u2192 first order)"]


def test_policy_labels_per_trial_with_repeated_and_missing_policies():
    # Labels are computed once per distinct (policy type, optimizers) pair: each trial still gets its own.
    trials = trials_frame([{"trial_id": t, "policy_type": p, "optimizers": o} for t, p, o in [
        ("a", "switch", "adam,sgdm"), ("b", "single", "sgdm"), ("c", "switch", "adam,sgdm"), ("d", None, None),
        ("e", "single", "sgdm"), ("f", "iomt", "adam,sgdm,kfac")]])
    assert fc.run_groups(trials, fc.POLICY).to_dict() == {
        "a": "switch: adam \u2192 sgdm", "b": "single: sgdm", "c": "switch: adam \u2192 sgdm", "d": "?",
        "e": "single: sgdm", "f": "iomt: adam, sgdm, kfac"}
    assert fc.run_groups(trials, fc.FAMILY).tolist() == ["switch", "first-order", "switch", "?", "first-order",
                                                         "iomt"]


def test_many_switch_markers_share_one_marker_per_switch_point():
    n = 1500  # runs switched at step 2 (1000) or 3 (500)
    steps = steps_frame({f"r{i}": [(1, 1, 1.0), (2, 1, 0.5), (3, 1, 0.25)] for i in range(n)})
    groups = pd.Series("all", index=[f"r{i}" for i in range(n)])
    sw = pd.Series([2.0 if i % 3 else 3.0 for i in range(n)], index=groups.index)
    d = fc.curves_data(steps, groups, sw)
    assert sum(len(m.x) for m in d.marks) == n  # every run's switch is in the data
    fig = fc.curves_figure(d)
    valid(fig)
    marks = fig.data[-1]  # (arrays as drawn; the validated copy encodes them)
    assert marks.type == "scatter" and list(marks.x) == [2.0, 3.0] and list(marks.customdata) == [1000, 500]
    assert "size: how many of the 1500" in fig.layout.title.subtitle.text


def test_many_configurations_are_drawn_with_webgl():
    from hyperswitch.figures import memory as fm

    rng = np.random.default_rng(0)
    d = fm.Pareto("wall_time_s", "val_accuracy", "max", rng.uniform(size=1500), rng.uniform(size=1500),
                  [f"c{i}" for i in range(1500)], np.array([0]))
    assert valid(fm.pareto_figure(d)).data[0].type == "scattergl"


def test_no_steps_or_no_values_say_so(three_runs):
    trials, steps, _ = three_runs
    with pytest.raises(NotApplicable, match="no recorded steps"):
        fc.curves_data(steps.iloc[:0], fc.run_groups(trials, "lr"))
    with pytest.raises(NotApplicable, match="validation accuracy"):
        fc.curves_data(steps.assign(val_accuracy=np.nan), fc.run_groups(trials, "lr"), y="val_accuracy")
