"""Faults injected for real: a data-parallel worker process killed mid-trial, a node removed from a two-node
cluster mid-sweep. After each, the study's tables hold every finished trial once and every step once."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hyperswitch.results import open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def processes(title: str) -> list[int]:
    """PIDs whose command line (Ray sets it to ``ray::<Actor>.<method>``) contains ``title``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title in cmd:
            found.append(int(pid))
    return found


def this_ray_processes(title: str) -> list[int]:
    """``processes(title)`` below the raylet of this process's embedded Ray (never another test's Ray: the slow
    tests run two at a time)."""
    from hyperswitch import _ray

    raylet = next(pid for pid, kind in _ray.node_processes().items() if kind == "raylet")
    tree: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                tree.setdefault(int((p / "stat").read_text().rpartition(")")[2].split()[1]), []).append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    below, todo = set(), [raylet]
    while todo:
        for c in tree.get(todo.pop(), []):
            below.add(c)
            todo.append(c)
    return sorted(p for p in processes(title) if p in below)


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a program started with ``start_new_session``), only those."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getsid(int(pid)) == sid:
                    os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def assert_each_step_once(study, steps: int) -> None:
    s = study.steps.groupby("trial_id").step.agg(["count", "min", "max", "nunique"])
    assert len(s) == len(study.trials)
    assert (s["count"] == steps).all() and (s["nunique"] == steps).all(), s
    assert (s["min"] == 1).all() and (s["max"] == steps).all()


DP_SPACE = """\
name: dp_fault
workload: {name: digits_mlp, batch_size: 64, hidden: 32}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 600, eval_every: 50}
parameters:
  lr: {type: categorical, choices: [0.05, 0.02]}
search: {algorithm: grid}
seeds: 1
resources: {workers: 2, cpus_per_worker: 0.49, max_failures: 2}
max_concurrent: 1
"""


def test_killed_worker_of_kept_group_is_replaced_and_trial_resumes(local_ray, space_file, tmp_path):
    """Two 2-worker trials one after the other on the group the trial process keeps; during the second one (on
    the reused group) one of its two worker processes is SIGKILLed: a new group takes over and the trial continues
    from its latest checkpoint, each step once."""
    space = load_space(space_file(DP_SPACE))
    study_dir = tmp_path / "runs" / "dp_fault"
    killed: list[int] = []
    first: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            workers = this_ray_processes("ray::DataParallelWorker")
            if not first and list(study_dir.glob("tune/session-1/c0000-s0/checkpoint_*")):
                first.extend(workers)  # the group of the first trial
            ckpts = list(study_dir.glob("tune/session-1/c0001-s0/checkpoint_*"))
            if len(ckpts) >= 2 and len(workers) == 2:
                os.kill(max(workers), signal.SIGKILL)  # one of the two workers, mid-trial
                killed.append(max(workers))
                return
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    run_sweep(space, storage=tmp_path / "runs", out=lambda s: None)
    th.join(timeout=5)
    assert killed, "no worker was found to kill"
    assert killed[0] in first, (killed, first)  # the second trial ran on the first trial's workers
    study = open_study(study_dir)
    t = study.trials.set_index("trial_id")
    assert len(t) == 2 and set(t.status) == {"completed"} and set(t.workers) == {2}
    assert t.restarts["c0000-s0"] == 0 and t.restarts["c0001-s0"] >= 1  # resumed from a checkpoint
    assert_each_step_once(study, 600)


def test_node_removed_mid_sweep_trials_retried_elsewhere(tmp_path):
    """A two-node ``ray.cluster_utils.Cluster`` (in a subprocess, so it has its own Ray); the second node is
    removed while trials run on it."""
    temp = Path(tempfile.mkdtemp(prefix="hsn", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "TMPDIR": str(temp)}
    try:
        proc = subprocess.run([sys.executable, str(HERE / "node_loss.py"), str(tmp_path / "runs")], env=env,
                              capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["removed_while_running"], report
    study = open_study(tmp_path / "runs" / "node_loss")
    assert study.meta["status"] == "completed"
    assert len(study.trials) == 6 and study.trials.trial_id.is_unique
    assert set(study.trials.status) == {"completed"}
    assert_each_step_once(study, 600)
    assert study.trials.restarts.max() >= 1  # the trial(s) on the lost node continued from a checkpoint


DRIVER_SPACE = DP_SPACE.replace("name: dp_fault", "name: dp_driver").replace("steps: 600", "steps: 500").replace(
    "choices: [0.05, 0.02]", "choices: [0.05]")


def test_driver_sigkill_mid_data_parallel_trial_then_resume(space_file, tmp_path, ray_tmp):
    """SIGKILL of the whole sweep program (driver, its Ray, the group's workers) while a 2-worker trial runs; on
    --resume the trial continues from its checkpoint, each step once, and the sweep completes."""
    path = space_file(DRIVER_SPACE)
    storage = tmp_path / "runs"
    study_dir = storage / "dp_driver"
    env = {**os.environ, "TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hyperswitch", "sweep", str(path), "--storage", str(storage)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    t0 = time.time()
    while not list(study_dir.glob("tune/session-1/c0000-s0/checkpoint_*")):
        if proc.poll() is not None:
            pytest.fail(f"sweep ended early: {proc.stdout.read()}")
        if time.time() - t0 > 240:
            kill_session(proc.pid)
            pytest.fail("no checkpoint of the first trial within 240 s")
        time.sleep(0.05)
    ckpt_step = 50 * len(list(study_dir.glob("tune/session-1/c0000-s0/checkpoint_*")))
    while steps_recorded(study_dir) < ckpt_step + 20:  # steps past the checkpoint: they must not be recorded twice
        if proc.poll() is not None or time.time() - t0 > 240:
            kill_session(proc.pid)
            pytest.fail("the first trial recorded no steps past its checkpoint")
        time.sleep(0.05)
    kill_session(proc.pid)
    proc.wait(timeout=30)
    proc.stdout.close()
    kill_session(proc.pid)  # Ray's workers have process groups of their own, but stay in the program's session
    cut = open_study(study_dir, include_running=True).trials
    assert list(cut.status) == ["running"] and len(open_study(study_dir).trials) == 0

    out = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "took over the lock of study dp_driver" in out.stdout  # its holder was SIGKILLed with the program
    final = open_study(study_dir)
    assert final.meta["status"] == "completed" and len(final.trials) == 1
    assert set(final.trials.status) == {"completed"} and set(final.trials.workers) == {2}
    assert_each_step_once(final, 500)
    restarts = dict(zip(final.trials.trial_id, final.trials.restarts, strict=True))
    assert restarts == {"c0000-s0": 1}, restarts  # continued from its checkpoint


KILL_SPACE = """\
name: kills
workload: {name: digits_mlp, batch_size: 64, hidden: 32}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 1000, eval_every: 50}
parameters:
  lr: {type: float, low: 0.01, high: 0.1, log: true}
search: {algorithm: random, samples: 2, seed: 0}
seeds: 2
resources: {workers: 1, cpus_per_worker: 1, max_failures: 2}
max_concurrent: 2
"""


def session_processes(sid: int, title: str) -> list[int]:
    """``processes(title)`` of session ``sid`` only (never another program's Ray)."""
    found = []
    for pid in processes(title):
        try:
            if os.getsid(pid) == sid:
                found.append(pid)
        except ProcessLookupError:
            pass
    return sorted(found)


def steps_recorded(study_dir: Path) -> int:
    """Steps recorded so far over all trials, running ones included."""
    if not (study_dir / "study.json").exists():
        return 0
    t = open_study(study_dir, include_running=True).trials
    return int(t.steps_done.fillna(0).sum()) if len(t) else 0


def test_ray_system_and_trial_processes_killed_then_resumed(space_file, tmp_path, ray_tmp):
    """Three sessions, each with a trial process (``ray::ImplicitFunc``) and then one of Ray's own processes
    (raylet, runtime-env agent, GCS server, in a seeded order) SIGKILLed at seeded random moments. A killed
    trial continues within the session from its checkpoint; a dead Ray ends the session with one line (what
    died, how to resume), exit status 75, no traceback; every trial it cut off is continued on --resume. In the
    end every trial is completed once and every step recorded once."""
    rng = random.Random(20261202)
    path = space_file(KILL_SPACE)
    storage = tmp_path / "runs"
    study_dir = storage / "kills"
    env = {**os.environ, "TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hyperswitch", "sweep", str(path), "--storage", str(storage)]
    systems = ["raylet/raylet", "ray::RuntimeEnvAgent", "gcs_server"]
    rng.shuffle(systems)

    def wait_for(proc, what: str, ready) -> None:
        deadline = time.monotonic() + 180
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"sweep ended before {what}: {proc.stdout.read()}")
            if time.monotonic() > deadline:
                kill_session(proc.pid)
                pytest.fail(f"no {what} within 180 s")
            time.sleep(0.1)

    trial_kills = 0
    for n, system in enumerate(systems):
        proc = subprocess.Popen([*cmd, *(["--resume"] if n else [])], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            at = steps_recorded(study_dir) + rng.randrange(100, 300)
            wait_for(proc, "a trial to kill", lambda: steps_recorded(study_dir) >= at  # noqa: B023
                     and session_processes(proc.pid, "ray::ImplicitFunc"))  # noqa: B023
            os.kill(rng.choice(session_processes(proc.pid, "ray::ImplicitFunc")), signal.SIGKILL)
            trial_kills += 1
            at = steps_recorded(study_dir) + rng.randrange(100, 300)
            wait_for(proc, f"a moment to kill {system}", lambda: steps_recorded(study_dir) >= at)  # noqa: B023
            os.kill(session_processes(proc.pid, system)[0], signal.SIGKILL)
            out, _ = proc.communicate(timeout=120)
        finally:
            kill_session(proc.pid)
        last = out.strip().splitlines()[-1]
        assert proc.returncode == 75, out[-3000:]
        assert last.startswith("hyperswitch: ") and "died" in last and "--resume" in last, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        cut = open_study(study_dir, include_running=True).trials
        assert "error" not in set(cut.status), cut[["trial_id", "status", "error"]]
        assert not (study_dir / ".lock").exists()  # the dead driver's lock was removed: no takeover next time
        assert "took over the lock" not in out, out[-3000:]

    out = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "took over the lock" not in out.stdout + out.stderr
    assert "took over the lock" not in out.stdout + out.stderr
    final = open_study(study_dir)
    assert final.meta["status"] == "completed" and len(final.trials) == 4 and final.trials.trial_id.is_unique
    assert set(final.trials.status) == {"completed"}
    assert_each_step_once(final, 1000)
    assert trial_kills == 3 and final.trials.restarts.sum() >= 3  # continued from checkpoints, not from scratch


LOST_SPACE = """\
name: lost
workload: {name: digits_mlp, batch_size: 64, hidden: 32}
policy: {type: single, optimizer: {name: sgdm, lr: 0.05}}
train: {steps: 1500, eval_every: 50}
seeds: 2
resources: {workers: 1, cpus_per_worker: 1, max_failures: 0}
max_concurrent: 2
"""


def test_trial_killed_past_max_failures_is_unfinished_and_resumed(local_ray, space_file, tmp_path):
    """A trial process killed with no restart left (max_failures 0): the trial is unfinished, not `error`; the
    sweep says so (exit status 75 from the command) and --resume continues it from its checkpoint."""
    study_dir = tmp_path / "runs" / "lost"
    killed: list[int] = []

    def trial_processes() -> list[int]:
        return this_ray_processes("ray::ImplicitFunc")

    def killer() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            ckpts = {p.parent.name for p in study_dir.glob("tune/session-1/*/checkpoint_*")}
            if len(ckpts) == 2 and trial_processes():  # both trials have a checkpoint: kill either
                killed.append(trial_processes()[0])
                os.kill(killed[0], signal.SIGKILL)
                return
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    lines: list[str] = []
    space = load_space(space_file(LOST_SPACE))
    study = run_sweep(space, storage=tmp_path / "runs", out=lines.append)
    th.join(timeout=5)
    assert killed, "no trial process was found to kill"
    assert study.meta["status"] == "interrupted" and study.meta["interrupted_by"] == "ray"
    assert any("cut off by Ray" in ln for ln in lines) and any("1 trial(s) cut off by Ray" in ln for ln in lines)
    rows = open_study(study_dir, include_running=True).trials
    assert sorted(rows.status) == ["completed", "running"], rows[["trial_id", "status", "error"]]
    cut = rows[rows.status == "running"].trial_id.iloc[0]

    final = run_sweep(space, storage=tmp_path / "runs", resume=True, out=lambda s: None)
    assert final.meta["status"] == "completed" and set(final.trials.status) == {"completed"}
    assert_each_step_once(final, 1500)
    assert final.trials.set_index("trial_id").restarts[cut] == 1  # continued from its checkpoint
