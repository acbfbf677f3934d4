"""Ray behind one shim: connecting, the runtime env, the cluster's resources, and every non-public Ray API.

Nothing else in ``hyperswitch`` imports a private Ray module (``ray._private``, ``ray.*._internal``), reads a
private attribute of a Ray object or names one of Ray's private loggers: each such use is one small function
here, whose docstring says what it relies on and in which Ray versions it was checked (a test greps the
package for them: ``tests/test_ray_shim.py``). Ray's public API (``ray.tune``, ``ray.util``,
``ray.exceptions``) is used where it is needed.

Ray is pinned to the minor version these were checked with (``TESTED_RAY``, the same range as in
``pyproject.toml``); :func:`connect` refuses another one with one line. Importing this module imports no Ray:
each function imports it when called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from hyperswitch.errors import ConfigError

# The Ray minor version every function below was checked with: [low, high) as (major, minor). pyproject.toml
# pins the same range (a test compares them).
TESTED_RAY = ((2, 60), (2, 61))
RAY_REQUIREMENT = "ray[default,tune,train]>=2.60,<2.61"

# --- version -------------------------------------------------------------------------------------------------

def check_version(version: str | None = None) -> str:
    """The running Ray's version (or ``version``); a one-line :class:`ConfigError` when it is outside
    ``TESTED_RAY``: the private APIs below are checked for that range only."""
    if version is None:
        import ray

        version = ray.__version__
    try:
        major_minor = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        major_minor = ()
    (lo_major, lo_minor), (hi_major, hi_minor) = TESTED_RAY
    if not (len(major_minor) == 2 and TESTED_RAY[0] <= major_minor < TESTED_RAY[1]):
        raise ConfigError("ray", f"hyperswitch is tested with Ray >={lo_major}.{lo_minor},<{hi_major}.{hi_minor} "
                          f"only; install that range: pip install '{RAY_REQUIREMENT}'", version)
    return version


# --- connecting ----------------------------------------------------------------------------------------------

class _DropNotices(logging.Filter):
    """Ray notices that say nothing to a hyperswitch user (our own lines cover them)."""

    NOTICES = ("Token authentication is enabled for this Ray cluster",  # token auth stays on; we say nothing
               "`Study.stop` is supposed to be invoked",  # OptunaSearch when a grid is exhausted: expected
               # Ctrl-C: Tune's "Resume experiment with: Tuner.restore(...)"; a sweep resumes with --resume
               "Experiment has been interrupted, but the most recent state was saved",
               "Trials did not complete")  # Tune's list of the trials cut off: our end line says it
    # Private: the name of the module that logs the token notice (checked in Ray 2.60).
    LOGGERS = ("ray", "ray._private.authentication.authentication_token_setup", "ray.tune.search.optuna",
               "ray.tune.search.optuna.optuna_search", "ray.tune.tune")

    @classmethod
    def install(cls) -> None:
        for name in cls.LOGGERS:  # a logger's filters see only its own records: each logger that emits one
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.NOTICES)


def quiet_tune(verbose: bool) -> None:
    """Our progress lines replace Tune's tables (the old output engine at verbosity 0 prints nothing).

    Relies on Tune's environment variables ``RAY_AIR_NEW_OUTPUT`` and ``TUNE_PRINT_ALL_TRIAL_ERRORS`` (not part
    of its Python API; checked in Ray 2.60)."""
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a trial's failure is our one progress line


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError("--address", f"cannot connect to the Ray cluster: nothing answers at {address} "
                          f"({exc.__class__.__name__})", address) from None


def runtime_env(modules: list[str] | None = None) -> dict[str, Any]:
    """The job's runtime env on a cluster: this driver's ``hyperswitch`` package and ``modules`` (folders/files
    of the user's own code) travel to the workers; Tune's output engine setting goes with them."""
    import hyperswitch

    package = str(Path(hyperswitch.__file__).parent)
    return {"py_modules": [package, *(modules or [])],
            "env_vars": {"RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT", "1")}}


def connect(address: str | None, *, verbose: bool = False, num_cpus: int | None = None,
            modules: list[str] | None = None) -> None:
    """Connect to ``address`` or start an embedded local Ray kept on loopback; nothing if Ray is already
    initialised in this process. ``modules``: folders/files of the user's own code (workloads by import path)
    that a cluster's workers must import too. Refuses a Ray outside ``TESTED_RAY`` (:func:`check_version`).

    The embedded Ray is bound to 127.0.0.1 through ``ray.init``'s private ``_node_ip_address`` argument and
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` (checked in Ray 2.60)."""
    import ray

    check_version()
    quiet_tune(verbose)
    _DropNotices.install()
    if ray.is_initialized():
        return
    if address:
        # The package travels with the job so that the cluster's workers run this driver's hyperswitch.
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=verbose, logging_level=logging.WARNING,
                     runtime_env=runtime_env(modules))
        except Exception as exc:  # connection, authentication: a user error, one line
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError("--address", f"cannot connect to the Ray cluster: {text}", address) from None
        return
    if os.environ.get("RAY_ADDRESS"):
        # A driver started by `ray job submit` (or pointed at a cluster by the environment): join that cluster;
        # the job's own runtime_env (--working-dir) carries the code to its workers.
        try:
            ray.init(log_to_driver=verbose, logging_level=logging.WARNING)
        except Exception as exc:
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError("RAY_ADDRESS", f"cannot connect to the Ray cluster: {text}",
                              os.environ["RAY_ADDRESS"]) from None
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every port on 127.0.0.1
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=verbose, logging_level=logging.WARNING,
             configure_logging=True, _node_ip_address="127.0.0.1")


def joins_cluster(address: str | None) -> bool:
    """Whether ``connect(address)`` joins a running cluster (``--address``, ``RAY_ADDRESS`` as ``ray job submit``
    sets it, or a Ray this process already started) rather than starting an embedded one."""
    import ray

    return bool(address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())


def shutdown() -> None:
    """Shut down this process's Ray, if it imported and started one (never imports Ray)."""
    if "ray" not in sys.modules:
        return
    import ray

    with contextlib.suppress(Exception):  # a Ray that is already gone
        if ray.is_initialized():
            ray.shutdown()


# --- the cluster -------------------------------------------------------------------------------------------

def cluster_resources() -> dict[str, float]:
    """The connected cluster's total resources (``{"CPU": 4.0, "GPU": 1.0, ...}``)."""
    import ray

    return dict(ray.cluster_resources())


def cluster_facts() -> dict[str, Any]:
    """The connected cluster: its GCS address, live nodes, CPUs and GPUs (public ``ray`` API)."""
    import ray

    try:
        where = ray.get_runtime_context().gcs_address
    except Exception:
        where = os.environ.get("RAY_ADDRESS", "?")
    total = cluster_resources()
    return {"address": where, "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
            "cpus": float(total.get("CPU", 0)), "gpus": float(total.get("GPU", 0))}


def cluster_line() -> str:
    """Which cluster this driver joined: its address, live nodes and CPUs."""
    facts = cluster_facts()
    nodes = facts["nodes"]
    return (f"joined the Ray cluster at {facts['address']}: {nodes} node{'s' if nodes != 1 else ''}, "
            f"{facts['cpus']:g} CPUs")


def _global_node() -> Any:
    """Private: ``ray._private.worker._global_node``, the ``ray._private.node.Node`` this driver started or
    joined through (None before ``ray.init``). Checked in Ray 2.60."""
    import ray

    return getattr(ray._private.worker, "_global_node", None)


def node_processes() -> dict[int, str]:
    """``{pid: "gcs_server" | "raylet"}``: the GCS server and raylet this driver's Ray started (an embedded Ray;
    empty when it joined a cluster or is not initialised).

    Private: ``Node.all_processes`` (``{kind: [ProcessInfo(process=Popen)]}``) of
    ``ray._private.worker._global_node``. Checked in Ray 2.60."""
    node = _global_node()
    found: dict[int, str] = {}
    if node is None:
        return found
    with contextlib.suppress(Exception):  # another Ray layout: nothing found
        for kind, infos in node.all_processes.items():
            if kind in ("gcs_server", "raylet"):
                found.update({info.process.pid: kind for info in infos if info.process is not None})
    return found


def raylet_socket_name() -> str | None:
    """The socket path of the raylet this driver talks to (a joined cluster's local raylet too), or None.

    Private: ``Node.raylet_socket_name`` of ``ray._private.worker._global_node``. Checked in Ray 2.60."""
    node = _global_node()
    if node is None:
        return None
    sock = getattr(node, "raylet_socket_name", None)
    return str(sock) if sock else None


# --- Tune internals -------------------------------------------------------------------------------------------------

def allow_slow_trial_stop(seconds: int = 30) -> None:
    """In a Tune trial's process: how long Tune waits for a stopped trial's function to return before it gives
    up reusing the process for the next trial (``reuse_actors``). A multi-worker trial returns once its workers
    have stopped at their next evaluation; Tune's 2 s default is short on a busy machine (the process and its
    worker group would then be discarded: slower, not wrong).

    Relies on ``TUNE_FUNCTION_THREAD_TIMEOUT_S``, read by ``FunctionTrainable.reset_config`` when it is called
    (not part of Tune's public API; checked in Ray 2.60). Kept where already set."""
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", str(seconds))


def trial_exception(trial: Any) -> BaseException | None:
    """The exception a failed Tune trial ended with (Tune pickles it next to the trial), or None.

    Relies on ``Trial.pickled_error_file`` (a DeveloperAPI property of ``ray.tune.experiment.Trial``) and on
    Tune pickling it with ``ray.cloudpickle``. Checked in Ray 2.60."""
    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).exists():
        return None
    try:
        import ray.cloudpickle as cloudpickle  # what Tune pickled it with

        with open(path, "rb") as f:
            exc = cloudpickle.load(f)
    except Exception:  # an unreadable error is an unknown one
        return None
    return exc if isinstance(exc, BaseException) else None


def trial_error_line(trial: Any) -> str | None:
    """The last non-blank line of a failed Tune trial's error file (at most 500 characters), or None.

    Relies on ``Trial.error_file`` (a DeveloperAPI property of ``ray.tune.experiment.Trial``). Checked in Ray
    2.60."""
    err_file = getattr(trial, "error_file", None) or ""
    try:
        if err_file and Path(err_file).exists():
            lines = [ln for ln in Path(err_file).read_text().splitlines() if ln.strip()]
            return lines[-1][:500] if lines else None
    except OSError:
        pass
    return None
