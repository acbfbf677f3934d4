"""Parameter-study figures against numbers computed by hand from the tables in conftest.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperswitch.figures import parameter as fp
from hyperswitch.figures.data import NotApplicable
from tests.figures.figtables import trials_frame, valid

T_975 = {2: 4.302652729911275, 3: 3.182446305284263, 4: 2.7764451051977987}  # Student t 0.975 quantiles (tables)


def test_sensitivity_means_and_std_band(sweep_trials):
    d = fp.sensitivity_data(sweep_trials, "lr", "val_accuracy", "std")
    assert d.labels == ["0.01", "0.1"] and d.x == [0.01, 0.1]
    # lr 0.01: 0.5 0.7 0.6 0.8 -> mean 0.65, sd sqrt(0.05 / 3); lr 0.1: 0.8 0.9 0.8 0.9 1.0 -> 0.88, sqrt(0.028 / 4)
    assert d.mean == pytest.approx([0.65, 0.88])
    sd = np.array([math.sqrt(0.05 / 3), math.sqrt(0.028 / 4)])
    assert d.upper - d.mean == pytest.approx(sd) and d.mean - d.lower == pytest.approx(sd)
    assert d.n.tolist() == [4, 5]
    # the running trial is left out; the error trial (no metric) is counted as left out
    assert d.n_runs == 9 and d.n_excluded == 1
    fig = valid(fp.sensitivity_figure(d))
    assert "standard deviation" in fig.layout.title.subtitle.text and fig.layout.xaxis.title.text == "lr"
    assert [t.name for t in fig.data] == ["upper", "\u00b1 1 s.d.", "mean"]


def test_sensitivity_ci95_uses_student_t(sweep_trials):
    d = fp.sensitivity_data(sweep_trials, "lr", "val_accuracy", "ci95")
    half = [T_975[3] * math.sqrt(0.05 / 3) / math.sqrt(4), T_975[4] * math.sqrt(0.028 / 4) / math.sqrt(5)]
    assert d.upper - d.mean == pytest.approx(half)
    assert "95% confidence interval" in fp.sensitivity_figure(d).layout.title.subtitle.text


def test_sensitivity_categorical_parameter_has_error_bars():
    t = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i // 2}", "seed": i % 2, "opt": o, "val_accuracy": v}
                      for i, (o, v) in enumerate([("adam", 0.6), ("adam", 0.8), ("sgd", 0.5), ("sgd", 0.5)])])
    d = fp.sensitivity_data(t, "opt", "val_accuracy")
    assert d.labels == ["adam", "sgd"] and d.x is None and d.mean == pytest.approx([0.7, 0.5])
    assert d.upper - d.mean == pytest.approx([math.sqrt(0.02), 0.0])
    fig = valid(fp.sensitivity_figure(d))
    assert fig.layout.xaxis.type == "category" and fig.data[0].error_y.visible


def test_sensitivity_bins_many_values_on_a_log_scale():
    lr = np.geomspace(1e-4, 1e-1, 100)
    t = trials_frame([{"trial_id": f"t{i}", "config_id": f"c{i}", "seed": 0, "lr": v, "val_accuracy": 1.0}
                      for i, v in enumerate(lr)])
    d = fp.sensitivity_data(t, "lr", "val_accuracy", max_points=10)
    assert d.binned and d.log and len(d.labels) == 10 and d.n.tolist() == [10] * 10
    assert d.labels[0] == "0.0001\u20130.0002"


def test_heatmap_cells_counts_and_best(sweep_trials):
    d = fp.heatmap_data(sweep_trials, "lr", "momentum", "val_accuracy")
    assert d.x_labels == ["0.01", "0.1"] and d.y_labels == ["0.5", "0.9"]
    assert d.z == pytest.approx(np.array([[0.6, 0.85], [0.7, 0.9]]))
    assert d.count.tolist() == [[2, 2], [2, 3]]
    assert d.best == (1, 1)
    fig = valid(fp.heatmap_figure(d))
    assert fig.data[0].type == "heatmap" and "seeds (runs) = %{customdata}" in fig.data[0].hovertemplate
    assert "4 cells with runs" in fig.layout.title.subtitle.text


def test_heatmap_empty_cell_and_min_mode(sweep_trials):
    t = sweep_trials[~((sweep_trials.lr == 0.01) & (sweep_trials.momentum == 0.9))]
    d = fp.heatmap_data(t, "lr", "momentum", "val_accuracy", mode="min")
    assert np.isnan(d.z[1, 0]) and d.count[1, 0] == 0 and int(np.isfinite(d.z).sum()) == 3
    assert d.best == (0, 0)  # the lowest mean, 0.6


def test_parallel_coordinates_one_line_per_configuration(sweep_trials):
    d = fp.parallel_data(sweep_trials, ["lr", "momentum", "workload"], "val_accuracy")
    assert d.n_configs == 4
    assert sorted(d.values["val_accuracy"]) == pytest.approx([0.6, 0.7, 0.85, 0.9])
    assert d.ticks["workload"] == ([0], ["digits_mlp"])
    assert valid(fp.parallel_figure(d)).data[0].type == "parcoords"


@pytest.mark.parametrize("method", ["fanova", "ped-anova"])
def test_importance_ranks_the_parameter_that_matters(method):
    rng = np.random.default_rng(0)
    rows = []
    for c in range(60):
        lr, noise = 10 ** rng.uniform(-3, 0), rng.uniform()
        for seed in range(2):
            rows.append({"trial_id": f"c{c}-{seed}", "config_id": f"c{c:02d}", "seed": seed, "lr": lr,
                         "noise": noise, "val_accuracy": -abs(math.log10(lr) + 1.5) + 0.01 * rng.normal()})
    d = fp.importance_data(trials_frame(rows), ["lr", "noise"], "val_accuracy", "max", method=method)
    assert d.params[0] == "lr" and d.values[0] > 0.6 and sum(d.values) == pytest.approx(1.0)
    assert d.n_configs == 60
    fig = valid(fp.importance_figure(d))
    assert ("PED-ANOVA" if method == "ped-anova" else "fANOVA") in fig.layout.title.subtitle.text


def test_importance_samples_large_studies_and_says_so():
    rows = [{"trial_id": f"t{i}", "config_id": f"c{i:04d}", "seed": 0, "a": float(i % 17), "b": float(i % 5),
             "val_accuracy": float(i % 17)} for i in range(120)]
    d = fp.importance_data(trials_frame(rows), ["a", "b"], "val_accuracy", "max", max_configs=80)
    assert d.n_configs == 80 and d.n_total == 120 and d.params[0] == "a"
    assert "a random 80 of 120" in fp.importance_figure(d).layout.title.subtitle.text


def test_views_say_why_they_do_not_apply(sweep_trials):
    with pytest.raises(NotApplicable, match="no parameter 'theta'"):
        fp.sensitivity_data(sweep_trials, "theta", "val_accuracy")
    with pytest.raises(NotApplicable, match="no trial has finished"):
        fp.sensitivity_data(sweep_trials[sweep_trials.status == "running"], "lr", "val_accuracy")
    t = sweep_trials.assign(time_to_target_s=np.nan)
    with pytest.raises(NotApplicable, match="never|no finished run reached the target"):
        fp.sensitivity_data(t, "lr", "time_to_target_s")
    with pytest.raises(NotApplicable, match="two different"):
        fp.heatmap_data(sweep_trials, "lr", "lr", "val_accuracy")
