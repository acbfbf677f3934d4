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
from contextlib import contextmanager
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


@contextmanager
def optuna_dashboard(url: str, log_path: Path):
    """optuna-dashboard serving the Optuna storage ``url`` on 127.0.0.1: yields (base URL, its study summaries)."""
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert exe, "optuna-dashboard is a test dependency (pyproject's test extra)"
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([exe, url, "--host", "127.0.0.1", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.2)  # polling a server that is starting up (not synchronisation between our own steps)
        yield f"http://127.0.0.1:{port}", studies
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def dashboard_study(base: str, study_id: int) -> dict:
    """optuna-dashboard's view of one study (its trials as the web page gets them)."""
    with urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_optuna_dashboard_serves_an_exported_study(small_study, tmp_path):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(small_study), "--to", url]) == 0
    with optuna_dashboard(url, tmp_path / "dashboard.log") as (base, studies):
        [entry] = studies
        assert entry["study_name"] == "nr"
        detail = dashboard_study(base, entry["study_id"])
        assert len(detail["trials"]) == 4 and len(detail["best_trials"]) == 1
        best = {a["key"]: a["value"] for a in detail["best_trials"][0]["user_attrs"]}
        assert best["config_id"] == "c0003"


# A multi-objective (val_accuracy max, wall_time_s min), constrained (peak_memory_bytes <= 2900) study with
# conditional parameters (test_conditional's space), written through the sweep's prepare_study and the real store.
# config: (params, val_accuracy per seed, wall_time_s per seed, peak_memory_bytes per seed)
NAN = float("nan")
MO_CONFIGS = [
    ({"lr": 0.05, "switch_kind": "fixed", "at": 5}, (0.80, 0.82), (10.0, 12.0), (2000, 2200)),  # front
    ({"lr": 0.1, "switch_kind": "adaptive", "theta": 0.01, "K": 3, "unit": "step"},
     (0.90, 0.92), (20.0, 20.0), (2500, 2500)),  # front
    ({"lr": 0.02, "switch_kind": "fixed", "at": 10}, (0.70, 0.70), (15.0, 15.0), (1000, 1000)),  # dominated by c0
    ({"lr": 0.2, "switch_kind": "adaptive", "theta": 0.05, "K": 2, "unit": "epoch"},
     (0.95, 0.97), (5.0, 5.0), (3000, 3000)),  # dominates c0..c2 but infeasible
    ({"lr": 0.01, "switch_kind": "fixed", "at": 15}, (0.60, 0.60), (4.0, 4.0), (2800, 3000)),  # front: mean 2900, 0
    ({"lr": 0.3, "switch_kind": "adaptive", "theta": 0.002, "K": 4, "unit": "step"},
     (0.99, NAN), (30.0, 30.0), (None, None)),  # no peak memory: FAIL
    ({"lr": 0.03, "switch_kind": "fixed", "at": 0}, (NAN, NAN), (3.0, 3.0), (100, 100)),  # no accuracy: FAIL
]


@pytest.fixture()
def mo_study(tmp_path: Path) -> Path:
    from hyperswitch.results.schema import COMPLETED
    from hyperswitch.search.runner import prepare_study
    from hyperswitch.search.trial import trial_row
    from tests.search.test_conditional import space

    s = space(extra="metric: [val_accuracy, wall_time_s]\nmode: [max, min]\n"
                    "constraints: [peak_memory_bytes <= 2900]\n")
    store = prepare_study(s, tmp_path / "runs", None, resume=False)
    for c, (params, acc, wall, mem) in enumerate(MO_CONFIGS):
        for seed in (0, 1):
            cfg = {"trial_id": f"c{c:04d}-s{seed}", "config_id": f"c{c:04d}", "seed": seed, "params": params}
            store.write_trial_parts(trial_row(s, cfg, None, COMPLETED, {
                "val_accuracy": acc[seed], "wall_time_s": wall[seed], "peak_memory_bytes": mem[seed]}), [], [])
    store.compact()
    store.update_meta(status="completed")
    return store.root


def test_a_multi_objective_constrained_conditional_study_in_optuna(mo_study, tmp_path, capsys):
    from hyperswitch.results.objectives import feasible, pareto_front, study_constraints, study_objectives
    from hyperswitch.results.reader import open_study
    from hyperswitch.results.select import seed_mean

    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(mo_study), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "7 trials, one per configuration (2 with no finite value: FAIL); values = means over its seeds of " \
           "val_accuracy (maximize), wall_time_s (minimize)" in out, out
    assert "constraints peak_memory_bytes <= 2900 (the seeds' means): 1 complete trial(s) infeasible" in out, out
    study = optuna.load_study(study_name="cond", storage=url)
    D = optuna.study.StudyDirection
    assert study.directions == [D.MAXIMIZE, D.MINIMIZE] and study.metric_names == ["val_accuracy", "wall_time_s"]
    assert study.user_attrs["metric"] == ["val_accuracy", "wall_time_s"]
    assert study.user_attrs["constraints"] == ["peak_memory_bytes <= 2900"]
    trials = study.get_trials(deepcopy=False)
    S = optuna.trial.TrialState
    assert [t.state for t in trials] == [S.COMPLETE] * 5 + [S.FAIL] * 2
    # values: the seeds' means (hand numbers); constraint values: mean peak memory - 2900
    expected = [([0.81, 11.0], -800.0), ([0.91, 20.0], -400.0), ([0.70, 15.0], -1900.0), ([0.96, 5.0], 100.0),
                ([0.60, 4.0], 0.0)]
    for t, (values, con) in zip(trials, expected, strict=False):
        assert t.values == pytest.approx(values, abs=1e-12) and t.constraints == {"0": pytest.approx(con)}
        assert t.system_attrs["constraints"] == [pytest.approx(con)]  # the list optuna-dashboard reads
        assert t.user_attrs["feasible"] is (con <= 0)
    assert trials[5].user_attrs["val_accuracy_per_seed"] == [0.99, None] and trials[5].constraints == {}
    assert trials[5].user_attrs["feasible"] is False  # no mean of the constrained metric
    assert trials[6].user_attrs["feasible"] is True and trials[6].constraints == {}  # FAIL: no accuracy
    # conditional parameters: each trial has the parameters that apply to it, with their distributions only
    for t, (params, *_) in zip(trials, MO_CONFIGS, strict=True):
        assert t.params == pytest.approx(params) and set(t.distributions) == set(params)
    assert trials[1].distributions["unit"] == optuna.distributions.CategoricalDistribution(["step", "epoch"])
    assert trials[0].distributions["at"] == optuna.distributions.IntDistribution(0, 20, step=5)

    # Optuna's Pareto front = hyperswitch's own front of the feasible configurations' seeds' means
    best = sorted(t.user_attrs["config_id"] for t in study.best_trials)
    assert best == ["c0000", "c0001", "c0004"]  # not c0003 (infeasible), which would dominate c0000 and c0001
    s = open_study(mo_study)
    metrics, modes = study_objectives(s.meta)
    constraints = study_constraints(s.meta)
    ids, points = [], []
    for cid, g in s.trials.groupby("config_id"):
        means = {m: seed_mean(g[m]) for m in (*metrics, "peak_memory_bytes")}
        if feasible(constraints, means) and all(means[m] is not None for m in metrics):
            ids.append(str(cid))
            points.append([means[m] for m in metrics])
    assert [ids[i] for i in pareto_front(points, modes)] == best
    # optuna.visualization: the front, the dominated and the infeasible trials, each its own trace
    fig = optuna.visualization.plot_pareto_front(study, include_dominated_trials=True)
    drawn = {tr.hovertemplate.split("<extra>")[1].removesuffix("</extra>"):
             sorted(json.loads(x.replace("<br>", ""))["user_attrs"]["config_id"] for x in tr.text or ())
             for tr in fig.data}
    assert drawn == {"Infeasible Trial": ["c0003"], "Feasible Trial": ["c0002"], "Best Trial": best}
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("val_accuracy", "wall_time_s")


def test_exporting_one_metric_of_a_multi_objective_study(mo_study, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export-optuna", str(mo_study), "--to", url, "--metric", "wall_time_s", "--name", "t"]) == 0
    study = optuna.load_study(study_name="t", storage=url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and study.metric_names == ["wall_time_s"]
    # the fastest feasible configuration: c0006 has no accuracy, but accuracy is not this export's objective
    assert study.best_trial.user_attrs["config_id"] == "c0006" and study.best_trial.value == 3.0
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.FAIL) == 1  # c0005: no peak memory
    assert study.trials[3].constraints == {"0": 100.0}  # c0003, faster than c0004, is infeasible
    first = study.trials[0].user_attrs  # the other objective is carried as a mean
    assert first["val_accuracy_mean"] == pytest.approx(0.81) and first["wall_time_s_std"] == pytest.approx(2 ** 0.5)
