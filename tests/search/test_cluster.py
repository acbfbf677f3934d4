"""``--address``: a sweep submitted to an existing Ray cluster (``ray start --head`` on loopback)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hyperswitch.results import open_study

pytestmark = pytest.mark.slow

SPACE = """\
name: remote
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
    env = {**os.environ, "TMPDIR": str(temp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "HOME": str(temp)}
    port = free_port()
    start = subprocess.run([ray_exe, "start", "--head", "--num-cpus", "2", "--port", str(port),
                            "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
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
        assert len(study.trials) == 2 and set(study.trials.status) == {"completed"}
        assert "best trial: " in proc.stdout
    finally:
        stop_processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def stop_processes_under(temp: Path) -> None:
    """Stop only this cluster's processes (their command lines name its temp dir), never another Ray."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(temp) in " ".join(p.info["cmdline"] or []):
                procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
