"""Memory and time, ablations and learning-rate rules, against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hyperswitch.figures import ablations as fa
from hyperswitch.figures import lr_rules as fl
from hyperswitch.figures import memory as fm
from hyperswitch.figures._stats import grouped_stats, keyed_reduce
from hyperswitch.figures.data import NotApplicable
from tests.figures.figtables import steps_frame, trials_frame, valid


def test_grouped_stats_and_keyed_reduce_by_hand():
    s = grouped_stats(np.array([0, 0, 1, 1, 1, 2, -1]), np.array([1.0, 3.0, 2.0, 4.0, np.nan, 5.0, 9.0]), 4)
    assert s.count.tolist() == [2, 2, 1, 0]
    assert s.mean[:3] == pytest.approx([2.0, 3.0, 5.0]) and np.isnan(s.mean[3])
    assert s.std[:2] == pytest.approx([math.sqrt(2), math.sqrt(2)]) and np.isnan(s.std[2])
    keys, peak = keyed_reduce(np.array([3, 3, 1, 1, 3, 2]), np.array([1, 5, 2, 7, 4, 0]), np.maximum)
    assert keys.tolist() == [1, 2, 3] and peak.tolist() == [7, 0, 5]


def test_group_bars_mean_and_error_bars(sweep_trials):
    labels = sweep_trials["lr"].map({0.01: "small", 0.1: "large", 0.3: "other"})
    d = fm.group_bars_data(sweep_trials, labels, "val_accuracy", "std", by="lr")
    assert d.groups == ["large", "small"] and d.mean == pytest.approx([0.88, 0.65])
    assert d.upper - d.mean == pytest.approx([math.sqrt(0.028 / 4), math.sqrt(0.05 / 3)])
    fig = valid(fm.group_bars_figure(d))
    assert fig.data[0].type == "bar" and "runs per bar: 5, 4" in fig.layout.title.subtitle.text


def test_time_to_target_leaves_out_runs_that_never_reached_it(sweep_trials):
    labels = pd.Series("all", index=sweep_trials.index)
    d = fm.group_bars_data(sweep_trials, labels, "time_to_target_s")
    assert d.n.tolist() == [8] and d.mean == pytest.approx([sum(range(1, 9)) / 8])  # t0 never reached it
    assert "never reached the target" in fm.group_bars_figure(d).layout.title.subtitle.text


def test_phase_memory_is_the_mean_of_each_runs_peak_per_phase():
    steps = steps_frame({"a": [(1, "kfac", 10), (2, "kfac", 30), (3, "sgdm", 5)],
                         "b": [(1, "kfac", 20), (2, "kfac", 20), (3, "sgdm", 7)],
                         "z": [(1, "sgdm", 1000)]}, ("step", "optimizer", "memory_bytes"))
    d = fm.phase_memory_data(steps, pd.Series({"a": "mixer", "b": "mixer"}))  # z: no finished trial
    assert d.groups == ["mixer"] and d.phases == ["kfac", "sgdm"]
    assert d.mean[0] == pytest.approx([25, 6]) and d.std[0] == pytest.approx([math.sqrt(50), math.sqrt(2)])
    assert d.n[0].tolist() == [2, 2]
    fig = valid(fm.phase_memory_figure(d))
    assert len(fig.data) == 2 and fig.layout.title.text == "peak memory per policy and phase"
    # Grouped by another factor: the groups, the axis and the title say so.
    by_lr = fm.phase_memory_data(steps, pd.Series({"a": "0.1", "b": "0.2"}), by="lr")
    assert by_lr.groups == ["0.1", "0.2"] and by_lr.mean[:, 0] == pytest.approx([30, 20])
    fig = valid(fm.phase_memory_figure(by_lr))
    assert fig.layout.title.text == "peak memory per lr and phase" and fig.layout.xaxis.title.text == "lr"


def test_pareto_front_by_hand():
    x, y = np.array([1.0, 2.0, 3.0, 4.0, 2.0]), np.array([0.5, 0.7, 0.6, 0.9, 0.65])
    assert fm.pareto_front(x, y, "max").tolist() == [0, 1, 3]
    assert fm.pareto_front(x, -y, "min").tolist() == [0, 1, 3]


def test_pareto_per_configuration(sweep_trials):
    d = fm.pareto_data(sweep_trials, "val_accuracy", "wall_time_s")
    # configuration means: c0.01-0.5 (10.5, 0.6), c0.01-0.9 (12.5, 0.7), c0.1-0.5 (14.5, 0.85), c0.1-0.9 (17, 0.9)
    order = np.argsort(d.x)
    assert d.x[order] == pytest.approx([10.5, 12.5, 14.5, 17.0]) and d.y[order] == pytest.approx([0.6, 0.7, 0.85, 0.9])
    assert len(d.front) == 4
    assert valid(fm.pareto_figure(d)).data[1].name == "Pareto front"


def test_ablation_corrector_on_off():
    runs = [(0, "random", 0.8), (0, "cyclical", 0.9), (5, "random", 0.95), (10, "cyclical", 0.97)]
    t = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i}", "seed": 0, "T1": t1, "select": sel,
                       "val_accuracy": v} for i, (t1, sel, v) in enumerate(runs)])
    factors = dict(fa.ablation_factors(t, ["T1", "select"]))
    assert list(factors) == ["corrector", "T1", "select"]
    d = fa.ablation_data(t, "corrector", "val_accuracy")
    assert d.groups == ["corrector off", "corrector on"] and d.mean == pytest.approx([0.85, 0.96])
    d = fa.ablation_data(t, "select", "val_accuracy")
    assert d.groups == ["select = cyclical", "select = random"] and d.mean == pytest.approx([0.935, 0.875])
    with pytest.raises(NotApplicable, match="single value"):
        fa.ablation_data(t.assign(select="random"), "select", "val_accuracy")


def test_a_study_s_named_arms_are_a_factor_up_to_arm_levels():
    # iomt_ablation names 9 arms in `variant`: all of them are compared; another parameter with 9 values is not
    arms = [f"arm{i}" for i in range(9)]
    t = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i}", "seed": 0, "variant": a, "lr": 0.1 * (i + 1),
                       "val_accuracy": 0.5} for i, a in enumerate(arms)])
    assert [f for f, _ in fa.ablation_factors(t, ["variant", "lr"])] == ["variant"]
    t = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i}", "seed": 0, "variant": f"a{i}", "val_accuracy": 0.5}
                      for i in range(fa.ARM_LEVELS + 1)])
    assert fa.ablation_factors(t, ["variant"]) == []


def test_lr_varies():
    const = steps_frame({"a": [(1, 0.1), (2, 0.1)], "b": [(1, 0.2), (2, 0.2)]}, ("step", "lr"))
    gen = steps_frame({"a": [(1, 0.1), (2, 0.1)], "b": [(1, 0.2), (2, 0.25)]}, ("step", "lr"))
    assert not fl.lr_varies(const) and fl.lr_varies(gen)


def test_damping_lr_heatmaps_mark_the_best_ratio_per_batch_size():
    rows, k = [], 0
    acc = {32: {(0.1, 0.01): 0.6, (0.1, 0.1): 0.9, (1.0, 0.01): 0.5, (1.0, 0.1): 0.7},
           64: {(0.1, 0.01): 0.6, (0.1, 0.1): 0.5, (1.0, 0.01): 0.7, (1.0, 0.1): 0.95}}
    for batch, cells in acc.items():
        for (damping, lr), v in cells.items():
            for seed, dv in enumerate((-0.01, 0.01)):
                rows.append({"trial_id": f"t{k}", "config_id": f"c{batch}-{damping}-{lr}", "seed": seed,
                             "batch_size": batch, "damping": damping, "lr": lr, "val_accuracy": v + dv})
                k += 1
    t = trials_frame(rows)
    assert fl.guess_columns(["batch_size", "damping", "lr"]) == ("damping", "lr", "batch_size")
    d = fl.ratio_heatmaps_data(t, "damping", "lr", "batch_size", "val_accuracy")
    assert d.facets == ["32", "64"]
    assert d.best_ratio == pytest.approx([1.0, 0.1]) and d.best_point == [(0.1, 0.1), (1.0, 0.1)]
    assert d.maps[0].z == pytest.approx(np.array([[0.6, 0.5], [0.9, 0.7]]))  # rows lr, columns damping
    assert d.maps[0].count.tolist() == [[2, 2], [2, 2]]
    fig = valid(fl.ratio_heatmaps_figure(d, "val_accuracy"))
    assert sum(tr.type == "heatmap" for tr in fig.data) == 2
    assert [a.text for a in fig.layout.annotations] == ["batch_size = 32: best lr/damping = 1",
                                                        "batch_size = 64: best lr/damping = 0.1"]
    with pytest.raises(NotApplicable, match="damping"):
        fl.ratio_heatmaps_data(t, "rho", "lr", "batch_size", "val_accuracy")


def test_ablation_side_by_side_per_task_is_not_pooled():
    acc = {("mlp", "mixer"): [0.9, 0.92], ("mlp", "no_corrector"): [0.85, 0.87],
           ("cnn", "mixer"): [0.7, 0.74], ("cnn", "no_corrector"): [0.72, 0.72]}
    t = trials_frame([{"trial_id": f"{task}-{v}-{i}", "config_id": f"{task}-{v}", "seed": i, "task": task,
                       "variant": v, "val_accuracy": a, "switch_rule": {"at": i}}
                      for (task, v), values in acc.items() for i, a in enumerate(values)])
    factors = [f for f, _ in fa.ablation_factors(t, ["task", "variant", "switch_rule"])]
    assert factors[0] == "variant" and fa.default_split(factors, "variant") == "task"  # dict column tolerated
    parts = dict(fa.ablation_split_data(t, "variant", "task", "val_accuracy"))
    assert list(parts) == ["task = cnn", "task = mlp"]
    assert parts["task = cnn"].mean == pytest.approx([0.72, 0.72]) and parts["task = mlp"].mean == pytest.approx(
        [0.91, 0.86])
    fig = valid(fa.ablation_figure(list(parts.items()), "variant", "task"))
    assert [tr.name for tr in fig.data] == ["task = cnn", "task = mlp"] and fig.layout.barmode == "group"
