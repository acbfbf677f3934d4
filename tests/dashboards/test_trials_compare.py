"""The Trials and Compare studies pages: their layouts and views on studies written by the real results store (one
still running), then for real: the dashboard served as a subprocess, headless Chromium sorting, filtering and
picking rows in the trials table, opening a trial's curves and events, and comparing three studies (one without
the metric) on what Plotly drew. Numbers are the hand-computed ones of tests/figures/test_history.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plotly.utils import PlotlyJSONEncoder

from dashboards._shared import Context
from dashboards.app import create_app
from dashboards.pages import PAGES, compare, trials
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.store import StudyStore
from tests.dashboards.dashtools import chromium_page, dashboard_server, figure, pick, wait_figure
from tests.figures.test_history import HIST, HIST2, REG, write_study


def text_of(component) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder)


@pytest.fixture()
def storage(tmp_path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    write_study(runs, "hist", HIST, status="running")
    write_study(runs, "hist2", HIST2)
    write_study(runs, "reg", REG, metric="val_loss", mode="min")
    return runs


def test_pages_are_registered_in_the_navigation():
    paths = [p.path for p in PAGES]
    assert paths.index("/trials") == paths.index("/parameters") + 1 and paths[-1] == "/compare"


def test_trials_page_on_a_running_study(storage):
    ctx = Context(storage)
    layout = text_of(trials.layout(ctx, "hist"))
    assert '"id": "trials-table"' in layout and '"name": "val_accuracy (study metric)"' in layout
    assert "running (1)" in layout and "diverged (1)" in layout

    rows, options = trials.table_data(ctx, "hist", ["running", "diverged"])
    assert [(r["id"], r["status"]) for r in rows] == [("c0002-s1", "diverged"), ("c0004-s0", "running")]
    assert {"label": "completed (7)", "value": "completed"} in options
    assert trials.table_data(ctx, "hist", [])[0] == []

    fig, events = trials.trial_detail(ctx, "hist", "c0004-s0")  # running: its steps so far
    assert list(fig.data[0].x) == [1, 2, 3, 4] and "status running" in fig.layout.title.subtitle.text
    fig, events = trials.trial_detail(ctx, "hist", "c0000-s0")
    assert [t.name for t in fig.data] == ["training loss", "validation accuracy", "switch"]
    said = text_of(events)
    assert "trial c0000-s0: configuration c0000, seed 0, completed" in said
    assert '"detail": "from: kfac; to: sgdm; rule: at"' in said and '"kind": "switch"' in said
    with pytest.raises(NotApplicable, match="no trial 'nope'"):
        trials.trial_detail(ctx, "hist", "nope")

    fig = trials.history_figure(ctx, "hist", "val_loss")  # not the study's metric: its own direction (min)
    assert list(fig.data[2].y) == [0.375, 0.375, 0.125, 0.09375] and fig.data[2].name == "best so far (min)"


def test_a_refresh_sends_the_rows_again_only_when_the_trials_changed(storage):
    app = create_app(storage, warm=False)
    client = app.server.test_client()
    output = next(k for k in app.callback_map if "trials-table.data" in k and "trials-shown.data" in k)
    outputs = [("trials-table", "data"), ("trials-status", "options"), ("trials-message", "children"),
               ("trials-shown", "data")]

    def call(changed: str, shown: str | None):
        body = {"output": output, "outputs": [{"id": i, "property": p} for i, p in outputs],
                "inputs": [{"id": "trials-study", "property": "data", "value": "hist"},
                           {"id": "trials-status", "property": "value", "value": ["completed", "running"]},
                           {"id": "trials-refresh", "property": "n_intervals", "value": 3}],
                "state": [{"id": "trials-shown", "property": "data", "value": shown}], "changedPropIds": [changed]}
        return client.post("/_dash-update-component", json=body)

    first = call("trials-study.data", None)
    assert first.status_code == 200
    got = first.get_json()["response"]
    assert len(got["trials-table"]["data"]) == 8  # 7 completed, 1 running
    shown = got["trials-shown"]["data"]
    assert call("trials-refresh.n_intervals", shown).get_json()["response"] == {}  # nothing new: nothing sent
    assert len(call("trials-status.value", shown).get_json()["response"]["trials-table"]["data"]) == 8  # a control
    StudyStore(storage / "hist").write_trial_parts(
        {"trial_id": "c0005-s0", "config_id": "c0005", "seed": 0, "status": "running", "workload": "digits_mlp",
         "policy_type": "switch", "optimizers": "kfac,sgdm", "lr": 0.6, "workers_hint": 1}, [], [])
    rows = call("trials-refresh.n_intervals", shown).get_json()["response"]["trials-table"]["data"]
    assert [r["id"] for r in rows if r["status"] == "running"] == ["c0004-s0", "c0005-s0"]


def test_compare_page_metrics_and_comparison(storage):
    ctx = Context(storage)
    assert '"value": ["hist2"]' in text_of(compare.layout(ctx, "hist2"))
    options, default = compare.metric_options(ctx, ["hist", "reg"])
    labels = {o["value"]: o["label"] for o in options}
    assert default == "val_accuracy" and labels["val_accuracy"] == "final validation accuracy (1 of 2 studies)"
    assert labels["val_loss"] == "final validation loss" and "time_to_target_s" not in labels  # never reached
    assert compare.metric_options(ctx, ["reg"])[1] == "val_loss"
    d = compare.comparison(ctx, ["hist", "hist2", "reg"], "val_loss")
    assert d.mode == "min" and [(r.name, r.best_config) for r in d.studies] == [
        ("hist", "c0003"), ("hist2", "c0001"), ("reg", "c0001")]
    table = text_of(compare.table_component(compare.comparison(ctx, ["hist2"], "val_accuracy")))
    assert '"best mean \\u00b1 s.d.": "0.8125 \\u00b1 0.088"' in table


def row(trial: str) -> str:
    """The trials table's row of ``trial`` (a selector)."""
    return f"#trials-table tr:has(td[data-dash-column='trial_id']:has-text('{trial}'))"


def _trial_ids(page) -> list[str]:
    return page.eval_on_selector_all("#trials-table td[data-dash-column='trial_id']",
                                     "els => els.map(e => e.innerText)")


def _wait_rows(page, n: int) -> list[str]:
    page.wait_for_function("n => document.querySelectorAll(\"#trials-table td[data-dash-column='trial_id']\")"
                           ".length === n", arg=n)
    return _trial_ids(page)


@pytest.mark.slow
def test_trials_and_compare_in_chromium(storage, tmp_path):
    shots = tmp_path / "screens"
    shots.mkdir()
    with dashboard_server(storage, tmp_path / "server.log") as base, chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Trials: the history (seeds, means, best so far), all 9 trials, the running one shown as such.
        page.goto(base + "/trials?study=hist")
        f = wait_figure(page, "trials-history", "f.n === 3")
        assert f["names"] == ["each seed", "mean over seeds", "best so far (max)"]
        assert "best 0.875 (c0002, 1 seed)" in f["subtitle"] and "1 running" in f["subtitle"]
        assert _wait_rows(page, 9) == [t[0] for t in HIST]
        assert "running" in page.inner_text(row("c0004-s0"))

        # Sort by val_loss (ascending; the diverged trial's empty value last), filter by a number, by status.
        page.click("#trials-table th[data-dash-column='val_loss'] .column-header--sort")
        page.wait_for_function("() => document.querySelector(\"#trials-table td[data-dash-column='trial_id']\")"
                               ".innerText === 'c0004-s0'")
        ids = _trial_ids(page)
        assert ids[:3] == ["c0004-s0", "c0003-s0", "c0002-s0"] and ids[-1] == "c0002-s1"
        page.fill("#trials-table th.dash-filter[data-dash-column='val_accuracy'] input", "> 0.8")
        page.keyboard.press("Enter")
        assert _wait_rows(page, 3) == ["c0004-s0", "c0002-s0", "c0003-s1"]
        page.fill("#trials-table th.dash-filter[data-dash-column='val_accuracy'] input", "")
        page.keyboard.press("Enter")
        page.click("#trials-status >> text=running (1)")
        assert "c0004-s0" not in _wait_rows(page, 8)

        # A click on a row's cell opens its curves (loss, accuracy on a second axis, the switch) and its events.
        wait_figure(page, "trials-curves", "f.annotations.some(a => a.includes('pick a trial'))")
        page.click(row("c0000-s0") + " td[data-dash-column='val_loss']")
        f = wait_figure(page, "trials-curves", "f.title.includes('c0000-s0')")
        assert f["names"] == ["training loss", "validation accuracy", "switch"] and f["x"] == "step"
        page.wait_for_selector("#trials-events-rows")
        assert "from: kfac; to: sgdm; rule: at" in page.inner_text("#trials-events-rows")
        assert page.is_checked(row("c0000-s0") + " input[type=radio]")
        # Its radio: the diverged trial, its divergence marked and listed.
        page.check(row("c0002-s1") + " input[type=radio]")
        f = wait_figure(page, "trials-curves", "f.title.includes('c0002-s1')")
        assert f["names"] == ["training loss", "diverged"]
        page.wait_for_function("() => document.querySelector('#trials-events').innerText.includes('loss: nan')")
        page.screenshot(path=str(shots / "trials.png"), full_page=True)

        # Compare: hist alone at first; hist2 and reg added; reg has no accuracy: a note, not an error.
        page.goto(base + "/compare?study=hist")
        f = wait_figure(page, "compare-dist", "f.n === 1")
        pick(page, "compare-studies", "hist2")
        pick(page, "compare-studies", "reg")
        f = wait_figure(page, "compare-dist", "f.n === 2")
        assert f["types"] == ["box", "box"] and f["names"] == ["hist", "hist2"]
        assert figure(page, "compare-best")["names"] == ["hist", "hist2"]
        page.wait_for_function("() => document.querySelector('#compare-message').innerText.includes('reg (')")
        assert "Not shown, no value of val_accuracy: reg" in page.inner_text("#compare-message")
        table = page.inner_text("#compare-rows")
        assert "0.8125 \u00b1 0.088" in table and "c0001" in table and "c0002" in table
        page.screenshot(path=str(shots / "compare.png"), full_page=True)
        pick(page, "compare-metric", "final validation loss")  # all three have it
        f = wait_figure(page, "compare-dist", "f.n === 3")
        assert f["names"] == ["hist", "hist2", "reg"] and not page.inner_text("#compare-message").strip()
        assert not errors, errors
    assert "Traceback" not in (tmp_path / "server.log").read_text()
