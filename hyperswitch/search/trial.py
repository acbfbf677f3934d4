"""The Tune trial function: one configuration x one seed.

With ``resources.workers: 1`` the trial trains in its own process; with more it runs on the data-parallel
worker group that its process keeps across the sweep's trials (``train.group``), whose rank 0 records the
trial and hands its reports to the trial's process. Either way the trial writes its part files
at every evaluation (status running) and at the end (final status), reports to Tune at every evaluation when a
scheduler (ASHA) decides from those reports, and checkpoints through Ray's checkpoint API at the evaluations
``train.checkpoint_every`` asks for (a report with the checkpoint). A trial
retried after a failure, or re-run by ``--resume`` after the driver died, continues from its latest
checkpoint: each step is trained and recorded once.
"""

from __future__ import annotations

import copy
import math
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hyperswitch import _ray
from hyperswitch.results.fs import ObjectPath, StudyPath, glob, study_path
from hyperswitch.results.schema import ERROR, RUNNING
from hyperswitch.results.store import StudyStore
from hyperswitch.search.seeds import OBJECTIVE
from hyperswitch.search.space import SearchSpace

if TYPE_CHECKING:
    from hyperswitch.switching import Policy


def trial_row(space: SearchSpace, config: Mapping[str, Any], values: Mapping[str, Any] | None,
              status: str, summary: Mapping[str, Any] | None = None, error: str | None = None,
              policy_obj: Policy | None = None) -> dict[str, Any]:
    """A trials.parquet row: identity, every parameter under its own name, metrics. ``policy_obj``: the trial's
    validated policy, which names its optimizers (validated here when not given; none when it does not)."""
    from hyperswitch.switching import Policy

    if values is None:
        try:
            values = space.resolve(config["params"])
        except Exception:  # a row must still be written
            values = dict(config.get("params", {}))
    workload, policy = space.workload, space.policy
    try:
        workload, policy = space.instantiate(values)
        if policy_obj is None:
            policy_obj = Policy.from_spec(policy)
    except Exception:  # a row must still be written
        pass
    optimizers = ",".join(policy_obj.optimizer_names()) if policy_obj is not None else None
    row: dict[str, Any] = {
        "trial_id": config["trial_id"], "config_id": config["config_id"], "seed": int(config["seed"]),
        # the instantiated names: a workload or policy type given by a parameter ($task) shows its value
        "status": status, "workload": workload.get("name"), "policy_type": policy.get("type"),
        "optimizers": optimizers,
    }
    # a conditional parameter that does not apply has no value: no key (a null in trials.parquet)
    row.update({n: values.get(n) for n in space.parameter_names if n in values or n not in space.conditions})
    row.update(summary or {})
    if space.constraints:  # this trial's own values within every constraint (False without a value: always a bool)
        row["feasible"] = all(c.satisfied(objective(summary or {}, c.metric)) for c in space.constraints)
    if error:
        row["error"] = error
    return row


def objective(summary: Mapping[str, Any], metric: str) -> float | None:
    v = summary.get(metric)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _reportable(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}


def checkpoint_roots(study_dir: str | Path | ObjectPath, trial_id: str) -> list[StudyPath]:
    """Where earlier sessions of a study kept this trial's checkpoints (single- and multi-worker); ``study_dir``:
    the study's folder or URI."""
    root = study_path(study_dir)
    return [*glob(root, f"tune/session-*/{trial_id}"), root / "train" / trial_id]


class TrialJob:
    """One trial as a picklable job (see ``train.driver``): rank 0 writes the study's part files."""

    def __init__(self, config: dict[str, Any], space: SearchSpace, study_dir: str) -> None:
        self.config, self._space, self.study_dir = config, space, study_dir

    def space(self) -> SearchSpace:
        """The sweep's space as the driver validated it (with its --samples/--seeds): it travels with the job, so
        a trial process or worker neither parses nor validates it again. A copy: callers may change theirs."""
        return copy.deepcopy(self._space)

    def prepare(self) -> tuple[SearchSpace, dict[str, Any], dict[str, Any], Policy]:
        """(space, parameter values, workload spec, policy); raises on a bad combination of values."""
        from hyperswitch.switching import Policy

        space = self.space()
        values = space.resolve(self.config["params"])
        workload, policy_spec = space.instantiate(values)
        return space, values, workload, Policy.from_spec(policy_spec)

    def record(self, status: str, summary: Mapping[str, Any] | None, result: Any = None,
               error: str | None = None) -> None:
        space = self.space()
        row = trial_row(space, self.config, None, status, summary, error)
        StudyStore(self.study_dir).write_trial_parts(row, result.steps if result is not None else [],
                                                     result.events if result is not None else [])

    def run(self, *, rank: int, world_size: int, device: torch.device, resume: Mapping[str, Any] | None,
            report: Any) -> dict[str, Any]:
        from hyperswitch.train.loop import train_run

        space, values, workload, policy = self.prepare()
        store = StudyStore(self.study_dir)
        # Tune uses an evaluation's report when its scheduler (ASHA) decides from it, or to save a checkpoint;
        # the part files record every evaluation either way
        reports_wanted = space.scheduler["type"] != "none"

        events_written = [-1]  # the events part is rewritten only when an event was added

        def on_eval(row: Mapping[str, Any], result: Any, state: dict[str, Any] | None) -> None:
            summary = dict(result.summary)
            if rank == 0:
                new_events = len(result.events) != events_written[0]
                store.write_trial_parts(trial_row(space, self.config, values, RUNNING, summary, policy_obj=policy),
                                        result.steps, result.events if new_events else None)
                events_written[0] = len(result.events)
            if state is not None or reports_wanted:  # a round trip to Tune's driver: only when it is used
                report({**_reportable(summary), "step": row["step"], OBJECTIVE: objective(summary, space.metric),
                        "status": RUNNING}, state)

        result = train_run(workload, policy, space.train, int(self.config["seed"]), device=device, on_eval=on_eval,
                           resume=resume, rank=rank, world_size=world_size)
        summary = dict(result.summary)
        if rank == 0:
            store.write_trial_parts(trial_row(space, self.config, values, result.status, summary, policy_obj=policy),
                                    result.steps, result.events)
        return {**_reportable(summary), "step": summary["steps_done"], OBJECTIVE: objective(summary, space.metric),
                "status": result.status}


def run_trial(config: dict[str, Any], *, space: SearchSpace, study_dir: str) -> dict[str, Any] | None:
    """The Tune trial function; ``space``: the sweep's validated space (with its overrides)."""
    from ray import tune

    from hyperswitch.train import driver

    job = TrialJob(config, space, study_dir)
    try:
        space = job.space()
        job.prepare()
    except Exception as exc:  # a bad combination is this trial's error, not the sweep's
        msg = f"{type(exc).__name__}: {exc}"
        job.record(ERROR, None, error=msg)
        return {"status": ERROR, "error": msg, OBJECTIVE: None}  # the objective, None: Tune requires the key
    res = space.resources
    if res.workers > 1:
        _ray.allow_slow_trial_stop()  # a stopped trial's workers stop at their next evaluation; Tune then reuses
    # the trial's own process holds the GPU of a 1-worker trial; a group's workers hold theirs (bundles with GPUs,
    # which the runner asked for only where the cluster has GPUs)
    use_gpu = res.gpus_per_worker > 0 and (torch.cuda.is_available() if res.workers == 1 else True)
    trial_id = str(config["trial_id"])
    try:
        # after a retry within the session: Tune's latest checkpoint; after a driver crash: the study's
        resume = driver.tune_resume_state() or driver.latest_checkpoint(checkpoint_roots(study_dir, trial_id))
        if res.workers == 1:
            torch.set_num_threads(max(1, int(res.cpus_per_worker)))
            final = job.run(rank=0, world_size=1, device=torch.device("cuda" if use_gpu else "cpu"), resume=resume,
                            report=driver.tune_report)
        else:  # on this trial process's worker group, kept for the sweep's next trials (train.group)
            final = driver.run_data_parallel(
                job, workers=res.workers, use_gpu=use_gpu, cpus_per_worker=res.cpus_per_worker,
                gpus_per_worker=res.gpus_per_worker, max_failures=res.max_failures, in_tune=True, resume=resume)
    except Exception as exc:
        from hyperswitch.search.faults import is_system_failure

        if is_system_failure(exc):  # e.g. the workers died past max_failures: unfinished, not failed;
            raise  # Tune restarts the trial from its checkpoint (max_failures), --resume continues it
        msg = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        job.record(ERROR, None, error=msg)
        traceback.print_exc()
        return {"status": ERROR, "error": msg, OBJECTIVE: None}  # the objective, None: Tune requires the key
    tune.report(final)
    return final
