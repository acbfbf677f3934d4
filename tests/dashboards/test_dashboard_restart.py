"""`hyperswitch dashboard` as a real process: stopped after serving requests and started again at once on the same
port, it serves (the old free-port probe bound without SO_REUSEADDR and tripped over the first server's TIME_WAIT
sockets for a minute), and it says where it serves in exactly one line (no Dash or Flask banners)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.dashboards.dashtools import free_port


def _start(storage: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "hyperswitch.cli", "dashboard", "--storage", str(storage),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)


def _serves(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"the dashboard exited with {proc.returncode}: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no answer from {url} within {timeout_s} s: {log.read_text()[-2000:]}"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen, sig: int, log: Path) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # the dashboard dumps every thread's stack to its log (faulthandler)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        proc.kill()
        proc.wait()
        said = log.read_text()[-6000:]
        raise AssertionError(f"the dashboard did not stop within 30 s of signal {sig}: {said}") from None


def _server_time_wait(port: int) -> int:
    """Sockets in TIME_WAIT whose local end is ``port`` (the server's side of closed connections)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "06":
                n += 1
    return n


def test_restart_on_the_same_port_serves_at_once(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    proc = _start(tmp_path / "runs", port, first)
    try:
        _serves(proc, url, first)
        # A browser's way: each response read to its end before the client closes, so the server closes first and
        # its side of each connection stays in TIME_WAIT on the port.
        for path in ("/", "/_dash-layout", "/_dash-dependencies"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                while s.recv(65536):
                    pass
    finally:
        rc = _stop(proc, signal.SIGINT, first)
    assert rc == 0, first.read_text()
    assert _server_time_wait(port) > 0  # the condition the restart must survive is really there
    proc = _start(tmp_path / "runs", port, second)
    try:
        _serves(proc, url, second)
    finally:
        _stop(proc, signal.SIGTERM, second)

    said = first.read_text().splitlines()
    assert [line for line in said if url in line] == [
        f"hyperswitch dashboard: studies under {(tmp_path / 'runs').resolve()} at {url} (Ctrl-C to stop)"], said
    assert not [line for line in said if "Dash is running" in line or "Serving Flask app" in line], said
