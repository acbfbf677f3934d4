"""Running a sweep: a study folder, an embedded local Ray (or a cluster), Tune + Optuna, progress, resume."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperswitch import __version__
from hyperswitch.errors import ConfigError
from hyperswitch.results.names import check_study_name
from hyperswitch.results.reader import Study, open_study
from hyperswitch.results.schema import ERROR, RUNNING, STOPPED
from hyperswitch.results.store import StudyStore
from hyperswitch.search.faults import describe, is_system_failure
from hyperswitch.search.seeds import (
    OBJECTIVE,
    Carried,
    FixedSearcher,
    GridSearcher,
    OptunaProposer,
    SeedRepeater,
    search_lag,
)
from hyperswitch.search.space import SearchSpace

Printer = Callable[[str], None]


def _versions() -> dict[str, str]:
    import optuna
    import pyarrow
    import ray
    import torch

    return {"hyperswitch": __version__, "ray": ray.__version__, "optuna": optuna.__version__,
            "torch": torch.__version__, "pyarrow": pyarrow.__version__, "python": platform.python_version()}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _DropNotices(logging.Filter):
    """Ray notices that say nothing to a hyperswitch user (our own lines cover them)."""

    NOTICES = ("Token authentication is enabled for this Ray cluster",  # token auth stays on; we say nothing
               "`Study.stop` is supposed to be invoked",  # OptunaSearch when a grid is exhausted: expected
               # Ctrl-C: Tune's "Resume experiment with: Tuner.restore(...)"; a sweep resumes with --resume
               "Experiment has been interrupted, but the most recent state was saved",
               "Trials did not complete")  # Tune's list of the trials cut off: our end line says it
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
    """Our progress lines replace Tune's tables (the old output engine at verbosity 0 prints nothing)."""
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


def init_ray(address: str | None, *, verbose: bool = False, num_cpus: int | None = None,
             modules: list[str] | None = None) -> None:
    """Connect to ``address`` or start an embedded local Ray kept on loopback. ``modules``: folders/files of
    the user's own code (workloads by import path) that a cluster's workers must import too."""
    import ray

    quiet_tune(verbose)
    _DropNotices.install()
    if ray.is_initialized():
        return
    if address:
        # The package travels with the job so that the cluster's workers run this driver's hyperswitch.
        import hyperswitch

        package = str(Path(hyperswitch.__file__).parent)
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=verbose, logging_level="WARNING",
                     runtime_env={"py_modules": [package, *(modules or [])],
                                  "env_vars": {"RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT", "1")}})
        except Exception as exc:  # noqa: BLE001  (connection, authentication: a user error, one line)
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError("--address", f"cannot connect to the Ray cluster: {text}", address) from None
        return
    if os.environ.get("RAY_ADDRESS"):
        # A driver started by `ray job submit` (or pointed at a cluster by the environment): join that cluster;
        # the job's own runtime_env (--working-dir) carries the code to its workers.
        try:
            ray.init(log_to_driver=verbose, logging_level="WARNING")
        except Exception as exc:  # noqa: BLE001
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError("RAY_ADDRESS", f"cannot connect to the Ray cluster: {text}",
                              os.environ["RAY_ADDRESS"]) from None
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every port on 127.0.0.1
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=verbose, logging_level="WARNING",
             configure_logging=True, _node_ip_address="127.0.0.1")


def joins_cluster(address: str | None) -> bool:
    """Whether ``init_ray(address)`` joins a running cluster (``--address``, ``RAY_ADDRESS`` as ``ray job submit``
    sets it, or a Ray this process already started) rather than starting an embedded one."""
    import ray

    return bool(address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())


def cluster_line() -> str:
    """Which cluster this driver joined: its address, live nodes and CPUs."""
    import ray

    try:
        where = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001
        where = os.environ.get("RAY_ADDRESS", "?")
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cpus = float(ray.cluster_resources().get("CPU", 0))
    return f"joined the Ray cluster at {where}: {nodes} node{'s' if nodes != 1 else ''}, {cpus:g} CPUs"


class Progress:
    """One line per finished trial: done/total, the trial, best so far, elapsed."""

    def __init__(self, total: int, done: int, metric: str, mode: str, out: Printer) -> None:
        self.total, self.done, self.metric, self.mode, self.out = total, done, metric, mode, out
        self.best: tuple[float, str] | None = None
        self.t0 = time.monotonic()

    def offer(self, value: float | None, trial_id: str) -> None:
        if value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, trial_id)

    def finished(self, trial_id: str, status: str, value: float | None) -> None:
        self.done += 1
        self.offer(value, trial_id)
        elapsed = time.monotonic() - self.t0
        val = f"{self.metric}={value:.4f}" if value is not None else f"{self.metric}=n/a"
        best = f"best {self.best[0]:.4f} ({self.best[1]})" if self.best else "best n/a"
        self.out(f"[{self.done:>4}/{self.total}] {trial_id:<12} {status:<9} {val:<22} {best:<28} "
                 f"elapsed {int(elapsed // 60)}:{int(elapsed % 60):02d}")

    def cut_off(self, trial_id: str, why: str) -> None:
        """A trial Ray took away after its restarts: not finished, not counted; --resume continues it."""
        self.out(f"[{self.done:>4}/{self.total}] {trial_id:<12} cut off   by Ray ({why}); --resume continues it "
                 "from its checkpoint")


def _study_callback(store: StudyStore, space: SearchSpace, progress: Progress) -> Any:
    from ray.tune import Callback

    from hyperswitch.search.trial import objective, trial_row

    class StudyCallback(Callback):
        """Driver side: settle each finished trial's row, compact parts now and then, print progress."""

        def __init__(self) -> None:
            self.last_compact = time.monotonic()
            self.lost: list[tuple[str, str]] = []  # (trial id, why): cut off by the system, left unfinished

        def _settle(self, trial: Any, error: str | None) -> None:
            cfg = trial.config
            tid = cfg.get("trial_id")
            if tid is None:
                return
            row = store.find_trial(tid)  # the part, or the table if a compaction already folded it in
            if row is None:  # died before its first evaluation
                row = trial_row(space, cfg, None, ERROR, error=error or "trial ended without results")
                store.write_trial_parts(row, [], [])
            elif row["status"] == RUNNING:  # stopped by the scheduler, or crashed mid-run
                row["status"] = ERROR if error else STOPPED
                if error:
                    row["error"] = error
                store.write_trial_parts(row, None, None)
            progress.finished(tid, row["status"], objective(row, space.metric))
            _drop_checkpoints(store.root, tid)  # a finished trial never resumes
            if time.monotonic() - self.last_compact > 10:
                store.compact()
                self.last_compact = time.monotonic()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._settle(trial, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            exc = _trial_exception(trial)
            tid = trial.config.get("trial_id")
            if tid is not None and (exc is None or is_system_failure(exc)):
                # Ray took it away (its process, worker or node died) more often than max_failures allows: it is
                # unfinished, not failed. Its row stays `running` and its checkpoints stay: --resume continues it.
                self.lost.append((str(tid), describe(exc) if exc is not None else "the trial's actor failed"))
                progress.cut_off(str(tid), self.lost[-1][1])
                return
            msg = "trial failed"
            err_file = getattr(trial, "error_file", None) or ""
            try:
                if err_file and Path(err_file).exists():
                    lines = [ln for ln in Path(err_file).read_text().splitlines() if ln.strip()]
                    msg = lines[-1][:500] if lines else msg
            except OSError:
                pass
            self._settle(trial, msg)

    return StudyCallback()


def _trial_exception(trial: Any) -> BaseException | None:
    """The exception a failed Tune trial ended with (Tune pickles Ray's errors next to the trial), or None."""
    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).exists():
        return None
    try:
        import ray.cloudpickle as cloudpickle  # what Tune pickled it with

        with open(path, "rb") as f:
            exc = cloudpickle.load(f)
    except Exception:  # noqa: BLE001  (an unreadable error is an unknown one)
        return None
    return exc if isinstance(exc, BaseException) else None


def _drop_checkpoints(study_dir: Path, trial_id: str) -> None:
    import shutil

    from hyperswitch.search.trial import checkpoint_roots

    for root in checkpoint_roots(study_dir, trial_id):
        for d in root.glob("checkpoint_*"):
            shutil.rmtree(d, ignore_errors=True)


def _carried(study: Study, space: SearchSpace, running: Any = None,
             again: Any = ()) -> tuple[list[Carried], int, int]:
    """Configurations found in the study: (those with seeds missing, how many configurations exist,
    the next free configuration index). ``running``: rows of trials that were running when the driver died;
    their configurations are carried too, so that those trials run again under the same ids and continue
    from their checkpoints. ``again``: ids of finished trials to run again (``--retry-errors``)."""
    import pandas as pd

    trials = study.finished()
    if running is not None and len(running):
        trials = pd.concat([trials, running], ignore_index=True) if len(trials) else running
    carried: list[Carried] = []
    if not len(trials):
        return carried, 0, 0
    n_configs, next_index = 0, 0
    for cid, group in trials.groupby("config_id", sort=True):
        n_configs += 1
        next_index = max(next_index, int(str(cid)[1:]) + 1)
        params = {n: _py(group.iloc[0][n]) for n in space.sampled_names}
        done_rows = group[(group["status"] != RUNNING) & ~group["trial_id"].isin(list(again))]
        done = {int(s) for s in done_rows["seed"]}
        values = {int(s): float(v) for s, v in zip(done_rows["seed"], done_rows[space.metric], strict=True)
                  if v is not None and math.isfinite(float(v))} if space.metric in done_rows else {}
        carried.append(Carried(str(cid), params, [s for s in space.seeds if s not in done], values))
    return carried, n_configs, next_index


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def build_searcher(space: SearchSpace, carried: list[Carried], lag: int) -> SeedRepeater:
    """The sweep's searcher: the configurations still to propose (the lowest indices ``carried`` does not hold)
    and the seeds ``carried`` still misses. Each proposal is a function of ``search.seed``, its index and the
    results before it (``seeds`` module), so a resumed study proposes what an uninterrupted one does."""
    if not space.sampled_names:
        proposer: Any = FixedSearcher(space.mode)
    elif space.algorithm == "grid":  # the same seeded order in every session; points already run are skipped
        proposer = GridSearcher(space.grid(), space.mode, space.search_seed, space.grid_limit)
        for c in carried:
            proposer.skip(c.params)
    else:
        proposer = OptunaProposer(space.optuna_space(), space.algorithm, space.search_seed, space.mode, lag)
    n_new = max(0, space.n_configurations() - len(carried))
    return SeedRepeater(proposer, space.seeds, space.mode, n_new=n_new, carried=carried)


def _holding_study_lock(run: Callable[..., Study]) -> Callable[..., Study]:
    """``run_sweep`` runs holding its study's lock (:class:`hyperswitch.results.lock.StudyLock`): taken before
    anything is written to the study (a new study's folder is made for it), given back when the sweep ends, on
    Ctrl-C and on errors too. A second driver on the study is refused with one line naming the holder; a holder
    that died is taken over with a note. A folder made here is removed again if no study.json was written."""
    import contextlib
    import functools

    from hyperswitch.results.lock import StudyLock

    @functools.wraps(run)
    def locked(space: SearchSpace, *, storage: str | Path = "runs", name: str | None = None, resume: bool = False,
               **kw: Any) -> Study:
        study_name = check_study_name(name, "--name") if name is not None else space.name  # before any path
        root = Path(storage) / study_name
        if resume != (root / "study.json").exists():  # nothing to resume, or a new study's name taken: run_sweep
            return run(space, storage=storage, name=name, resume=resume, **kw)  # says so, touching nothing
        made = []
        p = root
        while not p.exists():
            made.append(p)
            p = p.parent
        root.mkdir(parents=True, exist_ok=True)
        try:
            with StudyLock(root) as lock:
                for note in lock.notes:
                    kw.get("out", print)(f"note: {note}")
                return run(space, storage=storage, name=name, resume=resume, **kw)
        finally:
            if made and not (root / "study.json").exists():
                for d in made:  # deepest first; a folder with anything in it stays
                    with contextlib.suppress(OSError):
                        d.rmdir()

    return locked


def prepare_study(space: SearchSpace, storage: str | Path, name: str | None, resume: bool) -> StudyStore:
    """Create (or, with resume, reopen) the study folder. Errors leave nothing behind."""
    study_name = check_study_name(name, "--name") if name is not None else space.name  # no path outside storage
    store = StudyStore(Path(storage) / study_name)
    if resume:
        if not store.meta_path.exists():
            raise ConfigError("--resume", "there is no study to resume at this path", str(store.root))
        meta = store.read_meta()
        if meta.get("space_text") != space.text:
            raise ConfigError("--resume", f"the search space differs from the one study {study_name!r} was "
                              f"started with ({meta.get('space_file')}); use --name for a new study", space.source)
        store.check_readable()  # a truncated table: one line naming it, before anything is changed
        return store
    if store.meta_path.exists():
        raise ConfigError("--name", "a study with this name already exists; use --resume to continue it or "
                          "--name for a new one", study_name)
    store.root.mkdir(parents=True, exist_ok=True)
    store.write_meta({
        "name": study_name, "space_file": space.source, "space_text": space.text, "summary": space.summary(),
        "metric": space.metric, "mode": space.mode, "parameter_names": space.parameter_names,
        "sampled_names": space.sampled_names, "versions": _versions(), "created": _now(), "updated": _now(),
        "status": "created", "sessions": 0, "n_trials_total": space.n_configurations() * len(space.seeds),
        "target_accuracy": space.train.get("target_accuracy"),
    })
    return store


def resume_command(space: SearchSpace, storage: str | Path, name: str | None, samples: int | None,
                   seeds: int | None) -> str:
    """The command line that continues this sweep."""
    parts = ["hyperswitch sweep", str(space.source), "--resume"]
    if Path(storage) != Path("runs"):
        parts += ["--storage", str(storage)]
    parts += [f"--{k} {v}" for k, v in (("name", name), ("samples", samples), ("seeds", seeds)) if v is not None]
    return " ".join(parts)


def _forget_run(study_dir: Path, trial_id: str) -> None:
    """A failed trial that runs again starts from scratch: no checkpoint or Ray Train run of it is left."""
    import shutil

    for d in [*study_dir.glob(f"tune/session-*/{trial_id}"), study_dir / "train" / trial_id]:
        shutil.rmtree(d, ignore_errors=True)


@_holding_study_lock
def run_sweep(space: SearchSpace, *, storage: str | Path = "runs", name: str | None = None, resume: bool = False,
              address: str | None = None, verbose: bool = False, out: Printer = print,
              samples: int | None = None, seeds: int | None = None, retry_errors: bool = False) -> Study:
    """Run (or resume) the sweep of ``space``; return the study as read back from its Parquet files.
    ``retry_errors`` (with ``resume``): run the trials that failed (status ``error``) again, from scratch."""
    from hyperswitch.search.supervise import ray_processes, tell

    if retry_errors and not resume:
        raise ConfigError("--retry-errors", "goes with --resume (it runs the failed trials of a study again)", True)
    space = space.with_overrides(samples=samples, seeds=seeds)
    store = prepare_study(space, storage, name, resume)
    again_cmd = resume_command(space, storage, name, samples, seeds)
    tell(study=str(store.root), resume=again_cmd)
    everything = open_study(store.root, include_running=True).trials
    running = everything[everything["status"] == RUNNING] if len(everything) else None
    discarded = store.discard_unfinished_parts()  # their checkpoints hold their steps; they run again from there
    store.compact()
    study = open_study(store.root)
    retried: list[str] = []
    if retry_errors and len(study.trials):
        retried = sorted(study.trials.loc[study.trials["status"] == ERROR, "trial_id"].astype(str))
        for tid in retried:
            _forget_run(store.root, tid)
    carried, n_existing, _ = _carried(study, space, running, again=retried)
    n_configs = space.n_configurations()
    missing = sum(len(c.missing_seeds) for c in carried)
    remaining = max(0, n_configs - n_existing) * len(space.seeds) + missing
    total = n_configs * len(space.seeds)
    done = len(study.finished()) - len(retried)
    meta = store.read_meta()
    sessions = int(meta.get("sessions", 0)) + 1
    # configurations in flight unseen by the searcher: fixed by the study's first session, so that a resume
    # (even with --seeds) proposes what the uninterrupted study would have
    lag = int(meta.get("search_lag") or search_lag(space.max_concurrent, len(space.seeds)))
    store.update_meta(status="running", updated=_now(), sessions=sessions, n_trials_total=total, search_lag=lag)
    if resume:
        out(f"resuming {store.name}: {done} trials finished and kept, {remaining} to run"
            + (f" ({len(discarded)} unfinished: continued from their checkpoints where they have one)"
               if discarded else "")
            + (f" ({len(retried)} that failed: run again from the start)" if retried else ""))
    out(f"study {store.name}: {n_configs} configurations x {len(space.seeds)} seeds = {total} trials "
        f"({space.algorithm}, {space.max_concurrent} at a time), metric {space.metric} ({space.mode})")
    if remaining == 0:
        store.update_meta(status="completed", updated=_now())
        out("nothing left to run")
        return _finish(store, space, out)

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from hyperswitch.search.trial import run_trial

    repeater = build_searcher(space, carried, lag)
    scheduler = None
    if space.scheduler["type"] == "asha":
        s = space.scheduler
        scheduler = ASHAScheduler(time_attr="step", metric=OBJECTIVE, mode=space.mode, max_t=s["max_t"],
                                  grace_period=s["grace_period"], reduction_factor=s["reduction_factor"])
    progress = Progress(total, done, space.metric, space.mode, out)
    for _, row in study.finished().iterrows():
        if space.metric in row and row[space.metric] is not None and row["trial_id"] not in retried:
            progress.offer(float(row[space.metric]), str(row["trial_id"]))

    joining = joins_cluster(address)
    if not joining:
        out("starting an embedded local Ray ...")
    elif address:
        out(f"starting a connection to {address} ...")
    init_ray(address, verbose=verbose, modules=_user_modules(space) if address else None)
    if joining:
        out(cluster_line())
    tell(ray=ray_processes())  # the supervising `hyperswitch sweep` watches them
    concurrency = _concurrency(space, out)
    searcher = ConcurrencyLimiter(repeater, max_concurrent=concurrency)
    out(f"running {remaining} trials; one line per finished trial")
    trainable = tune.with_parameters(run_trial, space_text=space.text, space_source=space.source,
                                     study_dir=str(store.root), samples=samples, seeds=seeds)
    r = space.resources
    single = r["workers"] == 1
    # One worker: the trial's own process trains, with the worker's resources. More: Ray Train workers hold
    # the resources and the trial function only waits on them (a token share of a CPU; 0 is refused).
    res = {"cpu": r["cpus_per_worker"], "gpu": r["gpus_per_worker"]} if single else {"cpu": 0.01}
    tuner = tune.Tuner(
        tune.with_resources(trainable, res),
        # reusing trial processes saves ~5 s a trial; it hangs when a trial running Ray Train is stopped
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    reuse_actors=single, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=f"session-{sessions}", storage_path=str(store.root / "tune"), verbose=0,
                                  callbacks=[callback := _study_callback(store, space, progress)],
                                  failure_config=tune.FailureConfig(max_failures=r["max_failures"],
                                                                    fail_fast=False)),
    )
    interrupted, ray_failed = False, None
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # the driver lost its cluster: the trials it ran are unfinished, not failed
        if not (is_system_failure(exc) or isinstance(exc, ConnectionError)):
            raise
        ray_failed = describe(exc)
    store.compact()
    finished = len(open_study(store.root).finished())
    complete = finished >= total
    by_ray = bool(ray_failed or callback.lost) and not complete
    store.update_meta(status="completed" if complete else "interrupted", updated=_now(),
                      interrupted_by=None if complete else ("ray" if by_ray else "user"))
    if not complete:
        interrupted = True
    if interrupted:
        why = ""
        if ray_failed:
            why = f"Ray failed under the sweep ({ray_failed}); "
        elif by_ray:
            tid, what = callback.lost[0]
            more = f" and {len(callback.lost) - 1} more" if len(callback.lost) > 1 else ""
            why = f"{len(callback.lost)} trial(s) cut off by Ray ({tid}: {what}{more}); "
        out(f"interrupted: {why}{finished}/{total} trials finished and saved; continue with `{again_cmd}`")
    return _finish(store, space, out)


def _user_modules(space: SearchSpace) -> list[str]:
    """The user's own workload code (``name: package.module:function``), shipped to a cluster's workers."""
    from hyperswitch.workloads.user import module_root

    names = {space.workload.get("name")}
    for p in space.parameters.values():  # a workload name may also be a parameter's value or choice
        names.update(c for c in (*p.choices, p.value) if isinstance(c, str))
    return sorted({module_root(n) for n in names if isinstance(n, str) and ":" in n and not n.startswith("$")})


def _concurrency(space: SearchSpace, out: Printer) -> int:
    """``max_concurrent``, lowered when multi-worker trials would not fit the cluster's CPUs together (Ray
    Train then waits for a placement group that never comes)."""
    import ray

    r = space.resources
    if r["workers"] == 1:
        return space.max_concurrent
    cpus = float(ray.cluster_resources().get("CPU", 0))
    need = r["workers"] * r["cpus_per_worker"]
    if need > cpus + 1e-9:
        raise ConfigError("resources", f"a trial needs workers x cpus_per_worker = {need:g} CPUs but the Ray "
                          f"cluster has {cpus:g}; lower cpus_per_worker (fractions work) or workers",
                          dict(r), file=space.source)
    fit = max(1, int((cpus + 1e-9) // need))
    if fit < space.max_concurrent:
        out(f"note: {space.max_concurrent} concurrent trials of {need:g} CPUs do not fit in {cpus:g} CPUs; "
            f"running {fit} at a time")
    return min(space.max_concurrent, fit)


def _trial_dirname(trial: Any) -> str:
    return str(trial.config.get("trial_id", trial.trial_id))


def _finish(store: StudyStore, space: SearchSpace, out: Printer) -> Study:
    study = open_study(store.root)
    out(f"results: {store.root}  (trials.parquet, steps.parquet, events.parquet, study.json)")
    best = study.best_trial()
    if best is not None:
        params = ", ".join(f"{n}={_fmt(best.get(n))}" for n in space.parameter_names)
        out(f"best trial: {best['trial_id']} {space.metric}={best[space.metric]:.4f}  ({params})")
    t = study.finished()
    if len(t) and space.metric in t and len(space.seeds) > 1:
        from hyperswitch.errors import ConfigError
        from hyperswitch.export.select import select_configurations

        try:  # the rule `hyperswitch export` applies: best mean over complete seeds, no failed seed
            choice = select_configurations(t, space.metric, space.mode).choices[0]
        except ConfigError:
            choice = None
        if choice is not None:
            out(f"best configuration (mean over seeds): {choice.config_id} {space.metric}={choice.mean:.4f} "
                f"± {choice.std or 0.0:.4f} (n={choice.n}); export it: hyperswitch export {store.name}")
    counts = t["status"].value_counts().to_dict() if len(t) else {}
    if counts:
        out("trial status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return study


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
