"""The Comparisons page (issue 16): every arm of a factor against a reference arm, paired by seed. Its layout and
callback values without a browser, then for real: the dashboard served as a subprocess on a study written by the
real results store (tests/figures/armstudy.py), headless Chromium choosing the reference, the split and the
interval method, tuning each arm over task (with held-out seeds), and reading the forest plot Plotly drew and the
table. Numbers are those of
tests/figures/test_comparisons.py (mixer - first_order = +0.025 in every pair)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plotly.utils import PlotlyJSONEncoder

from dashboards._shared import Context
from dashboards.pages import PAGES, comparisons
from hyperswitch.figures.data import NotApplicable
from tests.dashboards.dashtools import chromium_page, dashboard_server, pick, wait_figure
from tests.figures.armstudy import write_arms_study


@pytest.fixture()
def storage(tmp_path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    write_arms_study(runs, "arms")
    return runs


def test_page_is_registered_after_ablations():
    paths = [p.path for p in PAGES]
    assert paths.index("/comparisons") == paths.index("/ablations") + 1 and paths[-1] == "/compare"


def test_layout_and_comparison_without_a_browser(storage):
    ctx = Context(storage)
    text = json.dumps(comparisons.layout(ctx, "arms"), cls=PlotlyJSONEncoder)
    assert '"id": "comparisons-reference"' in text and '"value": "variant = first_order"' in text
    assert '"value": "variant"' in text and '"value": "task"' in text  # factor variant, split per task
    d = comparisons.comparison(ctx, "arms", "variant", "variant = first_order", "task", "val_accuracy", "t")
    assert d.pair_on == ["seed", "task"] and d.left_out == {"running": 1}
    assert [r.paired.n for r in d.rows if r.paired] == [4, 3, 4, 3]
    table = json.dumps(comparisons.table_component(d), cls=PlotlyJSONEncoder)
    assert "higher (CI excludes 0)" in table and "1 only in variant = no_corrector" in table
    with pytest.raises(NotApplicable, match="no factor"):
        comparisons.comparison(ctx, "arms", None, None, None, "val_accuracy", "t")
    # tuned: each variant at its best task (digits_cnn, +0.01 in every run), paired by seed
    page = comparisons.layout(ctx, "arms")
    assert [o["value"] for o in page["comparisons-tune"].options] == ["task", "T1"]  # not the factor, variant
    assert page["comparisons-tune"].value == [] and page["comparisons-holdout"].value == []
    d = comparisons.comparison(ctx, "arms", "variant", "variant = first_order", "none", "val_accuracy", "t", ["task"])
    assert d.pair_on == ["seed"] and [r.tuned.cell for r in d.rows] == ["task=digits_cnn"] * 3
    assert d.rows[1].paired.n == 4 and d.rows[1].paired.mean == pytest.approx(0.025)
    table = json.dumps(comparisons.table_component(d), cls=PlotlyJSONEncoder)
    assert "tuned cell" in table and "task=digits_cnn; best of 2 cells" in table
    held = comparisons.comparison(ctx, "arms", "variant", None, "none", "val_accuracy", "t", ["task"], True)
    assert held.choose_seeds == [0, 1] and held.measure_seeds == [2, 3, 4]
    with pytest.raises(NotApplicable, match="held-out seeds apply to a tuned comparison"):
        comparisons.comparison(ctx, "arms", "variant", None, "none", "val_accuracy", "t", [], True)
    with pytest.raises(NotApplicable, match="task is both the split and a parameter to tune over"):
        comparisons.comparison(ctx, "arms", "variant", None, "task", "val_accuracy", "t", ["task"])


def test_comparisons_page_in_chromium(storage, tmp_path):
    log = tmp_path / "server.log"
    with dashboard_server(storage, log) as base, chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/comparisons?study=arms")
        f = wait_figure(page, "comparisons-graph", "f.title.includes('paired difference vs variant = first_order')")
        # per task: mixer and no_corrector for each, metric panel + failure-rate panel (no_corrector diverged once)
        assert f["n"] == 4 and f["names"] == ["task = digits_cnn"] * 2 + ["task = digits_mlp"] * 2
        assert "pairs share seed, task" in f["subtitle"] and "Newcombe" in f["subtitle"]
        page.wait_for_selector("#comparisons-rows")
        rows = page.locator("#comparisons-rows tbody tr")
        assert rows.count() == 6
        mixer = rows.nth(1).inner_text()
        assert "variant = mixer" in mixer and "+0.025 [+0.0158" in mixer and "higher (CI excludes 0)" in mixer
        assert "1/5 (20%" in rows.nth(2).inner_text()  # no_corrector: the diverged seed as a rate
        note = page.inner_text("#comparisons-note")
        assert "Pairs share seed, task" in note and "1 running" in note

        pick(page, "comparisons-split", "none")  # pooled over tasks: pairs share (seed, task), 8 for mixer
        wait_figure(page, "comparisons-graph", "f.n === 2 && f.subtitle.includes('pairs: 8, 6')")
        assert page.locator("#comparisons-rows tbody tr").count() == 3
        pick(page, "comparisons-reference", "variant = mixer")
        f = wait_figure(page, "comparisons-graph", "f.title.includes('vs variant = mixer')")
        assert "variant = first_order" in page.locator("#comparisons-rows tbody tr").nth(0).inner_text()
        assert "-0.025 [" in page.locator("#comparisons-rows tbody tr").nth(0).inner_text()
        page.click("#comparisons-method >> text=percentile bootstrap")
        wait_figure(page, "comparisons-graph", "f.subtitle.includes('percentile bootstrap')")
        assert "percentile bootstrap" in page.inner_text("#comparisons-note")
        pick(page, "comparisons-tune", "task")  # each variant at its best task, paired by seed
        wait_figure(page, "comparisons-graph", "f.subtitle.includes('tuned over task')")
        assert "task=digits_cnn; best of 2 cells" in page.inner_text("#comparisons-rows")
        assert "optimistic" in page.inner_text("#comparisons-note")
        page.click("#comparisons-holdout >> text=held-out seeds")
        wait_figure(page, "comparisons-graph", "f.subtitle.includes('differences on seeds 2-4 (held out)')")
        # T1 is set by the variant: T1 10 is mixer only, so nothing pairs across T1
        pick(page, "comparisons-factor", "T1: corrector length (T1 = 0 turns it off)")
        wait_figure(page, "comparisons-graph", "f.title.includes('vs T1 = 0')")
        assert "only in T1 = 10" in page.inner_text("#comparisons-rows")
        page.screenshot(path=str(tmp_path / "comparisons.png"), full_page=True)
        assert not errors, errors
    assert "Traceback" not in log.read_text()
