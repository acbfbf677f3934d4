"""Arms of a study against a reference arm (hyperswitch.figures.comparisons): pairing by seed and the parameters
that vary within an arm, the bimodal rule, the table and the forest plot. Expected numbers are computed by hand or
by scipy.stats from the values below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
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


# --- tuned comparisons: each arm at its own best cell of the tuning parameters, paired by seed ------------------

def tuned_trials(cells: dict[str, dict[tuple[float, float | None], list[float]]],
                 dampings: tuple[float, ...] = (1e-4, 1e-3, 1e-2)) -> pd.DataFrame:
    """``optimizer`` x ``lr`` x ``damping`` (a cell's ``damping`` None: the arm does not read it, its runs repeat
    identically at every damping, as SGD's do in ief_damping_transfer) x seeds; ``lr_eff`` = 0.01 x lr is derived
    (set by the cell). A NaN value is a diverged run."""
    rows = []
    for opt, by_cell in cells.items():
        for (lr, damping), values in by_cell.items():
            for d in dampings if damping is None else (damping,):
                for seed, v in enumerate(values):
                    rows.append({"trial_id": f"{opt}-{lr}-{d}-s{seed}", "config_id": f"{opt}-{lr}-{d}", "seed": seed,
                                 "optimizer": opt, "lr": lr, "damping": d, "lr_eff": 0.01 * lr,
                                 "status": "diverged" if math.isnan(v) else "completed", "val_accuracy": v})
    return trials_frame(rows)


TUNED_PARAMS = ["optimizer", "lr", "damping", "lr_eff"]
S = [0.00, 0.02, 0.01, 0.03]  # a seed's effect, shared by every cell
SGD = {(lr, None): [base + s for s in S] for lr, base in ((0.3, 0.50), (1.0, 0.60), (3.0, 0.70), (10.0, 0.65))}
IEF_BEST = [0.80, 0.84, 0.81, 0.86]  # ief at lr 1, damping 1e-3 (the grid's middle)


def ief_cells():
    out = {(lr, d): [0.70 + s for s in S] for lr in (0.3, 1.0, 3.0, 10.0) for d in (1e-4, 1e-3, 1e-2)}
    out[(1.0, 1e-3)] = IEF_BEST
    out[(3.0, 1e-3)] = [0.75 + s for s in S]
    return out


def ef_cells():  # best at the grid's corner: lr 10 (largest), damping 1e-4 (smallest)
    out = {(lr, d): [0.55 + s for s in S] for lr in (1.0, 3.0, 10.0) for d in (1e-4, 1e-3, 1e-2)}
    out[(10.0, 1e-4)] = [0.66, 0.69, 0.67, 0.70]
    return out


def test_tuned_puts_each_arm_at_its_best_cell_and_pairs_by_seed():
    t = tuned_trials({"sgd": SGD, "ief": ief_cells(), "ef": ef_cells()})
    # cell by cell (not tuned): pairs share the seed and every tuning value
    assert fc.pairing_columns(t, "optimizer", TUNED_PARAMS) == ["seed", "lr", "damping", "lr_eff"]
    d = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr", "damping"])
    assert d.tuned and not d.holdout and d.tune_over == ["lr", "damping"]
    assert d.pair_on == ["seed"]  # lr_eff is set by the cell: no pairing column either
    assert d.reference == "optimizer = sgd" and d.choose_seeds == d.measure_seeds == [0, 1, 2, 3]
    cells = {r.arm: r.tuned for r in d.rows}
    sgd, ief, ef = cells["optimizer = sgd"], cells["optimizer = ief"], cells["optimizer = ef"]
    # sgd: damping not read (identical runs at its 3 values, pooled: one run per seed), best lr 3 of 4 cells
    assert sgd.values == {"lr": 3.0} and sgd.unused == {"damping": 3} and sgd.cells == 4 and sgd.edges == {}
    assert sgd.score == pytest.approx(0.70 + np.mean(S))
    assert ief.values == {"lr": 1.0, "damping": 1e-3} and ief.cells == 12 and ief.edges == {}
    assert ief.score == pytest.approx(np.mean(IEF_BEST)) and ief.failed == 0
    assert ef.values == {"lr": 10.0, "damping": 1e-4} and ef.edges == {"lr": "largest", "damping": "smallest"}
    rows = {r.arm: r for r in d.rows}
    assert rows["optimizer = sgd"].outcome.n == 4  # one run per seed, not 3 x 4
    sgd_best = [0.70 + s for s in S]
    for arm, values in (("optimizer = ief", IEF_BEST), ("optimizer = ef", [0.66, 0.69, 0.67, 0.70])):
        p = rows[arm].paired
        diffs = np.subtract(values, sgd_best)  # by hand: ief [0.10, 0.12, 0.10, 0.13], mean 0.1125
        ci = stats.ttest_rel(values, sgd_best).confidence_interval()
        assert p.n == 4 and p.keys == ["seed 0", "seed 1", "seed 2", "seed 3"] and p.dropped == []
        assert p.mean == pytest.approx(diffs.mean()) and (p.low, p.high) == (pytest.approx(ci.low),
                                                                             pytest.approx(ci.high))
    assert rows["optimizer = ief"].paired.mean == pytest.approx(0.1125)
    assert rows["optimizer = ef"].paired.mean == pytest.approx(-0.035)  # [-0.04, -0.03, -0.04, -0.03]
    # another reference: the same cells, the differences against it
    other = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", "optimizer = ief",
                              tune_over=["damping", "lr"])
    assert {r.arm: r.tuned.values for r in other.rows}["optimizer = ief"] == {"damping": 1e-3, "lr": 1.0}
    assert {r.arm: r.paired.mean for r in other.rows if r.paired}["optimizer = sgd"] == pytest.approx(-0.1125)


def test_tuned_table_note_and_figures_show_the_cells_and_the_edge():
    d = fc.comparison_data(tuned_trials({"sgd": SGD, "ief": ief_cells(), "ef": ef_cells()}), TUNED_PARAMS,
                           "optimizer", "val_accuracy", tune_over=["lr", "damping"])
    rows = {r["arm"]: r for r in fc.comparison_rows(d)}
    assert list(rows["optimizer = ef"])[:3] == ["arm", "tuned cell", "runs"]
    assert rows["optimizer = sgd (reference)"]["tuned cell"] == (
        "lr=3, damping not used (same runs at its 3 values); best of 4 cells")
    assert rows["optimizer = ief"]["tuned cell"] == "lr=1, damping=0.001; best of 12 cells"
    assert rows["optimizer = ef"]["tuned cell"] == (
        "lr=10, damping=0.0001; best of 9 cells; on the grid's edge (lr largest, damping smallest): extend the grid")
    note = fc.comparison_note(d)
    assert "Pairs share seed;" in note and "Tuned over lr, damping" in note
    assert "The same seeds chose each cell and measure it: the differences are optimistic" in note
    assert "On the grid's edge (the best may lie outside the grid: extend it): optimizer = ef: lr=10 is its " \
           "largest, damping=0.0001 is its smallest." in note
    fig = valid(fc.forest_figure(d))
    assert list(fig.data[0].y) == ["optimizer = ef [lr=10, damping=0.0001; grid edge]",
                                   "optimizer = ief [lr=1, damping=0.001]"]
    sub = fig.layout.title.subtitle.text
    assert "tuned over lr, damping: each arm at its own best cell (reference at lr=3)<br>" in sub
    assert "the same seeds chose the cells and measure them: optimistic; grid edge: extend the grid" in sub
    table = valid(fc.table_figure(d))
    assert "<b>tuned cell</b>" in table.data[0].header.values
    # not tuned: no such column
    plain = fc.comparison_data(tuned_trials({"sgd": SGD, "ief": ief_cells()}), TUNED_PARAMS, "optimizer",
                               "val_accuracy")
    assert "tuned cell" not in fc.comparison_rows(plain)[0] and "Tuned" not in fc.comparison_note(plain)


def test_holdout_chooses_on_the_first_half_of_the_seeds_and_measures_on_the_other():
    # ief: lr 1 is best on seeds 0-2, lr 3 over all seeds; sgd: lr 3 best on seeds 0-2, lr 1 over all seeds
    ief = {(1.0, 1e-3): [0.90, 0.90, 0.90, 0.50, 0.52, 0.47], (3.0, 1e-3): [0.80] * 6}
    sgd = {(1.0, None): [0.60, 0.61, 0.62, 0.63, 0.64, 0.65], (3.0, None): [0.70, 0.70, 0.70, 0.40, 0.41, 0.42]}
    t = tuned_trials({"sgd": sgd, "ief": ief}, dampings=(1e-3,))
    same = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"])
    cells = {r.arm: r.tuned.values for r in same.rows}
    assert cells == {"optimizer = ief": {"lr": 3.0}, "optimizer = sgd": {"lr": 1.0}}
    p = same.rows[0].paired
    assert p.n == 6 and p.mean == pytest.approx(np.mean(np.subtract([0.80] * 6, sgd[(1.0, None)])))  # 0.175

    held = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"], holdout=True)
    assert held.holdout and held.choose_seeds == [0, 1, 2] and held.measure_seeds == [3, 4, 5]
    cells = {r.arm: r.tuned for r in held.rows}
    assert cells["optimizer = ief"].values == {"lr": 1.0} and cells["optimizer = sgd"].values == {"lr": 3.0}
    assert cells["optimizer = ief"].score == pytest.approx(0.90) and cells["optimizer = ief"].runs == 3
    assert cells["optimizer = sgd"].score == pytest.approx(0.70)  # chosen on seeds 0-2 only
    ief_row, sgd_row = held.rows
    assert sgd_row.is_reference and sgd_row.outcome.n == 3
    assert sgd_row.outcome.mean == pytest.approx(0.41)  # measured on seeds 3-5 only
    p = ief_row.paired
    diffs = np.subtract([0.50, 0.52, 0.47], [0.40, 0.41, 0.42])  # [0.10, 0.11, 0.05]
    ci = stats.ttest_rel([0.50, 0.52, 0.47], [0.40, 0.41, 0.42]).confidence_interval()
    assert p.keys == ["seed 3", "seed 4", "seed 5"] and p.mean == pytest.approx(diffs.mean())
    assert (p.low, p.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    note = fc.comparison_note(held)
    assert "held-out seeds: the cells were chosen on seeds 0-2 and the rows and differences are over seeds 3-5" \
        in note and "optimistic" not in note
    assert "differences on seeds 3-5 (held out)" in fc.forest_figure(held).layout.title.subtitle.text
    # an odd number of seeds: the smaller half chooses
    odd = fc.comparison_data(t[t["seed"] < 5], TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"],
                             holdout=True)
    assert odd.choose_seeds == [0, 1] and odd.measure_seeds == [2, 3, 4]


def test_a_cell_whose_runs_mostly_fail_does_not_win():
    nan = NAN
    ef = {(1.0, None): [0.38] * 6, (3.0, None): [0.40] * 6,
          (10.0, None): [0.95, 0.95, nan, nan, nan, nan]}  # mean with failures as the arm's worst: 0.57 > 0.40
    ief = {(1.0, None): [0.30] * 6, (3.0, None): [0.80] * 6,
           (10.0, None): [0.95, 0.95, 0.95, 0.95, 0.95, nan]}  # one failure: (5 x 0.95 + 0.30) / 6 > 0.80
    sgd = {(lr, None): [0.50 + 0.01 * k] * 6 for k, lr in enumerate((1.0, 3.0, 10.0))}
    t = tuned_trials({"sgd": sgd, "ef": ef, "ief": ief}, dampings=(1e-3,))
    d = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"])
    rows = {r.arm: r for r in d.rows}
    e, i = rows["optimizer = ef"], rows["optimizer = ief"]
    assert e.tuned.values == {"lr": 3.0} and e.tuned.failed == 0 and e.outcome.failed.k == 0
    assert i.tuned.values == {"lr": 10.0} and i.tuned.edges == {"lr": "largest"}
    assert i.tuned.score == pytest.approx((5 * 0.95 + 0.30) / 6) and i.tuned.failed == pytest.approx(1 / 6)
    assert i.outcome.failed.k == 1 and i.paired.n == 5  # the diverged seed is not a pair
    assert i.paired.dropped == [("seed 5", "no finite value in optimizer = ief")]
    assert i.paired.mean == pytest.approx(0.95 - 0.52)  # sgd at lr 10 (0.52), its best
    # an arm whose every run failed: the cell with the fewest failures... all fail alike: the first cell, no value
    all_fail = tuned_trials({"sgd": sgd, "ef": {(1.0, None): [nan] * 6, (3.0, None): [nan] * 6}}, dampings=(1e-3,))
    row = fc.comparison_data(all_fail, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"]).rows[0]
    assert row.tuned.values == {"lr": 1.0} and row.outcome.failed.k == 6 and row.paired.n == 0


def test_only_the_cells_with_the_most_runs_compete():
    sgd = {(lr, None): [0.5] * 4 for lr in (1.0, 3.0)}
    t = tuned_trials({"sgd": sgd, "ief": {(1.0, None): [0.6] * 4, (3.0, None): [0.9] * 4}}, dampings=(1e-3,))
    t = t[~((t["optimizer"] == "ief") & (t["lr"] == 3.0) & (t["seed"] > 0))]  # lr 3: one seed so far
    cell = fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"]).rows[0].tuned
    assert cell.values == {"lr": 1.0} and (cell.cells, cell.fewer, cell.runs) == (1, 1, 4)
    assert cell.text == "lr=1; best of 1 cell with 4 runs (1 with fewer not compared); on the grid's edge (lr " \
                        "smallest): extend the grid"


def test_tuned_names_are_checked():
    t = tuned_trials({"sgd": SGD, "ief": ief_cells()})
    for names, message in [(["nope"], "'nope' is not a parameter of this study that can be tuned over; its "
                                      "parameters: lr, damping, lr_eff"),
                           (["lr", "optimizer"], "optimizer is the factor whose arms are compared"),
                           (["seed"], "seed pairs the runs")]:
        with pytest.raises(ValueError, match=message):
            fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=names)
    with pytest.raises(ValueError, match="damping is the split"):
        fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", split="damping", tune_over=["damping"])
    with pytest.raises(ValueError, match="held-out seeds apply to a tuned comparison"):
        fc.comparison_data(t, TUNED_PARAMS, "optimizer", "val_accuracy", holdout=True)
    with pytest.raises(NotApplicable, match="held-out seeds need at least 2 seeds"):
        fc.comparison_data(t[t["seed"] == 0], TUNED_PARAMS, "optimizer", "val_accuracy", tune_over=["lr"],
                           holdout=True)
    with pytest.raises(NotApplicable, match="lr_eff is set by lr"):  # a factor derived from the tuned parameter
        fc.comparison_data(t, TUNED_PARAMS, "lr_eff", "val_accuracy", tune_over=["lr"])
    assert fc.tune_choices(t, TUNED_PARAMS, "optimizer") == ["lr", "damping", "lr_eff"]
    with pytest.raises(ValueError, match="T1 is what the arms of corrector set"):
        fc.comparison_data(ablation_trials(), PARAMS, "corrector", "val_accuracy", tune_over=["T1"])
