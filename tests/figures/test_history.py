"""The optimisation history, the trials table, one trial's curves and events, and the comparison of studies,
against numbers computed by hand, on small studies written by the real results store (some trials compacted,
the others still part files, one still running) and read back through the dashboard's cached reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hyperswitch.figures import compare as fc
from hyperswitch.figures import history as fh
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import clear_cache, study_info, study_table
from hyperswitch.results.store import StudyStore
from tests.figures.figtables import valid

NAN = float("nan")
# (trial, lr, val_accuracy, val_loss, status): binary fractions, so that means are exact (and c0002, c0003 tie).
HIST = [("c0000-s0", 0.1, 0.5, 0.5, "completed"), ("c0000-s1", 0.1, 0.75, 0.25, "completed"),
        ("c0001-s0", 0.2, 0.25, 0.75, "completed"), ("c0001-s1", 0.2, 0.5, 0.5, "completed"),
        ("c0002-s0", 0.3, 0.875, 0.125, "completed"), ("c0002-s1", 0.3, NAN, NAN, "diverged"),
        ("c0003-s0", 0.4, 0.75, 0.0625, "completed"), ("c0003-s1", 0.4, 1.0, 0.125, "completed"),
        ("c0004-s0", 0.5, 0.99, 0.01, "running")]
HIST2 = [("c0000-s0", 0.1, 0.5, 0.5, "completed"), ("c0000-s1", 0.1, 0.5, 0.5, "completed"),
         ("c0001-s0", 0.2, 0.75, 0.25, "completed"), ("c0001-s1", 0.2, 0.875, 0.25, "completed"),
         ("c0002-s0", 0.3, 0.625, 0.5, "completed"), ("c0002-s1", 0.3, 0.75, 0.5, "completed")]
# A regression study: val_loss only, no accuracy.
REG = [("c0000-s0", 0.1, None, 0.5, "completed"), ("c0001-s0", 0.2, None, 0.25, "completed")]


def write_study(storage: Path, name: str, rows: list[tuple], metric: str = "val_accuracy", mode: str = "max",
                status: str = "completed") -> Path:
    """A study through the real store. Finished trials ran 8 steps (loss 2/step, validation at steps 4 and 8, the
    switch kfac -> sgdm at step 4); a diverged one stopped at step 3; a running one has 4 steps so far. The first
    two trials are compacted, the others stay part files."""
    store = StudyStore(storage / name)
    store.root.mkdir(parents=True)
    store.write_meta({"name": name, "metric": metric, "mode": mode, "parameter_names": ["lr", "workers_hint"],
                      "sampled_names": ["lr"], "status": status, "n_trials_total": len(rows) + 1,
                      "summary": {"algorithm": "grid", "samples": 5, "seeds": [0, 1], "workload": "digits_mlp",
                                  "policy_type": "switch"}})
    for k, (tid, lr, acc, vloss, st) in enumerate(rows):
        last = {"completed": 8, "diverged": 3, "running": 4}[st]
        steps = [{"step": s, "epoch": 1 + (s - 1) // 4, "loss": 2.0 / s if not (st == "diverged" and s == 3) else NAN,
                  "val_accuracy": acc if s % 4 == 0 else None, "val_loss": vloss if s % 4 == 0 else None,
                  "lr": lr, "optimizer": "kfac" if s < 4 else "sgdm", "elapsed_s": 0.01 * s, "memory_bytes": 100}
                 for s in range(1, last + 1)]
        events = []
        if last >= 4:
            events.append({"step": 4, "kind": "switch", "detail": json.dumps({"from": "kfac", "to": "sgdm",
                                                                               "rule": "at"})})
        if st == "diverged":
            events.append({"step": 3, "kind": "diverged", "detail": json.dumps({"loss": "nan"})})
        row = {"trial_id": tid, "config_id": tid[:5], "seed": int(tid[-1]), "status": st, "workload": "digits_mlp",
               "policy_type": "switch", "optimizers": "kfac,sgdm", "lr": lr, "workers_hint": 1,
               "val_accuracy": acc, "val_loss": vloss, "train_loss": 0.25, "switch_step": 4 if last >= 4 else None,
               "peak_memory_bytes": 3 * 2**20, "wall_time_s": 1.5 + k, "time_to_target_s": None}
        store.write_trial_parts(row, steps, events)
        if k == 1:
            store.compact()
    clear_cache()
    return store.root


@pytest.fixture()
def hist(tmp_path):
    return study_info(write_study(tmp_path, "hist", HIST, status="running"))


def test_history_max_mean_per_configuration_and_best_so_far(hist):
    d = fh.history_data(hist.trials, "val_accuracy", "max")
    assert d.config_ids == ["c0000", "c0001", "c0002", "c0003"]  # the running c0004 has no result yet
    assert d.x.tolist() == [1, 2, 3, 4]
    assert d.mean.tolist() == [0.625, 0.375, 0.875, 0.875]
    assert d.n.tolist() == [2, 2, 1, 2]  # c0002's second seed diverged without a value
    assert d.std[0] == pytest.approx(0.25 / math.sqrt(2)) and math.isnan(d.std[2])
    assert d.best.tolist() == [0.625, 0.625, 0.875, 0.875]
    assert d.best_config == ["c0000", "c0000", "c0002", "c0002"]  # c0003 only ties: the earlier one stays best
    assert sorted(zip(d.seed_x.tolist(), d.seed_y.tolist(), strict=True)) == [
        (1, 0.5), (1, 0.75), (2, 0.25), (2, 0.5), (3, 0.875), (4, 0.75), (4, 1.0)]
    assert (d.n_runs, d.n_excluded, d.n_running) == (8, 1, 1)

    fig = fh.history_figure(d)
    valid(fig)
    assert [t.name for t in fig.data] == ["each seed", "mean over seeds", "best so far (max)"]
    assert list(fig.data[1].y) == [0.625, 0.375, 0.875, 0.875]
    assert list(fig.data[2].y) == [0.625, 0.625, 0.875, 0.875] and fig.data[2].line.shape == "hv"
    assert list(fig.layout.xaxis.ticktext) == d.config_ids
    sub = fig.layout.title.subtitle.text
    assert "4 configurations, 8 finished runs, 1 running, 1 without a value (left out)" in sub
    assert "best 0.875 (c0002, 1 seed)" in sub and "highest" in sub


def test_history_min_mode(hist):
    d = fh.history_data(hist.trials, "val_loss", "min")
    assert d.mean.tolist() == [0.375, 0.625, 0.125, 0.09375]
    assert d.best.tolist() == [0.375, 0.375, 0.125, 0.09375]
    assert d.best_config == ["c0000", "c0000", "c0002", "c0003"]
    fig = fh.history_figure(d)
    valid(fig)
    assert fig.data[2].name == "best so far (min)" and "lowest" in fig.layout.title.subtitle.text
    assert "best 0.09375 (c0003, 2 seeds)" in fig.layout.title.subtitle.text


def test_history_scales_memory_to_mib_and_says_when_it_does_not_apply(hist):
    d = fh.history_data(hist.trials, "peak_memory_bytes", "min")
    assert d.mean.tolist() == [3 * 2**20] * 4
    fig = fh.history_figure(d)
    valid(fig)
    assert list(fig.data[1].y) == [3.0] * 4
    with pytest.raises(NotApplicable, match="no finished trial has a value of time to target"):
        fh.history_data(hist.trials, "time_to_target_s", "min")
    with pytest.raises(NotApplicable, match="has no .*nope"):
        fh.history_data(hist.trials, "nope", "max")
    running = hist.trials[hist.trials["status"] == "running"]
    with pytest.raises(NotApplicable, match=r"no trial has finished yet \(1 running\)"):
        fh.history_data(running, "val_accuracy", "max")
    with pytest.raises(ValueError, match="mode must be max or min"):
        fh.history_data(hist.trials, "val_accuracy", "up")


def test_config_order_is_numeric():
    assert fh.config_order(["c10", "c2", "c1", "c2"]) == ["c1", "c2", "c10"]
    assert fh.config_order(["c0010", "c0002", "c0010"]) == ["c0002", "c0010"]
    assert fh.config_order(["b", "a10", "a9"]) == ["a9", "a10", "b"]


def test_trial_rows_columns_and_values(hist):
    cols = fh.trial_columns(hist.trials, ["lr"], hist.metric)
    assert [c.id for c in cols] == ["trial_id", "config_id", "seed", "status", "lr", "val_accuracy", "val_loss",
                                    "train_loss", "switch_step", "time_to_target_s", "wall_time_s",
                                    "peak_memory_bytes"]
    names = {c.id: c.name for c in cols}
    assert names["val_accuracy"] == "val_accuracy (study metric)" and names["peak_memory_bytes"] == "peak_memory (MiB)"
    assert [c.id for c in cols if not c.numeric] == ["trial_id", "config_id", "status"]
    rows = fh.trial_rows(hist.trials, cols)
    assert [r["id"] for r in rows] == [t[0] for t in HIST]
    by = {r["id"]: r for r in rows}
    assert by["c0004-s0"]["status"] == "running" and by["c0004-s0"]["lr"] == 0.5
    assert by["c0002-s1"]["status"] == "diverged" and by["c0002-s1"]["val_accuracy"] is None
    assert by["c0000-s1"]["seed"] == 1 and by["c0000-s1"]["val_loss"] == 0.25
    assert by["c0000-s0"]["peak_memory_bytes"] == 3.0 and by["c0000-s0"]["time_to_target_s"] is None
    json.dumps(rows)  # what Dash sends: plain JSON
    assert [r["id"] for r in fh.trial_rows(hist.trials, cols, ["diverged", "running"])] == ["c0002-s1", "c0004-s0"]
    assert fh.status_counts(hist.trials) == {"completed": 7, "diverged": 1, "stopped": 0, "error": 0, "running": 1}


def test_trial_rows_show_structured_parameters_as_json():
    import pandas as pd

    t = pd.DataFrame({"trial_id": ["a"], "config_id": ["c0"], "seed": [0], "status": ["completed"],
                      "sched": [{"kind": "cosine", "T": 10}], "val_accuracy": [0.5]})
    cols = fh.trial_columns(t, ["sched"], "val_accuracy")
    assert fh.trial_rows(t, cols)[0]["sched"] == '{"kind": "cosine", "T": 10}'


def test_trial_curves_and_events(hist):
    steps = study_table(hist.path, "steps", ["step", "loss", "val_accuracy"])
    events = study_table(hist.path, "events", ["step", "kind", "detail"])
    assert fh.metric_step_column("val_accuracy", list(steps.columns)) == "val_accuracy"
    d = fh.trial_curves_data(steps, events, "c0000-s0", "val_accuracy", "completed")
    assert d.step.tolist() == list(range(1, 9)) and d.loss == pytest.approx([2.0 / s for s in range(1, 9)])
    assert d.column == "val_accuracy" and d.metric_step.tolist() == [4, 8] and d.metric_value.tolist() == [0.5, 0.5]
    assert d.events == [fh.TrialEvent(4, "switch", "from: kfac; to: sgdm; rule: at")]
    fig = fh.trial_curves_figure(d)
    valid(fig)
    assert [t.name for t in fig.data] == ["training loss", "validation accuracy", "switch"]
    assert fig.data[1].yaxis == "y2" and fig.layout.yaxis2.overlaying == "y"
    assert list(fig.data[2].x) == [4] and list(fig.data[2].y) == [0.5]  # on the loss curve: 2 / 4
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(4, 4)]
    assert fig.layout.title.text == "trial c0000-s0: training loss and validation accuracy vs step"
    assert "status completed; 8 steps; 1 switch" in fig.layout.title.subtitle.text

    # the diverged trial: 3 steps, the last loss NaN, the divergence marked where the loss was last finite
    d = fh.trial_curves_data(steps, events, "c0002-s1", "val_accuracy", "diverged")
    assert d.step.tolist() == [1, 2, 3] and d.column is None and d.events == [fh.TrialEvent(3, "diverged", "loss: nan")]
    fig = fh.trial_curves_figure(d)
    valid(fig)
    assert [t.name for t in fig.data] == ["training loss", "diverged"] and list(fig.data[1].y) == [1.0]
    assert "no per-step values for final validation accuracy" in fig.layout.title.subtitle.text

    # the running trial: its 4 steps so far (a part file)
    d = fh.trial_curves_data(steps, events, "c0004-s0", "val_accuracy", "running")
    assert d.step.tolist() == [1, 2, 3, 4] and d.metric_value.tolist() == [0.99]
    with pytest.raises(NotApplicable, match="trial nope has no recorded steps yet"):
        fh.trial_curves_data(steps, events, "nope", "val_accuracy")


def test_metric_step_column_for_metrics_without_one():
    assert fh.metric_step_column("train_loss", ["loss", "val_accuracy"]) is None  # the loss curve is the metric
    assert fh.metric_step_column("val_loss", ["loss", "val_loss", "val_accuracy"]) == "val_loss"
    assert fh.metric_step_column("wall_time_s", ["loss", "val_loss", "val_accuracy"]) == "val_accuracy"
    assert fh.metric_step_column("time_to_target_s", ["loss", "val_loss"]) == "val_loss"
    assert fh.metric_step_column("peak_memory_bytes", ["loss", "memory_bytes"]) == "memory_bytes"


def test_readable_detail():
    d = json.dumps({"cycle": 2, "name": "adam", "from": None, "score": 0.123456, "v": [1, 2], "ok": True})
    assert fh.readable_detail(d) == "cycle: 2; name: adam; from: null; score: 0.123; v: [1,2]; ok: true"
    assert fh.readable_detail("not json {") == "not json {"
    assert fh.readable_detail("[1, 2]") == "[1, 2]" and fh.readable_detail(None) == ""


# --- comparing studies ---------------------------------------------------------------------------------------

@pytest.fixture()
def three(tmp_path):
    write_study(tmp_path, "hist", HIST, status="running")
    write_study(tmp_path, "hist2", HIST2)
    write_study(tmp_path, "reg", REG, metric="val_loss", mode="min")
    return [(n, study_info(tmp_path / n).trials) for n in ("hist", "hist2", "reg")]


def test_compare_means_best_so_far_and_table(three):
    d = fc.compare_data(three, "val_accuracy", "max")
    assert [r.name for r in d.studies] == ["hist", "hist2"]
    assert d.missing == [("reg", "no finished trial has a value of final validation accuracy (val_accuracy)")]
    hist, hist2 = d.studies
    assert hist.means.tolist() == [0.625, 0.375, 0.875, 0.875]
    assert hist2.means.tolist() == [0.5, 0.8125, 0.6875] and hist2.means_config == ["c0000", "c0001", "c0002"]
    assert (hist2.best_config, hist2.best_mean, hist2.best_seeds) == ("c0001", 0.8125, 2)
    assert hist2.best_std == pytest.approx(0.125 / math.sqrt(2))
    assert fc.comparison_rows(d) == [
        {"study": "hist", "configurations": 4, "best mean \u00b1 s.d.": "0.875", "seeds": 1, "config_id": "c0002"},
        {"study": "hist2", "configurations": 3, "best mean \u00b1 s.d.": "0.8125 \u00b1 0.088", "seeds": 2,
         "config_id": "c0001"}]
    assert fc.missing_note(d) == ("Not shown, no value of val_accuracy: reg (no finished trial has a value of final "
                                  "validation accuracy (val_accuracy))")

    dist = fc.distribution_figure(d)
    valid(dist)
    assert [t.type for t in dist.data] == ["box", "box"] and [t.name for t in dist.data] == ["hist", "hist2"]
    assert list(dist.data[1].y) == [0.5, 0.8125, 0.6875] and list(dist.data[1].text) == ["c0000", "c0001", "c0002"]
    assert dist.data[0].boxpoints == "all" and "1 without val_accuracy left out" in dist.layout.title.subtitle.text
    best = fc.best_so_far_figure(d)
    valid(best)
    assert [t.name for t in best.data] == ["hist", "hist2"]
    assert list(best.data[0].y) == [0.625, 0.625, 0.875, 0.875] and list(best.data[1].y) == [0.5, 0.8125, 0.8125]
    assert list(best.data[1].x) == [1, 2, 3] and list(best.data[1].text) == ["c0000", "c0001", "c0001"]


def test_compare_min_metric_all_three(three):
    d = fc.compare_data(three, "val_loss", fc.comparison_mode("val_loss", {}))
    assert d.mode == "min" and not d.missing and fc.missing_note(d) is None
    assert [(r.name, r.best_config, r.best_mean) for r in d.studies] == [
        ("hist", "c0003", 0.09375), ("hist2", "c0001", 0.25), ("reg", "c0001", 0.25)]
    assert fc.comparison_rows(d)[2]["best mean \u00b1 s.d."] == "0.25"  # one seed: no s.d.
    assert np.array_equal(d.studies[0].history.best, [0.375, 0.375, 0.125, 0.09375])


def test_compare_when_no_study_has_the_metric(three):
    with pytest.raises(NotApplicable, match=r"no picked study has a value of .*reg: no finished trial"):
        fc.compare_data(three[2:], "val_accuracy", "max")
    with pytest.raises(NotApplicable, match="pick one or more studies"):
        fc.compare_data([], "val_accuracy", "max")
    assert fc.comparison_mode("custom", {"custom": "min"}) == "min" and fc.comparison_mode("custom", {}) == "max"
    assert fc.comparison_mode("val_accuracy", {"val_accuracy": "min"}) == "max"  # the schema's direction wins
