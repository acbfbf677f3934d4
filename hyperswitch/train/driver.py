"""Running a training job on one or more workers, with checkpoints.

One worker runs in the caller's process (the Tune trial's, or ``hyperswitch train``'s). More run as a Ray
Train ``TorchTrainer`` launched from the caller (the Ray Train V2 + Tune pattern): DDP over gloo on CPUs,
NCCL on GPUs, each worker holding its share of one global batch (``Batches``), K-FAC factors and
per-sample-gradient rows synchronised by the optimizers themselves.

A job (``TrialJob`` in ``search.trial``, ``CliJob`` here) is a picklable object with
``run(rank, world_size, device, resume, report) -> dict``: it trains, calls ``report(metrics, state)`` at
evaluations (``state`` a checkpoint dict or None) and returns the final metrics. ``report`` saves
``state`` through Ray's checkpoint API: ``tune.report(..., checkpoint=)`` in a Tune trial, and on rank 0
``ray.train.report(..., checkpoint=)`` on a Train worker. After a failure the job resumes from the latest
checkpoint (``tune.get_checkpoint`` / ``ray.train.get_checkpoint``), so no step is trained or recorded twice.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hyperswitch import _ray
from hyperswitch.results.fs import ObjectPath, StudyPath, glob, ray_storage
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


def _worker_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """The per-worker function of the TorchTrainer (the process group is already up)."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if cfg["use_gpu"] else torch.device("cpu")
    torch.set_num_threads(cfg["threads"])
    resume = None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = load_state(d)
    elif cfg.get("resume") is not None:
        resume = cfg["resume"]

    def report(metrics: dict[str, Any], state: Mapping[str, Any] | None) -> None:
        if state is None or rank != 0:
            ray.train.report(metrics)
            return
        d = save_state(state)
        try:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    return cfg["job"].run(rank=rank, world_size=world, device=device, resume=resume, report=report)


def run_data_parallel(job: Any, *, workers: int, use_gpu: bool, cpus_per_worker: float, gpus_per_worker: float,
                      storage: str | Path | ObjectPath, name: str, max_failures: int, in_tune: bool,
                      resume: Mapping[str, Any] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run ``job`` on ``workers`` Ray Train workers; return rank 0's final metrics.

    ``storage``/``name``: where Train keeps the run's checkpoints (an absolute path, shared by all nodes on a
    multi-node cluster, or a folder of the study's object store, written through its pyarrow file system). A run
    of the same name found there is continued from its latest checkpoint.
    """
    if TYPE_CHECKING:  # ray.train picks its classes as it is imported: Train V2's (Ray's default, what this runs
        # on), where mypy sees the V1 ones (whose trainer takes no return value, whose Result has no return_value)
        from ray.train.v2.api.callback import UserCallback
        from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.v2.torch.torch_trainer import TorchTrainer
    else:
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

    _ray.set_train_env_defaults()  # Ray Train's start-up and reporting costs cut (_ray.TRAIN_ENV)
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = gpus_per_worker or 1
    callbacks: list[UserCallback] = []
    if in_tune:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    cfg = {"job": job, "use_gpu": use_gpu, "threads": threads or max(1, math.floor(cpus_per_worker)), "resume": resume}
    where, filesystem = ray_storage(storage if isinstance(storage, ObjectPath) else Path(storage))
    trainer = TorchTrainer(
        _worker_main, train_loop_config=cfg,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=where, storage_filesystem=filesystem, callbacks=callbacks,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    # Train V2's fit() is annotated with ray.train.Result, which mypy resolves to V1's class (no return_value)
    return result.return_value  # type: ignore[attr-defined]


def wait_forwarded(timeout_s: float = 60.0) -> None:
    """In a Tune trial that ran Ray Train: wait until Tune has forwarded every report of the Train run.

    Tune's trial actor forwards Train's reports (``TuneReportCallback`` -> a one-slot inter-actor queue) from its
    main thread into the trial's one-slot result queue, and takes from that same queue what the trial function's
    own thread reports; when the function returns, Tune reports that it ended. If that report lands while the
    main thread forwards the Train run's last report, both wait for each other forever (seen on a resumed
    2-worker trial). So the function returns only once both queues have been empty for a few checks."""
    pending = _ray.train_reports_pending()
    if pending is None:  # not in a Tune trial, or no Train report forwarded
        return
    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < 3 and time.monotonic() < deadline:
        quiet = 0 if pending() else quiet + 1
        time.sleep(0.1)


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
            address: str | None = None, storage: str | Path | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """``hyperswitch train``: one worker in this process, more on Ray Train (a local Ray unless ``address``).
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
    with tempfile.TemporaryDirectory(prefix="hyperswitch-train-") as tmp:
        return run_data_parallel(job, workers=workers, use_gpu=gpu, cpus_per_worker=per_worker,
                                 gpus_per_worker=1 if gpu else 0, storage=storage or tmp,
                                 name=f"train-{os.getpid()}", max_failures=2, in_tune=False, threads=threads)
