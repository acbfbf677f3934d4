"""hyperswitch export on a study produced by a real small sweep (real Ray, Optuna, Parquet, PyTorch)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import hyperswitch
from hyperswitch.cli import main
from hyperswitch.search.runner import prepare_study, run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.switching import load_policy
from tests._helpers import ROOT

pytestmark = pytest.mark.slow

SPACE = """\
name: exp
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: adam, lr: $adam_lr}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: {at: $switch_at}
train: {steps: 40, eval_every: 20, target_accuracy: 0.5}
parameters:
  lr: {type: categorical, choices: [0.003, 0.05, 0.3]}
  switch_at: {type: categorical, choices: [10, 20]}
derived:
  adam_lr: lr / 50
search: {algorithm: grid, samples: 3, seed: 0}
seeds: 2
max_concurrent: 2
"""


@pytest.fixture(scope="module")
def study(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "exp.yaml").write_text(SPACE)
    space = load_space(root / "exp.yaml")
    run_sweep(space, storage=root / "runs", out=lambda s: None)
    return root


def cli(*args: str, cwd: Path) -> int:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return main(list(args))
    finally:
        os.chdir(old)


def best_by_pandas(study_dir: Path, metric: str = "val_accuracy", ascending: bool = False):
    t = pq.read_table(study_dir / "trials.parquet").to_pandas()
    assert len(t) == 6 * 2 and set(t["status"]) == {"completed"}  # 6 grid points x 2 seeds, all finished
    g = t.groupby("config_id")[metric].agg(["mean", "std", "count"])
    g = g.sort_values(["mean", "std"], ascending=[ascending, True])
    return t, g.index[0], g.iloc[0]


def test_export_chooses_the_best_seed_mean_and_records_provenance(study, capsys):
    trials, config, stats = best_by_pandas(study / "runs" / "exp")
    assert cli("export", "exp", "--storage", "runs", cwd=study) == 0
    out = capsys.readouterr().out
    path = study / "policies" / f"exp_{config}.yaml"
    assert path.is_file() and f"wrote policies/exp_{config}.yaml" in out, out
    pol = load_policy(path)  # validates
    prov = pol.provenance
    mine = trials[trials["config_id"] == config].sort_values("seed")
    assert prov["study"] == "exp" and Path(prov["study_folder"]) == (study / "runs" / "exp").resolve()
    assert prov["config_id"] == config and prov["trial_ids"] == list(mine["trial_id"])
    assert prov["seeds"] == [0, 1] and prov["n_seeds"] == 2 == stats["count"]
    assert prov["metric"] == "val_accuracy" and prov["mode"] == "max" and prov["select"] == "mean"
    assert prov["mean"] == pytest.approx(stats["mean"], abs=1e-12)
    assert prov["std"] == pytest.approx(stats["std"], abs=1e-12)
    assert prov["values"] == pytest.approx(list(mine["val_accuracy"]), abs=1e-12)
    assert prov["workload"] == "digits_mlp" and prov["hyperswitch_version"] == hyperswitch.__version__
    assert prov["study_status"] == "complete" and prov["workers"] == 1 and prov["threads_per_worker"] == 1
    assert dt.datetime.fromisoformat(prov["exported_at"]).date() == dt.datetime.now(dt.UTC).date()
    # the policy is the template with this configuration's values (derived ones included)
    row = mine.iloc[0]
    spec = pol.spec.as_dict()
    assert spec["phase2"]["lr"] == row["lr"] and spec["phase1"]["lr"] == pytest.approx(row["lr"] / 50)
    assert spec["switch"]["at"] == int(row["switch_at"]) and isinstance(spec["switch"]["at"], int)
    assert pol.workload["name"] == "digits_mlp" and pol.workload["batch_size"] == 32
    assert pol.train["steps"] == 40 and pol.train["eval_every"] == 20

    # a second export without --force fails (exit 2) and leaves the file as it was
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert cli("export", "exp", "--storage", "runs", cwd=study) == 2
    err = capsys.readouterr().err
    assert "exists; use --force" in err and str(Path("policies") / f"exp_{config}.yaml") in err
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert cli("export", "exp", "--storage", "runs", "--force", cwd=study) == 0
    assert load_policy(path).provenance["exported_at"] >= prov["exported_at"]


def test_round_trip_hyperswitch_train_repeats_the_trial(study, capsys):
    out_file = study / "rt" / "best.yaml"
    assert cli("export", str(study / "runs" / "exp"), "-o", str(out_file), cwd=study) == 0
    capsys.readouterr()
    prov = yaml.safe_load(out_file.read_text())["provenance"]
    trials = pq.read_table(study / "runs" / "exp" / "trials.parquet").to_pandas()
    for seed, tid in zip(prov["seeds"], prov["trial_ids"], strict=True):
        trial = trials[trials["trial_id"] == tid].iloc[0]
        # a fresh process, as a user runs it (default torch threads: the file's threads_per_worker applies)
        run = subprocess.run([sys.executable, "-m", "hyperswitch", "train", str(out_file), "--seed", str(seed),
                              "--json"], capture_output=True, text=True, timeout=300,
                             env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"})
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        assert got["status"] == "completed"
        for k in ("val_accuracy", "val_loss", "train_loss", "steps_done", "switch_step"):
            assert got["summary"][k] == trial[k], (k, seed)  # identical, not close


def test_top_n_select_best_and_pareto(study, capsys):
    trials, _, _ = best_by_pandas(study / "runs" / "exp", "val_loss", ascending=True)
    assert cli("export", "exp", "--metric", "val_loss", "--top", "3", "-o", "top/", cwd=study) == 0
    files = sorted((study / "top").glob("*.yaml"))
    assert len(files) == 3
    ranked = sorted((load_policy(f).provenance for f in files), key=lambda p: p["rank"])
    assert [p["rank"] for p in ranked] == [1, 2, 3] and ranked[0]["mean"] <= ranked[1]["mean"] <= ranked[2]["mean"]
    assert len({p["config_id"] for p in ranked}) == 3 and ranked[0]["mode"] == "min"

    assert cli("export", "exp", "--select", "best", "-o", "best.yaml", cwd=study) == 0
    prov = load_policy(study / "best.yaml").provenance
    assert prov["value"] == trials["val_accuracy"].max() and prov["trial_id"] in set(trials["trial_id"])

    assert cli("export", "exp", "--select", "pareto", "--max-time-ratio", "1000", "-o", "par.yaml", cwd=study) == 0
    prov = load_policy(study / "par.yaml").provenance
    means = trials.groupby("config_id")["val_accuracy"].mean()
    assert prov["mean"] == pytest.approx(means.max()) and prov["time_ratio"] >= 1  # a huge budget: the best mean
    capsys.readouterr()


def test_bad_requests_are_one_line_errors_that_write_nothing(study, capsys):
    before = sorted(p for p in study.rglob("*") if "policies" in p.parts or p.suffix == ".yaml")
    for args, words in [
        (("nosuch",), "STUDY: no study of this name"),
        (("exp", "--metric", "accuracy"), "--metric: is not a results metric"),
        (("exp", "--metric", "val_accuracy", "--mode", "min"), "--mode: val_accuracy is better when it is higher"),
        (("exp", "--select", "pareto"), "--max-time-ratio: is required"),
        (("exp", "--top", "2", "-o", "one.yaml"), "-o: with --top 2 give a folder"),
    ]:
        assert cli("export", *args, "--storage", "runs", cwd=study) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err
    assert sorted(p for p in study.rglob("*") if "policies" in p.parts or p.suffix == ".yaml") == before


def test_unfinished_and_empty_studies(study, tmp_path, capsys):
    # a study whose sweep was cut off: exported from its finished trials, and it says so
    part = tmp_path / "runs" / "cut"
    shutil.copytree(study / "runs" / "exp", part)
    meta = json.loads((part / "study.json").read_text())
    meta.update(status="interrupted", n_trials_total=20)
    (part / "study.json").write_text(json.dumps(meta))
    assert cli("export", "cut", "-o", "cut.yaml", cwd=tmp_path) == 0
    assert "note: study exp is unfinished (12 of 20 trials finished)" in capsys.readouterr().out
    assert load_policy(tmp_path / "cut.yaml").provenance["study_status"] == "unfinished: 12 of 20 trials finished"

    # a study with no finished trial: an error, nothing written
    space = load_space(study / "exp.yaml")
    prepare_study(space, tmp_path / "runs", "empty", resume=False)
    assert cli("export", "empty", "-o", "empty.yaml", cwd=tmp_path) == 2
    assert "has no finished trial yet" in capsys.readouterr().err
    assert not (tmp_path / "empty.yaml").exists()


def test_export_help_and_readme_mention():
    run = subprocess.run([sys.executable, "-m", "hyperswitch", "export", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and "--select" in run.stdout and "--max-time-ratio" in run.stdout
    assert "hyperswitch export" in (ROOT / "README.md").read_text()
