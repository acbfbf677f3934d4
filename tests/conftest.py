"""Shared fixtures. Ray runs for real, on loopback, with its temp files in a folder the test session owns."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Keep every Ray port on 127.0.0.1 and Tune's console quiet (set before Ray is imported by a test).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


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
