"""``--address``: a sweep submitted to an existing Ray cluster (``ray start --head`` on loopback)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hyperswitch.results import open_study
from tests._helpers import ROOT

pytestmark = pytest.mark.slow

SPACE = """\
name: remote
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.1, log: true}
search: {algorithm: random, samples: 1}
seeds: 1
resources: {workers: 2, cpus_per_worker: 0.49}   # each trial on a group of 2 workers on the cluster
max_concurrent: 1
"""
JOB_SPACE = """\
name: jobbed
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.1, log: true}
search: {algorithm: random, samples: 2}
seeds: 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_existing_cluster(tmp_path):
    ray_exe = str(Path(sys.executable).parent / "ray")
    temp = Path(tempfile.mkdtemp(prefix="hsc", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(temp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    port, dashboard, agent = free_port(), free_port(), free_port()
    start = subprocess.run([ray_exe, "start", "--head", "--num-cpus", "2", "--port", str(port),
                            "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
                            "--dashboard-port", str(dashboard), "--dashboard-agent-listen-port", str(agent),
                            "--temp-dir", str(temp / "ray"), "--disable-usage-stats"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stderr
    try:
        space = tmp_path / "remote.yaml"
        space.write_text(SPACE)
        proc = subprocess.run([sys.executable, "-m", "hyperswitch", "sweep", str(space), "--storage",
                               str(tmp_path / "runs"), "--address", f"127.0.0.1:{port}"],
                              env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        study = open_study(tmp_path / "runs" / "remote")
        assert len(study.trials) == 1 and set(study.trials.status) == {"completed"}
        assert set(study.trials.workers) == {2}
        assert "best trial: " in proc.stdout
        assert f"joined the Ray cluster at 127.0.0.1:{port}: 1 node, 2 CPUs" in proc.stdout, proc.stdout

        # The same sweep command as a Ray job (RAY_ADDRESS set for it): it joins the job's cluster and says so.
        job_space = tmp_path / "jobbed.yaml"
        job_space.write_text(JOB_SPACE)
        # The head hands a job to its node's dashboard agent and waits only 10 s for one to be registered
        # ("No available agent to submit job"); on a busy 2-core machine the agent can take longer to start.
        # It registers right after its HTTP server listens, so wait for that port before submitting.
        wait_listening(agent, timeout=180)
        job = subprocess.run([ray_exe, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                              "--working-dir", str(ROOT), "--", sys.executable, "-m", "hyperswitch", "sweep",
                              str(job_space), "--storage", str(tmp_path / "runs")],
                             env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert f"joined the Ray cluster at 127.0.0.1:{port}: 1 node, 2 CPUs" in job.stdout, job.stdout[-3000:]
        assert "embedded" not in job.stdout
        jobbed = open_study(tmp_path / "runs" / "jobbed")
        assert len(jobbed.trials) == 2 and set(jobbed.trials.status) == {"completed"}
    finally:
        stop_processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the Ray dashboard agent did not listen on port {port} in {timeout} s") from None
            time.sleep(0.2)


def stop_processes_under(temp: Path) -> None:
    """Stop only this cluster's processes (their command lines name its temp dir), never another Ray."""
    def pids() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(temp) in cmd:
                found.append(int(proc.name))
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while pids() and time.time() < deadline:
            time.sleep(0.2)


def test_unreachable_address_is_a_one_line_error(tmp_path):
    space = tmp_path / "remote.yaml"
    space.write_text(SPACE)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run([sys.executable, "-m", "hyperswitch", "sweep", str(space), "--storage",
                           str(tmp_path / "runs"), "--address", f"127.0.0.1:{free_port()}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hyperswitch: error: --address: cannot connect to the Ray cluster")


def test_user_workload_code_is_shipped_to_a_cluster(monkeypatch):
    """A workload given by import path travels to the cluster's workers with the job (runtime_env py_modules)."""
    from hyperswitch.search.runner import _user_modules
    from hyperswitch.search.space import space_from_text
    from tests._helpers import ROOT

    monkeypatch.chdir(ROOT)
    text = SPACE.replace("{name: digits_mlp}", '{name: "examples.user_workload:two_moons"}')
    assert _user_modules(space_from_text(text, "user.yaml")) == [str(ROOT / "examples")]
    assert _user_modules(space_from_text(SPACE, "remote.yaml")) == []
