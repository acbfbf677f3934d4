"""The dashboard for real: a real small sweep on a real local Ray, the real server (`hyperswitch dashboard` as a
subprocess), Debian's Chromium driven by Playwright. Every page is opened, a control is changed and the figure
Plotly drew in the page is checked (trace count, axis title, heatmap cells); screenshots go to the test's
temporary folder. A study with a corrupt Parquet file shows a message on the page and a line in the server log."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from tests.dashboards.dashtools import chromium_page, dashboard_server, pick, wait_figure

pytestmark = pytest.mark.slow

SPACE = """\
name: dash
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: {at: $switch_at}
train: {steps: 20, eval_every: 5, target_accuracy: 0.3}
parameters:
  lr: {type: categorical, choices: [0.05, 0.2]}
  switch_at: {type: int, low: 5, high: 10, step: 5}
search: {algorithm: grid, seed: 0}
seeds: 2
max_concurrent: 2
"""


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screens" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_every_page_in_chromium(local_ray, space_file, tmp_path):
    storage = tmp_path / "runs"
    run_sweep(load_space(space_file(SPACE)), storage=storage, out=lambda s: None)  # 2 x 2 grid x 2 seeds
    broken = storage / "broken"
    shutil.copytree(storage / "dash", broken)
    (broken / "steps.parquet").write_bytes(b"PAR1 this is not a parquet file")
    log = tmp_path / "server.log"

    with dashboard_server(storage, log) as base, chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Studies: both studies listed, progress of the finished one, a link to its parameter study.
        page.goto(base + "/")
        page.wait_for_selector("#studies-rows")
        rows = page.inner_text("#studies-rows")
        assert "dash" in rows and "8/8" in rows and "completed" in rows and "lr, switch_at" in rows
        shot(page, tmp_path, "studies")
        page.click("text=dash >> nth=0")  # the study's link (rows are sorted: broken, dash)
        page.wait_for_url("**/parameters?study=*")

        # Parameter study: one parameter -> mean line with a band; the spread control restates the band;
        # a second parameter -> a heatmap of 2 x 2 cells.
        page.goto(base + "/parameters?study=dash")
        f = wait_figure(page, "parameters-graph", "f.title.includes('vs lr')")
        assert f["n"] == 3 and f["x"] == "lr" and f["y"] == "final validation accuracy"
        assert "standard deviation" in f["subtitle"]
        page.click("#parameters-spread >> text=95% confidence interval")
        f = wait_figure(page, "parameters-graph", "f.subtitle.includes('95% confidence')")
        pick(page, "parameters-params", "switch_at")
        f = wait_figure(page, "parameters-graph", "f.types[0] === 'heatmap'")
        assert f["cells"] == 4 and f["x"] == "lr" and f["y"] == "switch_at" and "4 cells" in f["subtitle"]
        imp = wait_figure(page, "parameters-importance", "f.title === 'parameter importance'")
        assert imp["types"] == ["bar"] and "fANOVA" in imp["subtitle"]
        shot(page, tmp_path, "parameters")

        # Learning curves: grouped by lr (2 groups: band + mean each, 2 groups of switch markers); x -> epoch.
        page.goto(base + "/curves?study=dash")
        f = wait_figure(page, "curves-graph", "f.title.includes('training loss vs step')")
        assert f["n"] == 2 * 3 + 2 and f["x"] == "step" and f["names"].count("switch (lr = 0.05)") == 1
        page.click("#curves-x >> text=epoch")
        f = wait_figure(page, "curves-graph", "f.x === 'epoch'")
        pick(page, "curves-group", "none (all runs)")
        f = wait_figure(page, "curves-graph", "f.n === 4")  # one group: band, mean, markers
        shot(page, tmp_path, "curves")

        # Switching: one box per configuration; the table has one row per configuration; unit -> epoch.
        page.goto(base + "/switching?study=dash")
        f = wait_figure(page, "switching-graph", "f.title.includes('switch step')")
        assert f["types"] == ["box"] * 4 and f["y"] == "switch step"
        page.wait_for_selector("#switching-table-rows")
        assert page.locator("#switching-table-rows tbody tr").count() == 1 + 4  # header row + 4 configurations
        page.click("#switching-unit >> text=epoch")
        f = wait_figure(page, "switching-graph", "f.y === 'switch epoch'")
        assert "no iomt policy" in page.inner_text("#switching-iomt-message").lower()
        shot(page, tmp_path, "switching")

        # Memory and time: four figures, grouped at first by the study's first varied parameter (it has one
        # policy); grouping by policy redraws the three grouped figures; the Pareto front's time axis follows
        # its control.
        page.goto(base + "/memory?study=dash")
        f = wait_figure(page, "memory-peak", "f.title === 'peak memory per lr'")
        assert f["types"] == ["bar"] and f["x"] == "lr"
        f = wait_figure(page, "memory-phase", "f.title === 'peak memory per lr and phase'")
        assert sorted(f["names"]) == ["adam", "sgdm"] and f["x"] == "lr"
        wait_figure(page, "memory-target", "f.title === 'time to target accuracy per lr'")
        pick(page, "memory-group", "policy")
        f = wait_figure(page, "memory-peak", "f.title === 'peak memory per policy'")
        assert f["x"] == "policy" and "runs per bar: 8" in f["subtitle"]  # one switch policy, all 8 runs
        f = wait_figure(page, "memory-phase", "f.title === 'peak memory per policy and phase'")
        assert sorted(f["names"]) == ["adam", "sgdm"] and f["x"] == "policy"
        wait_figure(page, "memory-target", "f.title === 'time to target accuracy per policy'")
        f = wait_figure(page, "memory-pareto", "f.x === 'wall time (s)'")
        page.click("#memory-pareto-x >> text=time to target (s)")
        wait_figure(page, "memory-pareto", "f.x === 'time to target (s)'")
        shot(page, tmp_path, "memory")

        # Ablations: a bar per value of the factor; another factor redraws with its own axis.
        page.goto(base + "/ablations?study=dash")
        f = wait_figure(page, "ablations-graph", "f.x === 'lr'")
        assert f["types"] == ["bar"]
        pick(page, "ablations-factor", "switch_at")
        wait_figure(page, "ablations-graph", "f.x === 'switch_at'")
        shot(page, tmp_path, "ablations")

        # Learning-rate rules: the switch changes the learning rate (adam 0.001 -> sgdm lr), marked on each group's
        # trajectory (2 groups: band + mean, then switch markers); no damping here.
        page.goto(base + "/lrrules?study=dash")
        f = wait_figure(page, "lrrules-traj", "f.title.includes('learning rate vs step')")
        assert f["n"] == 2 * 3 + 2 and f["names"].count("switch (lr = 0.2)") == 1
        page.click("#lrrules-x >> text=epoch")
        wait_figure(page, "lrrules-traj", "f.x === 'epoch'")
        f = wait_figure(page, "lrrules-ratio", "f.annotations.length === 1")
        assert "does not vary a damping" in f["annotations"][0]
        shot(page, tmp_path, "lrrules")

        # The study picker moves to another study; its corrupt steps.parquet is a message, not a traceback.
        page.goto(base + "/curves?study=dash")
        wait_figure(page, "curves-graph", "f.n > 0")
        pick(page, "app-study", "broken")
        page.wait_for_url("**/curves?study=broken")
        page.wait_for_selector("#curves-message .hs-error")
        msg = page.inner_text("#curves-message")
        assert "Cannot read this study" in msg and "steps.parquet: not a readable Parquet file" in msg
        assert "Traceback" not in page.content()
        shot(page, tmp_path, "broken")
        assert not errors, errors

    server_log = log.read_text()
    assert "steps.parquet: not a readable Parquet file" in server_log and "ERROR" in server_log
    assert "Traceback" not in server_log  # a read error is one line, not a stack
