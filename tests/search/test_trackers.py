"""``hyperswitch sweep --log mlflow --log tensorboard``: each finished trial logged once, read back through MLflow's
own client (a real SQLite tracking store: MLflow 3.13 on refuses a plain folder) and TensorBoard's own event reader
(EventAccumulator), compared with the study's Parquet tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from hyperswitch.cli import main
from hyperswitch.results import open_study
from hyperswitch.results.store import StudyStore
from hyperswitch.search.trackers import STEP_METRICS, Target, open_trackers

SPACE = """\
name: trk
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: {at: 8}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.2, log: true}
search: {algorithm: random, samples: 1, seed: 3}
seeds: 2
max_concurrent: 2
"""


def _sweep(path: Path, storage: Path, *extra: str) -> int:
    return main(["sweep", str(path), "--storage", str(storage), *extra])


def _mlflow(root: Path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("trk")
    assert exp is not None
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def _tensorboard(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def _measured(steps, name: str) -> list[tuple[int, float]]:
    """(step, value) of a steps.parquet column where the step measured it."""
    s = steps[steps[name].notna()].sort_values("step")
    return [(int(a), float(b)) for a, b in zip(s.step, s[name], strict=True)]


@pytest.mark.slow
def test_sweep_logs_each_trial_once_to_mlflow_and_tensorboard(local_ray, space_file, tmp_path, capsys):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    path, storage = space_file(SPACE), tmp_path / "runs"
    root = storage / "trk"
    assert _sweep(path, storage, "--log", "mlflow", "--log", "tensorboard") == 0
    out = capsys.readouterr().out
    assert f"logging each finished trial to mlflow (sqlite:///{root.resolve() / 'mlflow.db'}, experiment trk)" in out
    study = open_study(root)
    trials, steps, events = study.trials.set_index("trial_id"), study.steps, study.events
    assert len(trials) == 2 and set(trials.status) == {"completed"}
    meta = json.loads((root / "study.json").read_text())
    assert [(e["tracker"], e["default"]) for e in meta["log"]] == [("mlflow", True), ("tensorboard", True)]
    assert meta["log"][1]["logdir"] == str((root / "tensorboard").resolve())

    # MLflow: one run per trial, named by it, with its curves (one value per step), events, params, tags, finals.
    client, runs = _mlflow(root)
    assert sorted(r.info.run_name for r in runs) == sorted(trials.index)
    for run in runs:
        tid = run.info.run_name
        row, mine = trials.loc[tid], steps[steps.trial_id == tid]
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert (tags["trial_id"], tags["config_id"], tags["seed"], tags["status"], tags["study"]) == \
            (tid, row.config_id, str(row.seed), "completed", "trk")
        assert run.data.params["lr"] == str(row.lr) and run.data.params["config_id"] == row.config_id
        assert run.data.params["seed"] == str(row.seed)
        loss = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in sorted(loss, key=lambda m: m.step)] == _measured(mine, "loss")
        assert sorted(m.step for m in loss) == list(range(1, 21))  # one value per step
        for name in ("lr", "val_loss", "val_accuracy", "memory_bytes"):
            got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
            assert got == _measured(mine, name), name
        assert [s for s, _ in _measured(mine, "val_accuracy")] == [10, 20]  # (the comparison above is not empty)
        ev = events[(events.trial_id == tid) & (events.kind == "switch")]
        assert ev.step.tolist() == [9] and row.switch_step == 9
        assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "switch")] == [(9, 1.0)]
        assert tags["switch/9"] == ev.detail.iloc[0]
        assert run.data.metrics["final/val_accuracy"] == row.val_accuracy
        assert run.data.metrics["final/steps_done"] == 20.0
        # the events artifact, under the study
        artifacts = Path(unquote(urlparse(run.info.artifact_uri).path))
        assert artifacts.is_relative_to((root / "mlflow-artifacts").resolve())
        logged = json.loads((artifacts / "events.json").read_text())
        theirs = events[events.trial_id == tid].sort_values("step", kind="stable")
        assert [(e["step"], e["kind"], e["detail"]) for e in logged] == \
            [(int(a), b, json.loads(c)) for a, b, c in zip(theirs.step, theirs.kind, theirs.detail, strict=True)]

    # TensorBoard: a folder per trial; its scalars per step equal steps.parquet's (TensorBoard keeps float32).
    tb = root / "tensorboard"
    assert sorted(p.name for p in tb.iterdir() if not p.name.startswith(".")) == sorted(trials.index)
    for tid, row in trials.iterrows():
        acc, mine = _tensorboard(tb / tid), steps[steps.trial_id == tid]
        for name in STEP_METRICS:
            want = [(s, float(np.float32(v))) for s, v in _measured(mine, name)]
            got = [(e.step, e.value) for e in acc.Scalars(name)] if want else []
            assert got == want, name
        assert [(e.step, e.value) for e in acc.Scalars("switch")] == [(9, 1.0)]
        assert acc.Scalars("final/val_accuracy")[0].value == pytest.approx(row.val_accuracy, rel=1e-6)
        start = HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
        hp = start.session_start_info.hparams
        assert hp["lr"].number_value == row.lr and hp["config_id"].string_value == row.config_id
        assert hp["seed"].number_value == row.seed

    # A resume with another configuration: the new trials are logged, the earlier ones are not logged again.
    run_ids = {r.info.run_name: r.info.run_id for r in runs}
    files = {p: p.stat().st_mtime_ns for p in tb.rglob("*") if p.is_file()}
    assert _sweep(path, storage, "--resume", "--samples", "2", "--log", "mlflow", "--log", "tensorboard") == 0
    trials = open_study(root).trials
    assert len(trials) == 4
    _, runs = _mlflow(root)
    names = [r.info.run_name for r in runs]
    assert sorted(names) == sorted(trials.trial_id) and len(set(names)) == 4
    assert {r.info.run_name: r.info.run_id for r in runs if r.info.run_name in run_ids} == run_ids
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert sorted(p.name for p in tb.iterdir() if not p.name.startswith(".")) == sorted(trials.trial_id)

    # A resume without --log keeps the study's trackers and logs only what one lacks: a trial folder removed.
    import shutil

    gone = sorted(trials.trial_id)[0]
    shutil.rmtree(tb / gone)
    capsys.readouterr()
    assert _sweep(path, storage, "--resume", "--samples", "2") == 0
    out = capsys.readouterr().out
    assert "tensorboard: logged 1 trial(s) finished before this session" in out and "nothing left to run" in out
    assert "mlflow: logged" not in out
    assert [(e.step, e.value) for e in _tensorboard(tb / gone).Scalars("switch")] == [(9, 1.0)]
    _, runs = _mlflow(root)
    assert len(runs) == 4 and {r.info.run_name: r.info.run_id for r in runs if r.info.run_name in run_ids} == run_ids

    # mlflow=PATH: a SQLite file of the user's; the study's trials are logged there, tagged with the study's folder.
    elsewhere = tmp_path / "tracking" / "mlflow.db"
    assert _sweep(path, storage, "--resume", "--samples", "2", "--log", f"mlflow={elsewhere}") == 0
    assert "mlflow: logged 4 trial(s) finished before this session" in capsys.readouterr().out
    client, runs = _mlflow(elsewhere.parent)
    assert sorted(r.info.run_name for r in runs) == sorted(trials.trial_id)
    assert {r.data.tags["hyperswitch.study"] for r in runs} == {str(root.resolve())}
    assert json.loads((root / "study.json").read_text())["log"][0]["tracking_uri"] == f"sqlite:///{elsewhere}"

    # A tracker that fails on a trial costs a printed line, never an exception: the trial stays unlogged.
    lines: list[str] = []
    store = StudyStore(root)
    trackers = open_trackers([Target("tensorboard", str(tmp_path / "tb"))], store, lines.append)
    (tmp_path / "tb" / "trk" / ".partial").write_text("in the way")  # where each trial is written first
    assert trackers.catch_up() == 0
    assert len(lines) == 4 and all(ln.startswith("tensorboard: trial ") and "--resume logs it" in ln for ln in lines)
    assert trackers.unlogged_line() == "not logged: 4 trial(s) to tensorboard; --resume logs them"


def test_a_bad_log_value_is_one_line(space_file, tmp_path, capsys):
    path, storage = space_file(SPACE), tmp_path / "runs"
    cases = {
        ("--log", "wandb"): "--log: names no tracker: mlflow, mlflow=URI, tensorboard, tensorboard=DIR or none "
                            "(got 'wandb')",
        ("--log", "mlflow", "--log", "mlflow=x.db"): "--log: mlflow is given twice",
        ("--log", "tensorboard="): "--log: tensorboard= names nothing",
        ("--log", "tensorboard=s3://bucket/tb"): "--log: tensorboard=DIR takes a local folder",
        ("--log", "none", "--log", "mlflow"): "--log: none logs nothing and goes alone",
        # a tracking URI MLflow has no store for: the study is not created
        ("--log", "mlflow=nosuchscheme://x"): "--log: mlflow: cannot open nosuchscheme://x (",
    }
    for extra, start in cases.items():
        assert _sweep(path, storage, *extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hyperswitch: error: {start}") and "\n" not in err, (extra, err)
        assert not storage.exists() or not any(storage.iterdir()), extra


def test_a_missing_tracker_package_is_one_line(space_file, tmp_path, capsys, monkeypatch):
    """As where the package is not installed: an import of a module that sys.modules maps to None fails."""
    path, storage = space_file(SPACE), tmp_path / "runs"
    for tracker, module in (("mlflow", "mlflow"), ("tensorboard", "tensorboard")):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)
            assert _sweep(path, storage, "--log", tracker) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"hyperswitch: error: --log: {tracker} needs the {tracker} package: pip install " \
                      "'hyperswitch[trackers]'"
        assert not storage.exists() or not any(storage.iterdir())


def test_defaults_need_a_local_study(s3, space_file, capsys):
    """A study on object storage: the default SQLite store and event files cannot be there; nothing is written."""
    import pyarrow.fs as pafs

    bucket, _ = s3
    path = space_file(SPACE)
    for tracker, rule in (("mlflow", "name a tracking URI: --log mlflow=URI"),
                          ("tensorboard", "name a folder: --log tensorboard=DIR")):
        assert main(["sweep", str(path), "--storage", f"{bucket}/runs", "--log", tracker]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hyperswitch: error: --log: {tracker}: the study is on {bucket}/runs/trk") \
            and rule in err and "\n" not in err
    fs, name = pafs.FileSystem.from_uri(bucket)
    # no object (the study lock's, given back, may leave its prefix as an empty folder marker: pyarrow's S3)
    assert [i.path for i in fs.get_file_info(pafs.FileSelector(name, recursive=True))
            if i.type == pafs.FileType.File] == []
