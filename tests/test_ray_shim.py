"""``hyperswitch._ray``, the one module between hyperswitch and Ray's non-public API: nothing else in the
package uses a private Ray module or attribute; Ray is pinned to the minor range the shim was checked with; and
each function does what its callers need against a real local Ray (one ``ray.init``, 1 CPU, no dashboard)."""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import re
import socket
import tomllib
from pathlib import Path

import pytest

from hyperswitch import _ray
from hyperswitch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hyperswitch"
SHIM = PACKAGE / "_ray.py"

# Text that names a non-public Ray API: ray._private / ray._raylet (not ray.__version__), any ``._internal``
# module, the driver's node, the inter-actor queue, Ray's queue actor.
PRIVATE_TEXT = re.compile(r"\bray\._(?!_)|\._internal\b|_global_node|_inter_actor_queue|\bray\.util\.queue\b")


def _private_ray_name(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == "ray" and (any(p.startswith("_") and not p.startswith("__") for p in parts[1:])
                                  or dotted.startswith("ray.util.queue"))


def _attribute_chain(node: ast.AST) -> str | None:
    """``ray._private.worker`` for that expression; None unless it is a chain of names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def private_ray_uses(path: Path) -> list[str]:
    """Each use of a non-public Ray API in ``path``: imports and attribute chains (AST), and the text."""
    text = path.read_text()
    found = []
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Attribute):
            chain = _attribute_chain(node)
            names = [chain] if chain else []
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if _private_ray_name(n)]
    for i, line in enumerate(text.splitlines(), 1):
        if PRIVATE_TEXT.search(line):
            found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    return found


def test_no_private_ray_api_outside_the_shim():
    found = [u for f in sorted(PACKAGE.rglob("*.py")) if f != SHIM for u in private_ray_uses(f)]
    assert not found, "private Ray API outside hyperswitch/_ray.py:\n" + "\n".join(found)


def test_the_check_sees_the_shims_own_private_uses():
    """Not vacuous: the same check finds what the shim wraps."""
    uses = "\n".join(private_ray_uses(SHIM))
    for name in ("ray._private.worker", "ray._private.authentication"):
        assert name in uses


def test_pin_is_the_tested_minor_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in deps if d.startswith("ray[")]
    (lo_major, lo_minor), (hi_major, hi_minor) = _ray.TESTED_RAY
    assert pinned == [_ray.RAY_REQUIREMENT]
    assert _ray.RAY_REQUIREMENT.endswith(f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}")
    assert (hi_major, hi_minor) == (lo_major, lo_minor + 1)  # one minor version


def test_the_running_ray_is_in_the_range():
    import ray

    assert _ray.check_version() == ray.__version__


@pytest.mark.parametrize("version", ["2.59.3", "2.61.0", "3.0.0", "1.60.0", "nightly"])
def test_another_ray_is_refused_in_one_line(version):
    with pytest.raises(ConfigError) as err:
        _ray.check_version(version)
    text = str(err.value)
    assert "\n" not in text and text.startswith("ray: hyperswitch is tested with Ray >=2.60,<2.61 only")
    assert _ray.RAY_REQUIREMENT in text and repr(version) in text


def test_patch_releases_are_accepted():
    assert _ray.check_version("2.60.7") == "2.60.7"


def test_nothing_listening_is_one_line_at_once():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=f"--address: cannot connect to the Ray cluster: nothing answers at "
                                          f"127.0.0.1:{port}"):
        _ray._check_reachable(f"127.0.0.1:{port}")
    _ray._check_reachable("auto")  # left to Ray


def test_runtime_env_carries_the_package_and_the_users_modules(monkeypatch):
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")
    env = _ray.runtime_env(["/work/my_workloads"])
    assert env["py_modules"] == [str(PACKAGE), "/work/my_workloads"]
    assert env["env_vars"] == {"RAY_AIR_NEW_OUTPUT": "0"}
    assert _ray.runtime_env()["py_modules"] == [str(PACKAGE)]


def test_trial_stop_wait_keeps_the_users_value(monkeypatch):
    monkeypatch.delenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", raising=False)
    _ray.allow_slow_trial_stop()
    assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "30"
    monkeypatch.setenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", "5")
    _ray.allow_slow_trial_stop()
    assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "5"
    # the name Tune reads when it resets a reused trial process
    from ray.tune.trainable import function_trainable

    assert "TUNE_FUNCTION_THREAD_TIMEOUT_S" in Path(function_trainable.__file__).read_text()


def test_outside_ray_there_is_nothing_to_read():
    assert _ray.trial_exception(object()) is None and _ray.trial_error_line(object()) is None


# --- against a real local Ray ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_here():
    """This module's Ray: started by the shim itself (1 CPU), or the session's if a test already started one."""
    import ray

    started = not ray.is_initialized()
    if started:
        _ray.connect(None, num_cpus=1)
    yield ray
    if started:
        _ray.shutdown()
        assert not ray.is_initialized()


@pytest.mark.slow
def test_connect_and_describe_the_cluster(ray_here):
    assert ray_here.is_initialized() and _ray.joins_cluster(None)
    _ray.connect(None)  # connected already: nothing happens
    cpus = _ray.cluster_resources()["CPU"]
    assert cpus >= 1
    assert re.fullmatch(rf"joined the Ray cluster at 127\.0\.0\.1:\d+: 1 node, {cpus:g} CPUs", _ray.cluster_line())
    # the private logger whose notice connect() drops still exists under that name, and has its filter
    name = "ray._private.authentication.authentication_token_setup"
    assert importlib.util.find_spec(name) is not None
    assert any(isinstance(f, _ray._DropNotices) for f in logging.getLogger(name).filters)


@pytest.mark.slow
def test_node_processes_are_this_rays_gcs_and_raylet(ray_here):
    found = _ray.node_processes()
    assert sorted(found.values()) == ["gcs_server", "raylet"]
    cmdlines = {kind: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                for pid, kind in found.items()}
    assert "gcs_server" in cmdlines["gcs_server"].split(" ")[0]
    sock = _ray.raylet_socket_name()
    assert sock and Path(sock).exists()
    # what supervise.ray_processes matches a joined cluster's raylet by
    assert "/raylet" in cmdlines["raylet"].split(" ")[0] and f"--raylet_socket_name={sock} " in cmdlines["raylet"]


@pytest.mark.slow
def test_tune_trial_internals(ray_here, tmp_path):
    """In a real Tune trial that fails: the trial's pickled exception and the last line of its error file."""
    from ray import tune

    def trial(config):
        raise ValueError("probe: None True False")

    seen = {}

    class Capture(tune.Callback):
        def on_trial_error(self, iteration, trials, trial, **info):
            seen["exc"], seen["line"] = _ray.trial_exception(trial), _ray.trial_error_line(trial)

    tune.Tuner(trial, run_config=tune.RunConfig(name="shim", storage_path=str(tmp_path), verbose=0,
                                                callbacks=[Capture()],
                                                failure_config=tune.FailureConfig(max_failures=0))).fit()
    from ray.exceptions import RayTaskError

    exc = seen["exc"]
    assert isinstance(exc, RayTaskError) and isinstance(exc.cause, ValueError)
    assert str(exc.cause) == "probe: None True False"
    assert seen["line"] == "ValueError: probe: None True False"
