"""A multi-objective, constrained study end to end: a real NSGA-II sweep on a real local Ray (objectives
val_accuracy (max) and switch_step (min), constraint val_accuracy >= 0.3: all three deterministic on CPU), then
what it left and what every command and view makes of it, checked against the study's own table: its summary's and
`hyperswitch studies`' Pareto front, `export --select pareto` (one file per configuration on the front, feasible
ones only), the report's Pareto view and the dashboard's in Chromium (the study's own two objectives), and
`export-optuna` (Optuna's best_trials and optuna-dashboard's trials with their constraint values)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from hyperswitch.cli import main
from hyperswitch.figures.report import write_report
from hyperswitch.results import open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from tests.dashboards.dashtools import chromium_page, dashboard_server, wait_figure

pytestmark = pytest.mark.slow

SPACE = """\
name: mo
workload: {name: digits_mlp, batch_size: 32, hidden: 16}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: {at: $switch_at}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.003, 0.05, 0.3]}
  switch_at: {type: int, low: 0, high: 15, step: 5}
search: {algorithm: nsga2, population_size: 3, samples: 6, seed: 1}
metric: [val_accuracy, switch_step]
mode: [max, min]
constraints: [val_accuracy >= 0.3]
seeds: 2
max_concurrent: 2
"""


def brute_front(means, feasible) -> set[str]:
    """The feasible configurations no other feasible one dominates (higher accuracy, lower switch step)."""
    out = set()
    for c, (a, s) in means.items():
        if feasible[c] and not any(feasible[d] and a2 >= a and s2 <= s and (a2 > a or s2 < s)
                                   for d, (a2, s2) in means.items() if d != c):
            out.add(c)
    return out


@pytest.fixture(scope="module")
def study(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("mo")
    (root / "mo.yaml").write_text(SPACE)
    lines: list[str] = []
    run_sweep(load_space(root / "mo.yaml"), storage=root / "runs", out=lines.append)
    t = open_study(root / "runs" / "mo").trials
    means = {str(c): (g["val_accuracy"].mean(), g["switch_step"].mean()) for c, g in t.groupby("config_id")}
    feasible = {c: a >= 0.3 for c, (a, _) in means.items()}
    return root, lines, t, means, brute_front(means, feasible), feasible


def test_the_study_its_summary_and_the_commands(study, capsys):
    root, lines, t, means, front, feasible = study
    meta = json.loads((root / "runs" / "mo" / "study.json").read_text())
    assert meta["metric"] == ["val_accuracy", "switch_step"] and meta["mode"] == ["max", "min"]
    assert meta["constraints"] == ["val_accuracy >= 0.3"] and meta["summary"]["algorithm"] == "nsga2"
    assert len(t) == 12 and set(t["status"]) == {"completed"}
    assert t["feasible"].tolist() == (t["val_accuracy"] >= 0.3).tolist()  # each trial's own values
    assert 1 <= len(front) <= 6

    text = "\n".join(lines)
    assert "objectives val_accuracy (max), switch_step (min), constraints val_accuracy >= 0.3" in text
    trial_lines = [line for line in lines if line.startswith("[")]
    assert len(trial_lines) == 12 and all(" front " in line and "switch_step=" in line for line in trial_lines)
    head = next(i for i, line in enumerate(lines) if line.startswith("Pareto front of"))
    assert f"{len(front)} configuration(s) (feasible ones only)" in lines[head]
    listed = [line.split()[0] for line in lines[head + 1: head + 1 + len(front)]]
    assert set(listed) == front and "best trial" not in text
    first = {c: means[c][0] for c in front}
    assert listed == sorted(front, key=lambda c: (-first[c], means[c][1], c))  # by accuracy, best first

    capsys.readouterr()
    assert main(["studies", "--storage", str(root / "runs")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mo "))
    assert f"front {len(front)}" in row and set(row.split()[-len(front):]) == front

    old = os.getcwd()
    os.chdir(root)
    try:
        assert main(["export", "mo", "--select", "pareto", "-o", "front/"]) == 0
        assert main(["export", "mo", "--select", "pareto", "--max-time-ratio", "2"]) == 2
    finally:
        os.chdir(old)
    files = sorted((root / "front").glob("*.yaml"))
    assert {f.stem.removeprefix("mo_") for f in files} == front
    for f in files:
        prov = yaml.safe_load(f.read_text())["provenance"]
        cid = prov["config_id"]
        assert prov["select"] == "pareto" and prov["front_size"] == len(front) and prov["feasible_only"]
        assert prov["constraints"] == ["val_accuracy >= 0.3"]
        assert [o["metric"] for o in prov["objectives"]] == ["val_accuracy", "switch_step"]
        assert [o["mean"] for o in prov["objectives"]] == pytest.approx(list(means[cid]), rel=1e-12)

    entries = write_report(root / "runs" / "mo", root / "report", png=False)
    pareto = next(e for e in entries if e.slug == "memory_pareto")
    assert pareto.html is not None and "final validation accuracy vs switch step" in pareto.html.read_text()


def test_the_dashboards_pareto_view_uses_the_studys_objectives(study, tmp_path):
    root, _, _, means, front, feasible = study
    with dashboard_server(root / "runs", tmp_path / "server.log") as base, chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/memory?study=mo")
        f = wait_figure(page, "memory-pareto", "f.n === 2")
        assert (f["x"], f["y"]) == ("switch step", "final validation accuracy")
        assert "objectives val_accuracy (max), switch_step (min)" in page.inner_text("h2 + div")
        drawn = page.evaluate("() => document.querySelector('#memory-pareto .js-plotly-plot').data[1].text")
        # the figure's front: every configuration's means, feasible or not (the view plots the objectives); a point
        # that two configurations share (NSGA-II may breed a configuration again) is drawn once
        everything = brute_front(means, dict.fromkeys(means, True))
        assert set(drawn) <= everything and {means[c] for c in drawn} == {means[c] for c in everything}
        xs = np.array([means[c][1] for c in drawn])
        assert list(xs) == sorted(xs)
        page.click("#memory-pareto-x >> text=wall time (s)")
        wait_figure(page, "memory-pareto", "f.x === 'wall time (s)'")
        page.screenshot(path=str(tmp_path / "pareto.png"), full_page=True)
        assert not errors, errors


def test_export_optuna_gives_optuna_the_same_front_and_optuna_dashboard_the_feasibility(study, tmp_path, capsys):
    import optuna

    from hyperswitch.results.objectives import pareto_front
    from tests.export.test_optuna_export import dashboard_study, optuna_dashboard

    root, _, _, means, front, feasible = study
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(root / "runs" / "mo"), "--to", url]) == 0
    assert f"{sum(not f for f in feasible.values())} complete trial(s) infeasible" in capsys.readouterr().out
    o = optuna.load_study(study_name="mo", storage=url)
    assert o.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    by_id = {t.user_attrs["config_id"]: t for t in o.trials}
    assert set(by_id) == set(means)
    for c, t in by_id.items():
        assert t.values == pytest.approx(list(means[c]), rel=1e-12)
        assert t.constraints == {"0": pytest.approx(0.3 - means[c][0], rel=1e-12)}
    best = {t.user_attrs["config_id"] for t in o.best_trials}
    ids = [c for c in sorted(means) if feasible[c]]
    assert best == front == {ids[i] for i in pareto_front([means[c] for c in ids], ["max", "min"])}
    with optuna_dashboard(url, tmp_path / "optuna_dashboard.log") as (base, studies):
        [entry] = studies
        detail = dashboard_study(base, entry["study_id"])
        shown = {next(a["value"] for a in t["user_attrs"] if a["key"] == "config_id"): t for t in detail["trials"]}
        assert {c: all(v <= 0 for v in t["constraints"]) for c, t in shown.items()} == feasible
        assert all(len(t["constraints"]) == 1 for t in shown.values())
