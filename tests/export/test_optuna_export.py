"""hyperswitch export-optuna: a study written into real Optuna storages (SQLite, journal file), read back through
Optuna's own API (values = seeds' means, the space's distributions, FAIL for a configuration with no finite
value), one-line errors that change nothing, and optuna-dashboard serving it for real on 127.0.0.1."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from hyperswitch.cli import main
from hyperswitch.results.store import StudyStore
from tests.dashboards.dashtools import free_port
from tests.results.test_layering import small_study  # noqa: F401  (the fixture: 4 configurations x 2 seeds)

# small_study's configurations: (lr, momentum) and val_accuracy 0.5 + 0.1 c + 0.01 seed
CONFIGS = [(0.001, 0.5), (0.01, 0.9), (0.1, 0.5), (0.4, 0.9)]


def test_a_study_opens_in_optuna_with_seed_means(small_study, tmp_path, capsys):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(small_study), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "wrote Optuna study 'nr'" in out and "4 trials" in out and "optuna-dashboard sqlite:///" in out
    study = optuna.load_study(study_name="nr", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.metric_names == ["val_accuracy"]
    assert study.user_attrs["metric"] == "val_accuracy" and study.user_attrs["parameters"] == ["lr", "momentum"]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    for c, (t, (lr, mom)) in enumerate(zip(trials, CONFIGS, strict=True)):
        assert t.params == {"lr": lr, "momentum": mom}
        assert t.value == pytest.approx(0.5 + 0.1 * c + 0.005, abs=1e-12)  # the mean of seeds 0 and 1
        assert t.user_attrs["config_id"] == f"c{c:04d}" and t.user_attrs["seeds"] == [0, 1]
        assert t.user_attrs["val_accuracy_std"] == pytest.approx(0.01 / math.sqrt(2), abs=1e-12)
        assert t.user_attrs["wall_time_s_mean"] == 1.0 + c
        assert t.distributions["lr"] == optuna.distributions.FloatDistribution(0.001, 0.5, log=True)
        assert t.distributions["momentum"] == optuna.distributions.CategoricalDistribution([0.5, 0.9])
    assert study.best_trial.user_attrs["config_id"] == "c0003"
    # optuna's own views take it (plotly figures)
    assert len(optuna.visualization.plot_optimization_history(study).data) >= 1
    assert optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(
        seed=0)).keys() == {"lr", "momentum"}


def test_journal_storage_failed_configurations_and_errors(small_study, tmp_path, capsys):  # noqa: F811
    store = StudyStore(small_study)
    for seed in (0, 1):  # a fifth configuration whose seeds both diverged with no value
        store.write_trial_parts({"trial_id": f"c0004-s{seed}", "config_id": "c0004", "seed": seed,
                                 "status": "diverged", "workload": "digits_mlp", "policy_type": "single",
                                 "optimizers": "sgdm", "lr": 0.5, "momentum": 0.9, "val_accuracy": float("nan")},
                                [], [])
    store.compact()
    log = tmp_path / "o.log"
    assert main(["export-optuna", str(small_study), "--to", f"journal:{log}", "--metric", "wall_time_s",
                 "--name", "by_time"]) == 0
    assert "(1 with no finite value: FAIL)" in capsys.readouterr().out
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="by_time", storage=optuna.storages.JournalStorage(JournalFileBackend(
        str(log))))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4 + [optuna.trial.TrialState.FAIL]
    assert [t.value for t in study.trials[:4]] == [1.0, 2.0, 3.0, 4.0]
    size = log.stat().st_size
    # the same name again: one line, exit 2, the storage unchanged
    assert main(["export-optuna", str(small_study), "--to", f"journal:{log}", "--name", "by_time"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--name: an Optuna study of this name is already in" in err, err
    assert log.stat().st_size == size
    for bad, rule in ((["--to", "nowhere"], "--to: must name an Optuna storage"),
                      (["--to", f"sqlite:///{tmp_path}/no/such/dir/x.db"], "the SQLite file's folder does not exist"),
                      (["--to", f"sqlite:///{tmp_path}/x.db", "--metric", "accuracy"], "--metric: is not a results "
                       "metric")):
        assert main(["export-optuna", str(small_study), *bad]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and rule in err, err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_optuna_dashboard_serves_an_exported_study(small_study, tmp_path):  # noqa: F811
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert exe, "optuna-dashboard is a test dependency (pyproject's test extra)"
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(small_study), "--to", url]) == 0
    port = free_port()
    log = open(tmp_path / "dashboard.log", "w")
    proc = subprocess.Popen([exe, url, "--host", "127.0.0.1", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()[-2000:]
                time.sleep(0.2)
        [entry] = studies
        assert entry["study_name"] == "nr"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{entry['study_id']}", timeout=10) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == 4 and len(detail["best_trials"]) == 1
        best = {a["key"]: a["value"] for a in detail["best_trials"][0]["user_attrs"]}
        assert best["config_id"] == "c0003"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
