"""A data-parallel worker group kept alive across the trials of a sweep (Ray actors and torch.distributed).

Why not a Ray Train ``TorchTrainer`` per trial: each ``fit()`` starts a controller actor, a placement group, N
new worker processes that import torch and hyperswitch, a gloo (or NCCL) process group, and shuts all of it down
again: ~10-25 s a trial on a small machine, for trials that often train for a second. Ray Train has no way to
keep its workers across runs. So a multi-worker trial uses this group instead, built on Ray's public core API:

- ``workers`` actors (:class:`DataParallelWorker`), one per rank, each in its own bundle of the Tune trial's
  placement group (``runner`` asks Tune for ``[{CPU: 0.01}] + [{CPU: c, GPU: g}] * workers``), so Tune accounts
  for the workers' CPUs and GPUs as it does for a single-worker trial's;
- a process group set up once per group (gloo on CPUs; NCCL on GPUs, one GPU per worker, ``gpus_per_worker``),
  torch and hyperswitch imported once per worker process;
- the group is cached in the Tune trial's process (:func:`shared_group`), and Tune reuses that process for the
  sweep's next trial (``reuse_actors``, with its placement group), so successive trials receive their
  configurations on the same warm workers. The actors are owned by that process: when Tune ends it (a trial it
  could not reuse, the end of the sweep, a crash), Ray ends them with it.

A run: every rank calls ``job.run(...)`` (``train.driver``'s job protocol). At each evaluation rank 0 hands its
report (metrics, checkpoint dict) to the caller and waits for an answer; the caller reports it (``tune.report``
with the checkpoint: Ray's checkpoint API, in the trial's own process) and answers go or stop; rank 0
broadcasts the answer to the other ranks, so that all of them stop at the same step when Tune's scheduler
(ASHA) stops the trial. A worker that dies (its process, its node) is seen by the caller at once (``ray.wait``
on every rank's run): the group is torn down, a new one built in the same bundles, and the run continues from
its latest checkpoint (``resume_state``), at most ``max_failures`` times; then the failure goes to Tune, which
restarts the trial from its checkpoint (``resources.max_failures``) or leaves it for ``--resume``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

Report = Callable[[dict[str, Any], dict[str, Any] | None], None]
END = "end"
# How long a stopped run may take to stop on every rank before its group is torn down instead.
STOP_GRACE_S = 60.0


class TrialStopped(Exception):
    """Raised on every rank at an evaluation when the caller answered stop (Tune's scheduler stopped it)."""


class WorkerLost(RuntimeError):
    """A worker of the group died (its process or its node): the run continues on a new group."""


class DataParallelWorker:
    """One rank of a group: a Ray actor (``max_concurrency=2``: ``run`` trains in one thread while the caller
    fetches reports and answers in another)."""

    def __init__(self, rank: int, world_size: int, use_gpu: bool) -> None:
        self.rank, self.world_size, self.use_gpu = rank, world_size, use_gpu
        self.reports: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.answers: queue.Queue[bool] = queue.Queue()
        self.device = torch.device("cpu")

    def pid(self) -> int:
        return os.getpid()

    def address(self) -> tuple[str, int]:
        """Rank 0: this node's address and a free port for the process group's rendezvous."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((host, 0))
            return host, int(s.getsockname()[1])

    def setup(self, host: str, port: int) -> int:
        """Join the group's process group (once per group); returns this worker's pid."""
        import torch.distributed as dist

        if self.use_gpu:
            self.device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
            torch.cuda.set_device(self.device)
        dist.init_process_group("nccl" if self.use_gpu else "gloo", init_method=f"tcp://{host}:{port}",
                                rank=self.rank, world_size=self.world_size)
        return os.getpid()

    def run(self, job: Any, resume: Mapping[str, Any] | None, threads: int) -> dict[str, Any]:
        """Run ``job`` as this rank; ``{"stopped": True}`` if the caller stopped it. Rank 0 always ends its
        report stream with an end marker, so that the caller never waits for a report that will not come."""
        import torch.distributed as dist

        if self.use_gpu:
            torch.cuda.set_device(self.device)  # the current device is per thread
        torch.set_num_threads(threads)
        flag = torch.zeros(1, dtype=torch.int32, device=self.device)

        def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
            go = True
            if self.rank == 0:
                self.reports.put(("report", metrics, state))
                go = self.answers.get()
            flag.fill_(1 if go else 0)
            dist.broadcast(flag, src=0)  # every rank goes on or stops at this same step
            if not int(flag.item()):
                raise TrialStopped

        try:
            return dict(job.run(rank=self.rank, world_size=self.world_size, device=self.device,
                                resume=resume, report=report))
        except TrialStopped:
            return {"stopped": True}
        finally:
            if self.rank == 0:
                self.reports.put((END,))

    def next_report(self, go: bool | None = None) -> tuple[Any, ...]:
        """Rank 0: answer the last report (``go``, unless None), then wait for the next report of the running job,
        or its end marker. One call does both, so that the answer never waits behind a blocked call for a thread
        (``run`` holds the other)."""
        if go is not None:
            self.answers.put(go)
        return self.reports.get()



@dataclass(frozen=True)
class GroupSpec:
    workers: int
    use_gpu: bool
    cpus_per_worker: float
    gpus_per_worker: float


class WorkerGroup:
    """``spec.workers`` :class:`DataParallelWorker` actors with their process group, started on first use."""

    def __init__(self, spec: GroupSpec) -> None:
        self.spec = spec
        self.actors: list[Any] = []
        self.pids: list[int] = []
        self.started = 0  # how many times a group was built (1 + replacements)

    def start(self) -> None:
        import ray
        from ray.util.placement_group import get_current_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cls: Any = ray.remote(DataParallelWorker)
        pg = get_current_placement_group()  # a Tune trial's: bundle 0 is the trial's, 1..N the workers'
        s = self.spec
        actors: list[Any] = []
        for rank in range(s.workers):
            opts: dict[str, Any] = {"max_concurrency": 2, "num_cpus": s.cpus_per_worker,
                                    "num_gpus": (s.gpus_per_worker or 1) if s.use_gpu else 0}
            if pg is not None and pg.bundle_count > s.workers:
                opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    placement_group=pg, placement_group_bundle_index=rank + 1)
            actors.append(cls.options(**opts).remote(rank, s.workers, s.use_gpu))
        self.actors = actors
        self.started += 1
        try:
            host, port = ray.get(actors[0].address.remote())
            self.pids = ray.get([a.setup.remote(host, port) for a in actors])
        except Exception as exc:  # a worker (or its node) died while the group started: not a usable group
            self.shutdown()
            raise WorkerLost(f"the group did not start: {type(exc).__name__}") from exc

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        self.actors, self.pids = [], []

    def run(self, job: Any, *, resume: Mapping[str, Any] | None, on_report: Report, threads: int,
            max_failures: int, resume_state: Callable[[], Mapping[str, Any] | None]) -> dict[str, Any]:
        """Run ``job`` on the group; return rank 0's final result. ``on_report(metrics, state)`` is called in this
        thread at each evaluation (whatever it raises stops the run on every rank, then is raised here). After a
        lost worker the run continues on a new group from ``resume_state()`` (the latest checkpoint), at most
        ``max_failures`` times; then :class:`WorkerLost` is raised."""
        failures = 0
        while True:
            try:
                if not self.actors:
                    self.start()
                return self._run_once(job, resume, on_report, threads)
            except WorkerLost:
                self.shutdown()
                failures += 1
                if failures > max_failures:
                    raise
                resume = resume_state()

    def _run_once(self, job: Any, resume: Mapping[str, Any] | None, on_report: Report,
                  threads: int) -> dict[str, Any]:
        import ray

        resume_ref = ray.put(dict(resume) if resume is not None else None)
        runs = [a.run.remote(job, resume_ref, threads) for a in self.actors]
        lead = self.actors[0]
        nxt = lead.next_report.remote()
        watch = list(runs)  # the ranks whose run has not ended
        while True:
            ready, _ = ray.wait([nxt, *watch], num_returns=1)
            if nxt not in ready:  # a rank's run ended before rank 0's end marker: it failed, or finished first
                for ref in ready:
                    try:
                        ray.get(ref)
                    except Exception:
                        self._fail(runs)
                    watch.remove(ref)
                continue
            try:
                msg = ray.get(nxt)
            except Exception:  # rank 0 is gone
                self._fail(runs)
            if msg[0] == END:
                break
            try:
                on_report(msg[1], msg[2])
            except BaseException:  # Tune stopped the trial (SystemExit from tune.report), or the caller failed
                self._settle_stopped(runs, lead.next_report.remote(False))  # stop; its answer: the end marker
                raise
            nxt = lead.next_report.remote(True)
        try:
            result = ray.get(runs[0])
            ray.get(runs[1:])  # the others end with rank 0 (no collective follows its last)
        except Exception:
            self._fail(runs)
        return dict(result)

    def _fail(self, runs: list[Any]) -> NoReturn:
        """A rank's run failed: tear the group down (a peer may wait in a collective for the failed rank) and
        raise :class:`WorkerLost` if any rank died (a dead peer makes the survivors' collectives fail too), else
        the job's own error."""
        import ray
        from ray.exceptions import RayTaskError

        ray.wait(runs, num_returns=len(runs), timeout=10)  # give Ray a moment to see every rank's end
        errors: list[Exception] = []
        for ref in runs:
            try:
                ray.get(ref, timeout=0)
            except Exception as exc:
                errors.append(exc)
        self.shutdown()
        died = [e for e in errors if not isinstance(e, RayTaskError) and not isinstance(e, TimeoutError)]
        if died or not errors:
            raise WorkerLost("; ".join(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                                       for e in died) or "a worker ended without a result")
        task_errors = [e for e in errors if isinstance(e, RayTaskError)]
        err = task_errors[0] if task_errors else errors[0]
        cause = getattr(err, "cause", None)
        raise cause if isinstance(cause, Exception) else err

    def _settle_stopped(self, runs: list[Any], end: Any) -> None:
        """After a stop: every rank returns at the same evaluation; a group that does not is torn down."""
        import ray

        deadline = time.monotonic() + STOP_GRACE_S
        _, pending = ray.wait(runs, num_returns=len(runs), timeout=max(0.0, deadline - time.monotonic()))
        ok = not pending
        for ref in runs:
            if ref not in pending:
                try:
                    ray.get(ref)
                except Exception:
                    ok = False
        if not ok:
            self.shutdown()
        else:  # rank 0's end marker taken, so that the next run's first report is its own
            try:
                ok = ray.get(end, timeout=STOP_GRACE_S)[0] == END
            except Exception:
                ok = False
            if not ok:
                self.shutdown()


_SHARED: WorkerGroup | None = None


def shared_group(spec: GroupSpec) -> WorkerGroup:
    """This process's group for ``spec`` (kept across the trials this process runs); a group of another spec is
    shut down first."""
    global _SHARED
    if _SHARED is not None and _SHARED.spec != spec:
        _SHARED.shutdown()
        _SHARED = None
    if _SHARED is None:
        _SHARED = WorkerGroup(spec)
    return _SHARED
