"""Running a training job on one or more workers, with checkpoints.

One worker runs in the caller's process (the Tune trial's, or ``hyperswitch train``'s). More run on a
data-parallel worker group (``train.group``: Ray actors with a torch.distributed process group, kept alive
across the trials a Tune trial process runs): DDP over gloo on CPUs, NCCL on GPUs, each worker holding its
share of one global batch (``Batches``), K-FAC factors and per-sample-gradient rows synchronised by the
optimizers themselves.

A job (``TrialJob`` in ``search.trial``, ``CliJob`` here) is a picklable object with
``run(rank, world_size, device, resume, report) -> dict``: it trains, calls ``report(metrics, state)`` at
evaluations (``state`` a checkpoint dict or None) and returns the final metrics. In a Tune trial every report
reaches ``tune.report`` in the trial's own process, ``state`` saved as its checkpoint through Ray's checkpoint
API (``tune.Checkpoint``); on a worker group rank 0's reports are handed to that process. After a failure the
job resumes from the latest checkpoint (``tune.get_checkpoint``, or the study's checkpoints after a driver
crash), so no step is trained or recorded twice.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hyperswitch import _ray
from hyperswitch.results.fs import ObjectPath, StudyPath, glob
from hyperswitch.train.spec import TrainSpec

if TYPE_CHECKING:
    from hyperswitch.switching._spec import PolicySpec

STATE_FILE = "state.pt"
Report = Callable[[dict[str, Any], dict[str, Any] | None], None]

def save_state(state: Mapping[str, Any]) -> str:
    """Write a checkpoint dict to a new temporary folder (the caller hands it to Ray, then removes it)."""
    d = tempfile.mkdtemp(prefix="hyperswitch-ckpt-")
    tmp = os.path.join(d, STATE_FILE + ".tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, os.path.join(d, STATE_FILE))
    return d


def load_state(directory: str | Path | ObjectPath) -> dict[str, Any]:
    """A checkpoint dict from a folder (local, or on the study's object store: the file read whole)."""
    if isinstance(directory, ObjectPath):
        import io

        return torch.load(io.BytesIO((directory / STATE_FILE).read_bytes()), map_location="cpu", weights_only=True)
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def tune_report(metrics: dict[str, Any], state: Mapping[str, Any] | None) -> None:
    """Report to Tune from a trial's own process, with a checkpoint when ``state`` is given."""
    from ray import tune

    if state is None:
        tune.report(metrics)
        return
    d = save_state(state)
    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tune_resume_state() -> dict[str, Any] | None:
    """The latest checkpoint of this Tune trial (after a retry), or None."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return load_state(d)


def latest_checkpoint(roots: list[StudyPath]) -> dict[str, Any] | None:
    """The most advanced readable checkpoint under ``roots`` (``checkpoint_*/state.pt``), or None.

    Used when a study is resumed after its driver died: the trials that were running continue from their
    checkpoints of the earlier session. A checkpoint cut short by the crash does not load and is skipped.
    """
    best: tuple[int, dict[str, Any]] | None = None
    for root in roots:
        for f in glob(root, f"checkpoint_*/{STATE_FILE}"):
            try:
                state = load_state(f.parent)
            except Exception:  # a truncated file from a killed process
                continue
            if best is None or int(state["step"]) > best[0]:
                best = (int(state["step"]), state)
    return best[1] if best else None


def run_data_parallel(job: Any, *, workers: int, use_gpu: bool, cpus_per_worker: float, gpus_per_worker: float,
                      max_failures: int, in_tune: bool, resume: Mapping[str, Any] | None = None,
                      threads: int | None = None) -> dict[str, Any]:
    """Run ``job`` on ``workers`` data-parallel workers (``train.group``); return rank 0's final result.

    ``in_tune``: in a Tune trial, on the group this trial process keeps for the sweep's next trials; each report
    goes to Tune with its checkpoint (:func:`tune_report`), and a run that lost a worker continues from the
    trial's latest checkpoint (``tune.get_checkpoint``). Elsewhere (``hyperswitch train``): on a group of its own,
    shut down at the end; it continues from the latest checkpoint it was handed. Either way at most
    ``max_failures`` times."""
    from hyperswitch.train.group import GroupSpec, WorkerGroup, shared_group

    spec = GroupSpec(workers=workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                     gpus_per_worker=gpus_per_worker)
    n_threads = threads or max(1, math.floor(cpus_per_worker))
    if in_tune:
        return shared_group(spec).run(job, resume=resume, on_report=tune_report, threads=n_threads,
                                      max_failures=max_failures, resume_state=tune_resume_state)
    latest: list[Mapping[str, Any] | None] = [resume]

    def keep(metrics: dict[str, Any], state: Mapping[str, Any] | None) -> None:
        if state is not None:
            latest[0] = state

    group = WorkerGroup(spec)
    try:
        return group.run(job, resume=resume, on_report=keep, threads=n_threads, max_failures=max_failures,
                         resume_state=lambda: latest[0])
    finally:
        group.shutdown()


class CliJob:
    """``hyperswitch train``: one policy on one workload; returns status, summary and events."""

    def __init__(self, workload: Mapping[str, Any], policy_spec: PolicySpec | Mapping[str, Any],
                 train: TrainSpec | Mapping[str, Any], seed: int) -> None:
        from hyperswitch.switching import Policy

        self.workload, self.seed = dict(workload), seed
        self.policy = Policy.from_spec(policy_spec)  # validated once, here; its spec is frozen
        self.train = TrainSpec.coerce(train)  # frozen: shared, not copied

    def run(self, *, rank: int, world_size: int, device: torch.device, resume: Mapping[str, Any] | None,
            report: Report) -> dict[str, Any]:
        from hyperswitch.train.loop import train_run

        result = train_run(self.workload, self.policy, self.train, self.seed, device=device,
                           rank=rank, world_size=world_size, resume=resume,
                           on_eval=(lambda row, res, state: report({"step": row["step"]}, state))
                           if world_size > 1 else None)
        return {"status": result.status, "summary": result.summary, "events": result.events,
                "switch": result.switch, "steps": result.steps if rank == 0 else []}


def run_job(workload: Mapping[str, Any], policy_spec: PolicySpec | Mapping[str, Any],
            train: TrainSpec | Mapping[str, Any], seed: int, *, workers: int = 1, gpu: bool = False,
            address: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """``hyperswitch train``: one worker in this process, more on a worker group (``train.group``) on a local Ray
    unless ``address``.
    ``threads``: torch threads per worker (default: torch's own in this process, the CPU share on Ray).

    Returns ``{"status", "summary", "events", "switch", "steps"}`` (rank 0's records; ``switch``: the policy's
    switch report, ``Stepper.switch_report``, or None)."""
    job = CliJob(workload, policy_spec, train, seed)
    if workers == 1:
        if threads:
            torch.set_num_threads(threads)
        return job.run(rank=0, world_size=1, device=torch.device("cuda" if gpu else "cpu"), resume=None,
                       report=lambda metrics, state: None)
    _ray.connect(address)
    cpus = float(_ray.cluster_resources().get("CPU", 1))
    per_worker = 1.0 if cpus >= workers else math.floor(100 * cpus / workers) / 100  # fractions fit small machines
    return run_data_parallel(job, workers=workers, use_gpu=gpu, cpus_per_worker=per_worker,
                             gpus_per_worker=1 if gpu else 0, max_failures=2, in_tune=False, threads=threads)
