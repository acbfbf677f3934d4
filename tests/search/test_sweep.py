"""Sweeps on a real local Ray with real Optuna, writing real Parquet files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch

import hyperswitch
from hyperswitch.results import EVENTS_SCHEMA, STEPS_SCHEMA, open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.train.driver import latest_checkpoint
from tests._helpers import ROOT

pytestmark = pytest.mark.slow

SPACE = """\
name: tiny
workload: {{name: digits_mlp, batch_size: 32}}
policy:
  type: switch
  phase1: {{name: adam, lr: 0.001}}
  phase2: {{name: sgdm, lr: $lr, momentum: 0.9}}
  switch: {{at: $switch_at}}
train: {{steps: {steps}, eval_every: 10, target_accuracy: 0.5}}
parameters:
  lr: {{type: float, low: 0.01, high: 0.2, log: true}}
  switch_at: {{type: int, low: 5, high: 15, step: 5}}
search: {{algorithm: {algorithm}, samples: {samples}, seed: 1}}
seeds: {seeds}
max_concurrent: 2
"""


def tiny(space_file, steps=20, samples=3, seeds=2, algorithm="tpe"):
    return space_file(SPACE.format(steps=steps, samples=samples, seeds=seeds, algorithm=algorithm))


def test_sweep_writes_documented_tables(local_ray, space_file, tmp_path):
    space = load_space(tiny(space_file))
    lines: list[str] = []
    study = run_sweep(space, storage=tmp_path / "runs", out=lines.append)
    root = tmp_path / "runs" / "tiny"
    for name in ("study.json", "trials.parquet", "steps.parquet", "events.parquet"):
        assert (root / name).is_file(), name
    assert not list((root / "parts").glob("*.parquet"))  # all compacted
    meta = json.loads((root / "study.json").read_text())
    assert meta["status"] == "completed" and meta["space_text"] == space.text and meta["versions"]["ray"]
    # what reproduces it: the code (this checkout's commit), the machine, the Ray cluster of each session
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert meta["code"]["version"] == hyperswitch.__version__
    assert meta["code"].get("git_commit") == (head.stdout.strip() if head.returncode == 0 else None)
    assert meta["machine"]["torch"] == torch.__version__ and meta["machine"]["cpu_count"] == os.cpu_count()
    assert meta["machine"]["cuda_available"] == torch.cuda.is_available()
    [session] = meta["ray_sessions"]
    assert session["session"] == 1 and session["nodes"] == 1 and session["cpus"] == 2.0 and session["address"]
    assert pq.read_schema(root / "steps.parquet").names == STEPS_SCHEMA.names
    assert pq.read_schema(root / "events.parquet").names == EVENTS_SCHEMA.names

    trials = study.trials
    assert len(trials) == 3 * 2  # configurations x seeds
    assert set(trials.status) == {"completed"}
    for col in ("trial_id", "config_id", "seed", "lr", "switch_at", "val_accuracy", "best_val_accuracy",
                "switch_step", "time_to_target_s", "peak_memory_bytes", "wall_time_s"):
        assert col in trials.columns, col
    per_config = trials.groupby("config_id")
    assert per_config.size().tolist() == [2, 2, 2]
    assert (per_config["lr"].nunique() == 1).all() and sorted(trials.seed.unique()) == [0, 1]
    assert trials.trial_id.is_unique

    # The fixed-step switch: event at switch_at + 1 and the optimizer column changes there.
    for _, t in trials.iterrows():
        steps = study.steps[study.steps.trial_id == t.trial_id].sort_values("step")
        assert steps.step.tolist() == list(range(1, 21))
        names = steps.optimizer.tolist()
        k = int(t.switch_at)
        assert names == ["adam"] * k + ["sgdm"] * (20 - k)
        ev = study.events[(study.events.trial_id == t.trial_id) & (study.events.kind == "switch")]
        assert ev.step.tolist() == [k + 1] and t.switch_step == k + 1

    # Progress lines: one per trial with done/total, best so far and elapsed; the end says where and what.
    progress = [ln for ln in lines if ln.startswith("[")]
    assert len(progress) == 6 and progress[-1].startswith("[   6/6]")
    assert all("best" in ln and "elapsed" in ln for ln in progress)
    assert any(ln.startswith("results: ") and str(root) in ln for ln in lines)
    assert any(ln.startswith("best trial: ") for ln in lines)

    # `hyperswitch studies` lists it: name, status, trials done, best metric.
    import contextlib
    import io

    from hyperswitch.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["studies", "--storage", str(tmp_path / "runs")]) == 0
    row = [ln for ln in buf.getvalue().splitlines() if ln.startswith("tiny")][0].split()
    best = study.trials.val_accuracy.max()
    assert row[:3] == ["tiny", "completed", "6/6"] and row[3] == "val_accuracy" and float(row[4]) == round(best, 4)


def test_resume_runs_only_what_is_missing(local_ray, space_file, tmp_path):
    path = tiny(space_file, samples=2)
    space = load_space(path)
    storage = tmp_path / "runs"
    first = run_sweep(space, storage=storage, out=lambda s: None).trials.set_index("trial_id")
    assert len(first) == 4
    # Same file, more configurations asked for on the command line: only the new ones run.
    lines: list[str] = []
    second = run_sweep(space, storage=storage, resume=True, samples=3, out=lines.append).trials
    assert len(second) == 6 and second.trial_id.is_unique
    kept = second.set_index("trial_id").loc[first.index]
    assert (kept.wall_time_s == first.wall_time_s).all()  # not re-run
    new = second[~second.trial_id.isin(first.index)]
    assert sorted(new.config_id.unique()) == ["c0002"]
    assert any("4 trials finished and kept, 2 to run" in ln for ln in lines)
    # Nothing left: a third resume runs nothing.
    lines.clear()
    run_sweep(space, storage=storage, resume=True, samples=3, out=lines.append)
    assert "nothing left to run" in lines


def test_resumed_grid_runs_exactly_the_missing_points(local_ray, space_file, tmp_path):
    # A grid of 3 x 2 = 6 points, 1 seed; the first session runs 2 of them (as a crash would leave it).
    path = space_file(SPACE.format(steps=10, samples=2, seeds=1, algorithm="grid")
                      .replace("{type: float, low: 0.01, high: 0.2, log: true}", "{type: categorical, choices: "
                               "[0.01, 0.05, 0.2]}").replace("high: 15, step: 5", "high: 10, step: 5"))
    space = load_space(path)
    storage = tmp_path / "runs"
    first = run_sweep(space, storage=storage, samples=2, out=lambda s: None).trials
    assert len(first) == 2
    final = run_sweep(space, storage=storage, resume=True, out=lambda s: None).trials
    points = sorted(zip(final.lr.astype(float), final.switch_at.astype(int), strict=True))
    assert points == sorted((lr, k) for lr in (0.01, 0.05, 0.2) for k in (5, 10))  # every point once
    assert final.trial_id.is_unique and len(final) == 6


def test_diverging_trial_is_recorded_and_sweep_goes_on(local_ray, space_file, tmp_path):
    text = """\
name: div
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgd, lr: $lr}}
train: {steps: 40, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.05, 1000000.0]}
search: grid
seeds: 1
"""
    study = run_sweep(load_space(space_file(text)), storage=tmp_path / "runs", out=lambda s: None)
    status = dict(zip(study.trials.lr, study.trials.status, strict=True))
    assert status == {0.05: "completed", 1000000.0: "diverged"}
    div = study.trials[study.trials.status == "diverged"].iloc[0]
    assert div.steps_done < 40
    assert "diverged" in set(study.events[study.events.trial_id == div.trial_id].kind)


def test_asha_stops_weak_trials(local_ray, space_file, tmp_path):
    text = """\
name: asha
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgd, lr: $lr}}
train: {steps: 90, eval_every: 10}
parameters:
  lr: {type: float, low: 0.0001, high: 0.3, log: true}
search: {algorithm: random, samples: 9, seed: 3}
seeds: 1
scheduler: {type: asha, grace_period: 10, reduction_factor: 3}
"""
    study = run_sweep(load_space(space_file(text)), storage=tmp_path / "runs", out=lambda s: None)
    t = study.trials
    assert len(t) == 9 and set(t.status) <= {"completed", "stopped"}
    stopped = t[t.status == "stopped"]
    assert len(stopped) >= 1 and (stopped.steps_done < 90).all()
    assert (t[t.status == "completed"].steps_done == 90).all()
    # A stopped trial keeps the steps it ran.
    tid = stopped.trial_id.iloc[0]
    assert study.steps[study.steps.trial_id == tid].step.max() == stopped.steps_done.iloc[0]


def test_sigint_then_sigkill_then_resume_loses_and_repeats_nothing(space_file, tmp_path, ray_tmp):
    path = tiny(space_file, steps=400, samples=6, seeds=2)
    storage = tmp_path / "runs"
    env = {**os.environ, "TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-m", "hyperswitch", "sweep", str(path), "--storage", str(storage)]

    def start(*extra):
        return subprocess.Popen([*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)

    def wait_finished(n, proc, timeout=150):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if (storage / "tiny" / "study.json").exists():
                done = len(open_study(storage / "tiny").finished())
                if done >= n:
                    return done
            if proc.poll() is not None:
                pytest.fail(f"sweep ended early: {proc.stdout.read()}")
            time.sleep(0.2)
        pytest.fail("timed out waiting for trials")

    # Ctrl-C: Tune stops, finished trials are kept, the study says interrupted.
    proc = start()
    wait_finished(2, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted:" in out and "--resume" in out
    after_int = open_study(storage / "tiny")
    assert after_int.meta["status"] == "interrupted" and 2 <= len(after_int.trials) < 12
    kept = dict(zip(after_int.trials.trial_id, after_int.trials.wall_time_s, strict=True))

    # SIGKILL of the whole program mid-resume (driver and its Ray): nothing finished is lost.
    proc = start("--resume")
    wait_finished(len(kept) + 2, proc)

    def cut_candidates() -> set[str]:  # running trials with a checkpoint and at least 200 of 400 steps to go
        now = open_study(storage / "tiny", include_running=True)
        ids = set(now.trials[now.trials.status == "running"].trial_id)
        last = now.steps[now.steps.trial_id.isin(ids)].groupby("trial_id").step.max()
        return {t for t in ids if last.get(t, 400) < 200
                and list((storage / "tiny" / "tune").glob(f"session-*/{t}/checkpoint_*/state.pt"))}

    deadline = time.monotonic() + 150
    while not cut_candidates():  # kill when a trial can be seen continuing from its checkpoint, not by luck
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("no running trial with a checkpoint to cut off")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    after_kill = open_study(storage / "tiny")
    assert set(kept) <= set(after_kill.trials.trial_id)
    # Trials cut off mid-run by the kill, with a checkpoint saved before it, continue from it on resume.
    running = open_study(storage / "tiny", include_running=True).trials
    running = set(running[running.status == "running"].trial_id)
    checkpointed = {t for t in running
                    if list((storage / "tiny" / "tune").glob(f"session-*/{t}/checkpoint_*/state.pt"))}
    assert checkpointed, running
    # A trial cut off twice (by the Ctrl-C, then by the kill) continues a second time: each resume adds one to the
    # restarts its latest checkpoint holds.
    latest = {t: latest_checkpoint(sorted((storage / "tiny" / "tune").glob(f"session-*/{t}"))) for t in checkpointed}
    expected = {t: int(state.get("restarts", 0)) + 1 for t, state in latest.items() if state is not None}
    assert set(expected) == checkpointed, latest

    # Resume to the end: every trial exactly once, and those finished before were not re-run.
    proc = start("--resume")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    final = open_study(storage / "tiny")
    assert final.meta["status"] == "completed"
    assert len(final.trials) == 12 and final.trials.trial_id.is_unique
    assert set(final.trials.status) == {"completed"}
    walls = dict(zip(final.trials.trial_id, final.trials.wall_time_s, strict=True))
    assert all(walls[t] == w for t, w in kept.items())
    steps = final.steps.groupby("trial_id").step.agg(["count", "min", "max", "nunique"])
    assert (steps["count"] == 400).all() and (steps["nunique"] == 400).all()
    restarts = dict(zip(final.trials.trial_id, final.trials.restarts, strict=True))
    assert all(restarts[t] == expected[t] for t in checkpointed), ({t: restarts[t] for t in checkpointed}, expected)
    assert all(restarts[t] == 0 for t in kept)
    assert not list((storage / "tiny" / "parts").glob("*.parquet"))
