"""Telling a trial cut off by the system from a trial whose own code failed.

A trial is *cut off* when Ray took it away: its actor, worker process or node died, the driver lost its
cluster, a multi-worker trial's group lost workers more often than ``max_failures`` allows (``train.group``).
Such a trial is unfinished, not failed: Tune
restarts it from its checkpoint up to ``resources.max_failures`` times, and ``--resume`` always continues it.
A trial whose code raised (training, a bad combination of values) *failed*: its row says ``error`` and only
``--resume --retry-errors`` runs it again. Ray says which by the exception type: ``RayActorError``,
``WorkerCrashedError``, ``NodeDiedError``, ``RaySystemError``, ``ObjectLostError``... for the system, and a
``RayTaskError`` wrapping the user's exception otherwise.
"""

from __future__ import annotations

from typing import Any

_SYSTEM_NAMES = (
    "RayActorError",  # ActorDiedError, ActorUnavailableError: the trial's process or its node died
    "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "RaySystemError", "ObjectLostError",
    "RpcError", "OutOfMemoryError",  # Ray's memory monitor killed the worker
    "ObjectStoreFullError", "OutOfDiskError", "RuntimeEnvSetupError", "TaskPlacementGroupRemoved",
    "ActorPlacementGroupRemoved", "ActorUnschedulableError", "TaskUnschedulableError",
)


def _system_types() -> tuple[type, ...]:
    import ray.exceptions as e

    return tuple(t for n in _SYSTEM_NAMES if isinstance(t := getattr(e, n, None), type))


def is_system_failure(exc: BaseException | None, _depth: int = 0) -> bool:
    """True if ``exc`` says Ray took the trial away (retry it from its checkpoint); False if the trial's own
    code raised it (or it is unknown)."""
    if exc is None or _depth > 8:
        return False
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError):  # a task or actor method raised: whatever it raised decides
        return is_system_failure(getattr(exc, "cause", None), _depth + 1)
    if isinstance(exc, _system_types()):
        return True
    from hyperswitch.train.group import WorkerLost

    if isinstance(exc, WorkerLost):  # a worker of a multi-worker trial's group died more often than allowed
        return True
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_system_failure(cause, _depth + 1)


def describe(exc: Any) -> str:
    """``Type: first line of the message`` (at most 200 characters)."""
    if exc is None:
        return "unknown failure"
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:200]
