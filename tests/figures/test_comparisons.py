"""Arms of a study against a reference arm (hyperswitch.figures.comparisons): pairing by seed and the parameters
that vary within an arm, the bimodal rule, the table and the forest plot. Expected numbers are computed by hand or
by scipy.stats from the values below."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hyperswitch.figures import comparisons as fc
from hyperswitch.figures.data import NotApplicable
from tests.figures.figtables import trials_frame, valid

NAN = math.nan
FIRST = [0.90, 0.92, 0.94, 0.96]
MIXER = [0.93, 0.94, 0.97, 0.98]
NO_CORR = [0.95, NAN, 0.91, 0.99, 0.90]  # seed 1 diverged; seed 4 has no first_order run


def ablation_trials(tasks=("digits_mlp",)):
    """``variant`` sets T1 (never a pairing column); one running and one error trial (left out)."""
    rows = []
    for ti, task in enumerate(tasks):
        shift = 0.01 * ti
        for variant, t1, values in (("first_order", 0, FIRST), ("mixer", 10, MIXER), ("no_corrector", 0, NO_CORR)):
            for seed, v in enumerate(values):
                rows.append({"trial_id": f"{task}-{variant}-s{seed}", "config_id": f"{task}-{variant}", "seed": seed,
                             "task": task, "variant": variant, "T1": t1, "lr": 0.05,
                             "status": "diverged" if math.isnan(v) else "completed",
                             "val_accuracy": v + shift if not math.isnan(v) else NAN,
                             "time_to_target_s": 2.0 + seed})
        rows.append({"trial_id": f"{task}-mixer-s9", "config_id": f"{task}-mixer", "seed": 9, "task": task,
                     "variant": "mixer", "T1": 10, "lr": 0.05, "status": "running", "val_accuracy": 0.5})
        rows.append({"trial_id": f"{task}-mixer-s8", "config_id": f"{task}-mixer", "seed": 8, "task": task,
                     "variant": "mixer", "T1": 10, "lr": 0.05, "status": "error", "val_accuracy": NAN})
    return trials_frame(rows)


PARAMS = ["task", "variant", "T1", "lr"]


def test_arms_pair_by_seed_against_the_reference():
    t = ablation_trials()
    assert fc.arm_labels(t, "variant") == ["variant = first_order", "variant = mixer", "variant = no_corrector"]
    assert fc.pairing_columns(t, "variant", PARAMS) == ["seed"]  # T1 is set by the variant; lr and task are fixed
    d = fc.comparison_data(t, PARAMS, "variant", "val_accuracy")
    assert d.reference == "variant = first_order" and d.mode == "max" and d.left_out == {"error": 1, "running": 1}
    ref, mixer, nc = d.rows
    assert ref.is_reference and ref.paired is None and ref.verdict == "reference"
    assert ref.outcome.n == 4 and not ref.outcome.bimodal and ref.outcome.mean == pytest.approx(0.93)
    p = mixer.paired
    ci = stats.ttest_rel(MIXER, FIRST).confidence_interval()
    assert (p.n, p.mean, p.low, p.high) == (4, pytest.approx(0.025), pytest.approx(ci.low), pytest.approx(ci.high))
    assert mixer.verdict == "higher (CI excludes 0)" and p.dropped == []
    # no_corrector: seed 1 diverged, seed 4 has no reference: 3 pairs (seeds 0, 2, 3)
    assert nc.outcome.bimodal and (nc.outcome.failed.k, nc.outcome.failed.n) == (1, 5)
    assert (nc.diverged.k, nc.diverged.n) == (1, 5)
    assert nc.outcome.mean == pytest.approx(np.mean([0.95, 0.91, 0.99, 0.90]))  # over the runs that did not fail
    assert nc.paired.keys == ["seed 0", "seed 2", "seed 3"]
    assert nc.paired.dropped == [("seed 1", "no finite value in variant = no_corrector"),
                                 ("seed 4", "only in variant = no_corrector")]
    ci = stats.ttest_rel([0.95, 0.91, 0.99], FIRST[:1] + FIRST[2:]).confidence_interval()
    assert (nc.paired.low, nc.paired.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert nc.verdict == "CI includes 0"
    assert nc.failed_diff.diff == pytest.approx(0.2) and nc.failed_diff.low < 0 < nc.failed_diff.high
    assert d.bimodal


def test_reference_choice_and_default():
    t = ablation_trials()
    d = fc.comparison_data(t, PARAMS, "variant", "val_accuracy", reference="variant = mixer")
    assert d.reference == "variant = mixer" and d.rows[0].paired.mean == pytest.approx(-0.025)
    assert fc.default_reference(["lr = 0.01", "lr = 0.1"]) == "lr = 0.01"  # "= 0.01" is not "= 0"
    assert fc.default_reference(["T1 = 10", "T1 = 0"]) == "T1 = 0"
    assert fc.default_reference(["corrector off", "corrector on"]) == "corrector off"
    assert fc.default_reference(["single: adam", "single: sgdm"]) == "single: sgdm"
    assert fc.default_reference([]) is None
    unknown = fc.comparison_data(t, PARAMS, "variant", "val_accuracy", reference="nope")
    assert unknown.reference == "variant = first_order"


def test_a_task_varies_within_arms_so_pairs_share_it_and_split_keeps_tasks_apart():
    t = ablation_trials(("digits_mlp", "digits_cnn"))
    assert fc.pairing_columns(t, "variant", PARAMS) == ["seed", "task"]
    pooled = fc.comparison_data(t, PARAMS, "variant", "val_accuracy")
    assert pooled.rows[1].paired.n == 8 and pooled.rows[1].paired.mean == pytest.approx(0.025)
    assert "seed 0, task digits_cnn" in pooled.rows[1].paired.keys
    d = fc.comparison_data(t, PARAMS, "variant", "val_accuracy", split="task")
    assert [(r.split, r.arm) for r in d.rows] == [
        ("task = digits_cnn", "variant = first_order"), ("task = digits_cnn", "variant = mixer"),
        ("task = digits_cnn", "variant = no_corrector"), ("task = digits_mlp", "variant = first_order"),
        ("task = digits_mlp", "variant = mixer"), ("task = digits_mlp", "variant = no_corrector")]
    assert [r.paired.n for r in d.rows if r.paired] == [4, 3, 4, 3]


def test_bootstrap_method_and_other_metrics():
    t = ablation_trials()
    d = fc.comparison_data(t, PARAMS, "variant", "val_accuracy", method="bootstrap")
    p = d.rows[1].paired
    assert p.method == "bootstrap" and p.low <= 0.02 + 1e-12 and p.high >= 0.03 - 1e-12
    tt = fc.comparison_data(t, PARAMS, "variant", "time_to_target_s")
    assert tt.mode == "min" and tt.rows[1].paired.mean == 0.0
    assert fc.failure_label("time_to_target_s") == "diverged or never reached the target"


def test_not_applicable_cases():
    t = ablation_trials()
    with pytest.raises(NotApplicable, match="no final training loss"):
        fc.comparison_data(t.drop(columns=[]), PARAMS, "variant", "train_loss")
    with pytest.raises(NotApplicable, match="single value"):
        fc.comparison_data(t[t["variant"] == "mixer"], PARAMS, "variant", "val_accuracy")
    with pytest.raises(NotApplicable, match="no seed column"):
        fc.comparison_data(t.drop(columns=["seed"]), PARAMS, "variant", "val_accuracy")
    with pytest.raises(NotApplicable, match="no trial has completed"):
        fc.comparison_data(t[t["status"] == "running"], PARAMS, "variant", "val_accuracy")


def test_table_rows_and_note():
    d = fc.comparison_data(ablation_trials(), PARAMS, "variant", "val_accuracy")
    rows = fc.comparison_rows(d)
    assert "split" not in rows[0] and rows[0]["arm"] == "variant = first_order (reference)"
    assert rows[0]["failed"] == "0/4 (0%, CI 0\u201349%)"  # Wilson upper bound of 0/4: 0.4899
    assert rows[1]["paired difference [95% CI]"].startswith("+0.025 [+0.0158")
    assert rows[1]["pairs"] == "4 (< 10)" and rows[1]["verdict helper"] == "higher (CI excludes 0)"
    assert rows[2]["mean \u00b1 s.d."].endswith("(n 4, runs that did not fail)")
    assert rows[2]["not paired"] == "1 no finite value in variant = no_corrector; 1 only in variant = no_corrector"
    assert rows[2]["failure rate difference [95% CI]"].startswith("+20 pp [")
    note = fc.comparison_note(d)
    assert "Pairs share seed" in note and "Newcombe" in note and "1 error, 1 running" in note


def test_forest_figure():
    d = fc.comparison_data(ablation_trials(("digits_mlp", "digits_cnn")), PARAMS, "variant", "val_accuracy",
                           split="task")
    fig = valid(fc.forest_figure(d))
    assert [tr.name for tr in fig.data] == ["task = digits_cnn"] * 2 + ["task = digits_mlp"] * 2  # + rate panel
    assert fig.data[0].x[0] == pytest.approx(0.025) and fig.data[1].xaxis == "x2"
    assert list(fig.data[0].y) == ["variant = mixer (task = digits_cnn)", "variant = no_corrector (task = digits_cnn)"]
    assert fig.data[0].error_x.array[0] == pytest.approx(d.rows[1].paired.high - 0.025)
    assert "paired difference vs variant = first_order" in fig.layout.title.text
    assert "open point: under 10 pairs" in fig.layout.title.subtitle.text
    one = fc.comparison_data(ablation_trials(), PARAMS, "variant", "val_accuracy", reference="variant = mixer")
    fig = valid(fc.forest_figure(fc.comparison_data(ablation_trials()[lambda t: t.variant != "no_corrector"],
                                                    PARAMS, "variant", "val_accuracy")))
    assert len(fig.data) == 1 and "xaxis2" not in fig.layout.to_plotly_json()  # no failure: one panel
    assert len(valid(fc.forest_figure(one)).data) == 2


def test_table_figure():
    d = fc.comparison_data(ablation_trials(), PARAMS, "variant", "val_accuracy")
    fig = valid(fc.table_figure(d))
    assert fig.data[0].type == "table" and len(fig.data[0].cells.values) == len(fc.comparison_rows(d)[0])
    assert fig.data[0].cells.values[0][0] == "variant = first_order (reference)"


def test_wall_time_comparisons_carry_a_caution():
    d = fc.comparison_data(ablation_trials(), PARAMS, "variant", "time_to_target_s")
    assert "not a speed result" in fc.comparison_note(d)
    assert "not a speed result" in fc.forest_figure(d).layout.title.subtitle.text
    assert "not a speed result" not in fc.comparison_note(fc.comparison_data(ablation_trials(), PARAMS, "variant",
                                                                               "val_accuracy"))
    assert fc.default_reference(["rule = constant", "rule = gen"]) == "rule = constant"
