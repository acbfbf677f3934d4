"""Which failures are the system's (the trial is unfinished: continued from its checkpoint) and which are the
trial's own (status error): Ray's real exception types and a worker group's loss, no Ray started. And a configuration
whose trial Ray cut off stops the proposals that would learn from it."""

from __future__ import annotations

import pytest
from ray.exceptions import ActorDiedError, NodeDiedError, ObjectLostError, RaySystemError, RayTaskError
from ray.tune.search import Searcher

from hyperswitch.search.faults import describe, is_system_failure
from hyperswitch.search.seeds import OBJECTIVE, OptunaProposer, SeedRepeater
from hyperswitch.train.group import WorkerLost


def task_error(cause: BaseException) -> RayTaskError:
    return RayTaskError("run_trial", "Traceback ...", cause).as_instanceof_cause()


SYSTEM = [
    ActorDiedError(),
    NodeDiedError("node 1 died"),
    RaySystemError("lost the GCS"),
    ObjectLostError("ffff", "owner", "call site"),
    task_error(ActorDiedError()),  # a task that used a dead actor
    WorkerLost("rank 1 died"),  # a multi-worker trial's group lost workers more often than max_failures allows
]
USER = [
    ValueError("bad value"),
    task_error(ZeroDivisionError("in training")),
]


@pytest.mark.parametrize("exc", SYSTEM, ids=lambda e: type(e).__name__)
def test_system_failures(exc):
    assert is_system_failure(exc)


@pytest.mark.parametrize("exc", USER, ids=lambda e: type(e).__name__)
def test_failures_of_the_trials_own_code(exc):
    assert not is_system_failure(exc)


def test_describe_is_one_short_line():
    line = describe(task_error(ZeroDivisionError("division by zero")))
    assert "\n" not in line and len(line) <= 200 and line.startswith("RayTaskError")


def test_a_cut_off_configuration_stops_the_proposals_that_need_its_result():
    """TPE (start-up 2, lag 1): configuration 3 learns from 0..1; configuration 1 was cut off by Ray."""
    from optuna.distributions import FloatDistribution

    proposer = OptunaProposer({"x": FloatDistribution(0.0, 1.0)}, "tpe", 0, "max", lag=1, n_startup=2)
    rep = SeedRepeater(proposer, [0], "max", n_new=5)
    got = {t: rep.suggest(t) for t in ("a", "b", "c")}  # configurations 0, 1, 2 need no results
    assert [g["config_id"] for g in got.values()] == ["c0000", "c0001", "c0002"]
    rep.on_trial_complete("a", {OBJECTIVE: 0.5})
    rep.on_trial_complete("b", None, error=True)  # Tune gave up on c0001-s0
    rep.on_trial_complete("c", {OBJECTIVE: 0.7})
    assert rep.suggest("d") == Searcher.FINISHED  # c0003 would learn from c0001: the sweep stops proposing
