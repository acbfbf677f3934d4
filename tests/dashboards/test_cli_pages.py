"""The `dashboard` and `report` commands, and every page on a partial study (trials still running), without a
browser: layouts and figures built by the page modules on a study written by the real results store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from dashboards._shared import Context
from dashboards.app import create_app
from dashboards.pages import PAGES, curves, parameters, switching
from hyperswitch.cli import main
from hyperswitch.results.cache import clear_cache
from hyperswitch.results.store import StudyStore


def write_study(storage: Path, name: str = "part", running: bool = True) -> Path:
    """4 finished trials (2 configurations x 2 seeds) and, if asked, one still running."""
    store = StudyStore(storage / name)
    store.root.mkdir(parents=True)
    store.write_meta({"name": name, "metric": "val_accuracy", "mode": "max", "parameter_names": ["lr", "T1"],
                      "sampled_names": ["lr", "T1"], "status": "running" if running else "completed",
                      "n_trials_total": 6, "summary": {"algorithm": "grid", "samples": 3, "seeds": [0, 1],
                                                       "workload": "digits_mlp", "policy_type": "mixer"}})
    trials = [("c0-s0", 0.1, 0, 0.8, "completed"), ("c0-s1", 0.1, 0, 0.82, "completed"),
              ("c1-s0", 0.3, 5, 0.9, "completed"), ("c1-s1", 0.3, 5, 0.94, "completed")]
    if running:
        trials.append(("c2-s0", 0.5, 5, 0.5, "running"))
    for tid, lr, t1, acc, status in trials:
        sw = 4 if status == "completed" else None
        steps = [{"step": s, "epoch": 1 + (s - 1) // 4, "loss": 2.0 / s, "val_accuracy": acc if s % 4 == 0 else None,
                  "lr": 0.1 if s < 4 else lr, "optimizer": "kfac" if s < 4 else "sgdm", "elapsed_s": 0.01 * s,
                  "memory_bytes": 400 if s < 4 else 100} for s in range(1, 9 if status == "completed" else 5)]
        events = [{"step": sw, "kind": "switch", "detail": json.dumps({"from": "kfac", "to": "sgdm"})}] if sw else []
        row = {"trial_id": tid, "config_id": tid[:2], "seed": int(tid[-1]), "status": status,
               "workload": "digits_mlp", "policy_type": "mixer", "optimizers": "kfac,sgdm", "lr": lr, "T1": t1,
               "val_accuracy": acc, "best_val_accuracy": acc, "switch_step": sw, "peak_memory_bytes": 400,
               "wall_time_s": 0.08, "time_to_target_s": 0.04}
        store.write_trial_parts(row, steps, events)
        if tid == "c0-s1":
            store.compact()  # some trials compacted, the others still parts
    clear_cache()
    return store.root


def test_every_page_works_on_a_partial_study(tmp_path):
    root = write_study(tmp_path)
    ctx = Context(tmp_path)
    for page in PAGES:
        assert page.layout(ctx, "part") is not None, page.name
    fig = parameters.main_figure(ctx, "part", "val_accuracy", ["lr"], "std")
    assert "4 finished runs" in fig.layout.title.subtitle.text  # the running trial is not a result yet
    fig = curves.figure(ctx, "part", "loss", "step", "policy", "std", [], [])
    assert "5 runs" in fig.layout.title.subtitle.text  # its curve so far is shown
    _, points = switching._points(ctx, "part", need_epoch=True)
    assert points.switched.sum() == 4 and set(points.switch_epoch) == {1.0}
    assert (root / "parts").is_dir()


def test_app_serves_its_layout(tmp_path):
    write_study(tmp_path, running=False)
    client = create_app(tmp_path, warm=False).server.test_client()
    assert client.get("/").status_code == 200
    layout = client.get("/_dash-layout").get_json()
    assert "app-page" in json.dumps(layout) and "app-study" in json.dumps(layout)


def test_dashboard_help_and_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["dashboard", "--help"])
    assert e.value.code == 0 and "--host" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["dashboard", "--port", "70000"])
    assert e.value.code == 2 and "from 1 to 65535 (got '70000')" in capsys.readouterr().err


def test_non_loopback_host_warns(tmp_path, capsys):
    # The port is taken, so nothing is ever served on the non-loopback address: the warning comes first.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--storage", str(tmp_path), "--host", "0.0.0.0", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "warning: --host 0.0.0.0 is not a loopback address" in err
    assert f"--port: cannot listen on 0.0.0.0:{port}" in err


def test_report_writes_html_per_figure_and_an_index(tmp_path, capsys):
    write_study(tmp_path / "runs", running=False)
    out = tmp_path / "report"
    assert main(["report", "part", "--storage", str(tmp_path / "runs"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    index = (out / "index.html").read_text()
    for name in ("parameter_lr.html", "parameter_heatmap.html", "curves_loss.html", "switching_points.html",
                 "memory_phase.html", "ablation_corrector.html", "lr_trajectories.html"):
        assert (out / name).is_file() and name in index, name
    assert (out / "plotly.min.js").is_file()  # shared by the HTML files: the folder works offline
    assert "no IOMT cycles" in index and "not applicable" in said
    assert "Plotly.newPlot" in (out / "parameter_heatmap.html").read_text()
    assert main(["report", "nope", "--storage", str(tmp_path / "runs"), "--out", str(out)]) == 2
    assert "STUDY: no study of this name" in capsys.readouterr().err


def test_report_writes_a_png_per_figure_where_kaleido_is_installed(tmp_path, capsys):
    # kaleido is optional for users (the report says so and writes HTML only) but in the test extra: no skip here
    write_study(tmp_path / "runs", running=False)
    out = tmp_path / "report"
    out.mkdir()
    (out / "curves_loss.png").write_bytes(b"left by an earlier report")
    assert main(["report", "part", "--storage", str(tmp_path / "runs"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    htmls = sorted(p.stem for p in out.glob("*.html") if p.name != "index.html")
    assert f"({len(htmls)} also as PNG)" in said
    for stem in htmls:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
    assert "curves_loss.png" in (out / "index.html").read_text()
