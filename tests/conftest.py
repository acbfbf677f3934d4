"""Shared fixtures. Ray runs for real, on loopback, with its temp files in a folder the test session owns."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# Keep every Ray port on 127.0.0.1 and Tune's console quiet (set before Ray is imported by a test).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

# The tests stop `hyperswitch sweep` and `hyperswitch dashboard` processes with SIGINT, as Ctrl-C in a terminal
# does. A suite started in the background by a non-interactive shell (`bash scripts/test.sh &`, nohup in a script)
# inherits SIGINT ignored, its children too, and Python then installs no KeyboardInterrupt handler in them: they
# would not stop. A handler here (rather than SIG_IGN) makes every child start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n 2`) each worker process computes with one torch thread: two workers with torch's
    default of one thread per core oversubscribe the two cores, and small tensor operations then wait on each
    other's threads (docs/benchmarks.md saw a digits step go from 0.5 ms to 20-40 ms that way). Processes that
    the tests start (Ray trials, the CLI) keep their own settings."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_tmp() -> Path:
    # Short path: Ray's socket names must stay under ~100 characters.
    path = Path(tempfile.mkdtemp(prefix="hsray", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def local_ray(ray_tmp: Path):
    """One embedded local Ray for the in-process sweep tests (2 CPUs, no dashboard)."""
    import ray

    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(ray_tmp)
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(ray_tmp / "r"), log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
    if old_tmp is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = old_tmp


@pytest.fixture()
def space_file(tmp_path: Path):
    """Write a search-space YAML (text) into tmp_path and return its path."""

    def write(text: str, name: str = "space.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return write


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3-protocol server in its own process: moto's standalone server on 127.0.0.1, on a free port. Yields
    its endpoint URL once it answers (polled, with a deadline); stopped at the end of the session."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto's S3 server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture()
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch):
    """The AWS environment pointed at the test's S3 server (dummy credentials; AWS_ENDPOINT_URL, which pyarrow
    honours) and a new, empty bucket. Returns ``(bucket URI "s3://NAME", environment for subprocesses)``."""
    import uuid

    import pyarrow.fs as pafs

    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server, "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"hs-{uuid.uuid4().hex[:12]}"
    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
    fs.create_dir(bucket)
    return f"s3://{bucket}", dict(os.environ)
