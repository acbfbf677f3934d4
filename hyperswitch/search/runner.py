"""Running a sweep: a study folder, an embedded local Ray (or a cluster), Tune + Optuna, progress, resume."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperswitch import __version__, _ray
from hyperswitch.config.yamlio import YAMLSyntaxError
from hyperswitch.config.yamlio import load as load_yaml
from hyperswitch.errors import ConfigError
from hyperswitch.results.fs import StudyPath, open_storage, ray_storage, rmtree
from hyperswitch.results.names import check_study_name
from hyperswitch.results.reader import Study, open_study
from hyperswitch.results.schema import ERROR, RUNNING, STOPPED
from hyperswitch.results.select import seed_mean
from hyperswitch.results.store import StudyStore
from hyperswitch.search.faults import describe, is_system_failure
from hyperswitch.search.seeds import (
    LEARNING,
    OBJECTIVE,
    Carried,
    FixedSearcher,
    GridSearcher,
    OptunaProposer,
    QMCProposer,
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


def _code() -> dict[str, Any]:
    """What code ran: the package version and, where the package is a git checkout, its commit and whether the
    working tree had uncommitted changes (``git`` not installed, or not a checkout: the version only)."""
    import subprocess

    facts: dict[str, Any] = {"version": __version__}
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0 and (root / ".git").exists():
            facts["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            facts["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def _machine() -> dict[str, Any]:
    """The driver's machine and torch's view of its accelerators."""
    import torch

    cuda = torch.cuda.is_available()
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Progress:
    """One line per finished trial: done/total, the trial, best so far, elapsed. With several objectives
    (``objectives``: (metric, mode) pairs) the trial's value of each, and instead of a best the Pareto front of
    the configurations so far by their seeds' means: its size and its members."""

    def __init__(self, total: int, done: int, metric: str, mode: str, out: Printer,
                 objectives: Sequence[tuple[str, str]] = ()) -> None:
        self.total, self.done, self.metric, self.mode, self.out = total, done, metric, mode, out
        self.best: tuple[float, str] | None = None
        self.t0 = time.monotonic()
        self.objectives = list(objectives) if len(objectives) > 1 else []
        self.rows: dict[str, dict[str, dict[int, float]]] = {}  # config id -> metric -> seed -> finite value

    def offer_row(self, row: Mapping[str, Any]) -> None:
        """A finished trial's row (several objectives: kept for the front)."""
        if not self.objectives or row.get("config_id") is None:
            return
        values = self.rows.setdefault(str(row["config_id"]), {})
        for m, _ in self.objectives:
            v = row.get(m)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v)):
                values.setdefault(m, {})[int(row.get("seed") or 0)] = float(v)

    def front(self) -> list[tuple[str, list[float]]]:
        """(config id, seeds' means) of the configurations on the Pareto front so far, by config id."""
        from hyperswitch.results.objectives import pareto_front

        names, points = [], []
        for cid in sorted(self.rows):
            means = [seed_mean(v[s] for s in sorted(v)) for v in (self.rows[cid].get(m, {}) for m, _ in
                                                                   self.objectives)]
            if all(x is not None for x in means):
                names.append(cid)
                points.append([float(x) for x in means if x is not None])
        if not points:
            return []
        return [(names[i], points[i]) for i in pareto_front(points, [d for _, d in self.objectives])]

    def front_text(self, limit: int = 4) -> str:
        front = self.front()
        if not front:
            return "front n/a"
        shown = " ".join(c for c, _ in front[:limit]) + (" ..." if len(front) > limit else "")
        return f"front {len(front)}: {shown}"

    def offer(self, value: float | None, trial_id: str) -> None:
        if value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, trial_id)

    def finished(self, trial_id: str, status: str, value: float | None,
                 row: Mapping[str, Any] | None = None) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.t0
        if self.objectives:
            self.offer_row(row or {})
            vals = " ".join(f"{m}={_value_text((row or {}).get(m))}" for m, _ in self.objectives)
            self.out(f"[{self.done:>4}/{self.total}] {trial_id:<12} {status:<9} {vals:<40} {self.front_text():<32} "
                     f"elapsed {int(elapsed // 60)}:{int(elapsed % 60):02d}")
            return
        self.offer(value, trial_id)
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
            progress.finished(tid, row["status"], objective(row, space.metric), row)
            _drop_checkpoints(store.root, tid)  # a finished trial never resumes
            if time.monotonic() - self.last_compact > 10:
                store.compact()
                self.last_compact = time.monotonic()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._settle(trial, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            exc = _ray.trial_exception(trial)
            tid = trial.config.get("trial_id")
            if tid is not None and (exc is None or is_system_failure(exc)):
                # Ray took it away (its process, worker or node died) more often than max_failures allows: it is
                # unfinished, not failed. Its row stays `running` and its checkpoints stay: --resume continues it.
                self.lost.append((str(tid), describe(exc) if exc is not None else "the trial's actor failed"))
                progress.cut_off(str(tid), self.lost[-1][1])
                return
            self._settle(trial, _ray.trial_error_line(trial) or "trial failed")

    return StudyCallback()


def _drop_checkpoints(study_dir: StudyPath, trial_id: str) -> None:
    from hyperswitch.search.trial import checkpoint_roots

    for root in checkpoint_roots(study_dir, trial_id):
        for d in root.glob("checkpoint_*"):
            rmtree(d)


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
        params = space.active_values({n: _py(group.iloc[0][n]) for n in space.sampled_names if n in group})
        done_rows = group[(group["status"] != RUNNING) & ~group["trial_id"].isin(list(again))]
        done = {int(s) for s in done_rows["seed"]}
        values = _finite(done_rows, space.metric)
        measured = {m: _finite(done_rows, m) for m in space.measures} if _measured(space) else {}
        carried.append(Carried(str(cid), params, [s for s in space.seeds if s not in done], values, measured))
    return carried, n_configs, next_index


def _finite(rows: Any, metric: str) -> dict[int, float]:
    """seed -> the finite value of ``metric`` of each of these trial rows (none where the column is missing)."""
    if metric not in rows:
        return {}
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric], strict=True)
            if v is not None and math.isfinite(float(v))}


def _measured(space: SearchSpace) -> bool:
    """Whether the sampler is told more than one number per configuration (several objectives, constraints)."""
    return space.multi_objective or bool(space.constraints)


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def build_searcher(space: SearchSpace, carried: list[Carried], lag: int,
                   priors: Sequence[tuple[Mapping[str, Any], Any]] = ()) -> SeedRepeater:
    """The sweep's searcher: the configurations still to propose (the lowest indices ``carried`` does not hold)
    and the seeds ``carried`` still misses. Each proposal is a function of ``search.seed``, its index and the
    results before it (``seeds`` module), so a resumed study proposes what an uninterrupted one does.
    ``priors``: (params, mean) of an earlier study's configurations (``--warm-start``, :func:`read_warm_start`)."""
    if not space.sampled_names:
        proposer: Any = FixedSearcher(space.mode)
    elif space.algorithm == "grid":  # the same seeded order in every session; points already run are skipped
        proposer = GridSearcher(space.grid(), space.mode, space.search_seed, space.grid_limit,
                                start_points=space.start_points,
                                points=space.grid_points() if space.conditional else None)
        for c in carried:
            proposer.skip(c.params)
    elif space.algorithm == "qmc":
        proposer = QMCProposer(space.optuna_space(), space.search_seed, space.search_options, space.start_points,
                               conditions=space.conditions)
    else:
        proposer = OptunaProposer(space.optuna_space(), space.algorithm, space.search_seed, space.mode, lag,
                                  options=space.search_options, start_points=space.start_points, priors=priors,
                                  # results are mappings by metric name (_measured): the objective by its name
                                  # too, a single one with constraints included (told as failed otherwise)
                                  objectives=list(zip(space.objectives, space.objective_modes, strict=True))
                                  if _measured(space) else (), constraints=space.constraints,
                                  conditions=space.conditions)
    n_new = max(0, space.n_configurations() - len(carried))
    return SeedRepeater(proposer, space.seeds, space.mode, n_new=n_new, carried=carried,
                        measures=space.measures if _measured(space) else ())


WS_CMAES_MIN = 10  # WS-CMA-ES starts from the best tenth of the earlier configurations: at least one


def read_warm_start(space: SearchSpace, other: str | Path, storage: str | Path = "runs",
               study_dir: StudyPath | None = None) -> dict[str, Any]:
    """What ``--warm-start OTHER`` tells the sampler, as study.json records it (``warm_start``): the earlier
    study's folder (a path, or a study name under ``storage``), and each of its configurations with a result:
    its values and the mean of its finished seeds' metric (``math.fsum`` in seed order, as ``SeedRepeater``
    tells a configuration). It must search the same parameters with the same distributions, for the same
    metric. Recorded once: a resumed study is told the same priors however the earlier study has changed."""
    from hyperswitch.results.distributions import sampled_names, study_distributions
    from hyperswitch.results.fs import display
    from hyperswitch.results.names import find_study

    key = "--warm-start"
    if space.algorithm == "nsga2":
        raise ConfigError(key, "nsga2 breeds each generation from this study's own trials; an earlier study's "
                          "results cannot seed it (use tpe or gp)", str(other))
    if space.algorithm not in LEARNING:
        raise ConfigError(key, f"search.algorithm {space.algorithm} does not learn from results; a warm start needs "
                          f"one that does ({', '.join(LEARNING)})", str(other))
    try:
        root = find_study(other, storage)
    except ConfigError as exc:
        raise exc.replace(key=key) from None
    if study_dir is not None and display(root) == display(study_dir):
        raise ConfigError(key, "names the study being run; give an earlier one", str(other))
    study = open_study(root)
    name = root.name
    ours_metric = space.metric_record()[0]
    if study.meta.get("metric", "val_accuracy") != ours_metric:
        raise ConfigError(key, f"study {name} was run for metric {study.meta.get('metric')}, this space for "
                          f"{ours_metric}", str(other))
    theirs = study_distributions(study.meta)
    ours = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in space.distributions()}
    if sampled_names(theirs) != space.sampled_names:
        raise ConfigError(key, f"study {name} searches {', '.join(sampled_names(theirs)) or 'nothing'}; this space "
                          f"searches {', '.join(space.sampled_names)}", str(other))
    for n in space.sampled_names:
        if _canonical(theirs[n]) != _canonical(ours[n]):
            raise ConfigError(key, f"parameter {n} is {_describe(theirs[n])} in study {name} but "
                              f"{_describe(ours[n])} here", str(other))
    configurations = []
    t = study.finished()
    for cid, group in (t.groupby("config_id", sort=True) if len(t) and space.metric in t else ()):
        values = sorted((int(s), float(v)) for s, v in zip(group["seed"], group[space.metric], strict=True)
                        if v is not None and math.isfinite(float(v)))
        if values:
            params = space.active_values({n: _py(group.iloc[0][n]) for n in space.sampled_names if n in group})
            configurations.append({"config_id": str(cid), "params": params,
                                   "value": math.fsum(v for _, v in values) / len(values)})
            if _measured(space):  # every objective's and constrained metric's mean (None: no finite value)
                configurations[-1]["means"] = {m: seed_mean(v for _, v in sorted(_finite(group, m).items()))
                                               for m in space.measures}
    if not configurations:
        raise ConfigError(key, f"study {name} has no finished configuration with a finite {space.metric}", str(other))
    if space.algorithm == "cmaes":
        if "sigma0" in space.search_options:
            raise ConfigError(key, "cmaes takes its initial step size from the earlier study when it warm-starts "
                              "(WS-CMA-ES); remove search.sigma0", str(other))
        if len(configurations) < WS_CMAES_MIN:
            raise ConfigError(key, f"cmaes warm-starts from the best tenth of the earlier configurations and needs "
                              f"at least {WS_CMAES_MIN}; study {name} has {len(configurations)} with a result",
                              str(other))
    return {"study": display(root), "metric": ours_metric, "configurations": configurations}


def _canonical(d: Mapping[str, Any]) -> Any:
    import json

    return json.loads(json.dumps(dict(d), sort_keys=True, default=str))


def _describe(d: Mapping[str, Any]) -> str:
    if d.get("type") == "categorical":
        return f"categorical {d.get('choices')}"
    if d.get("type") in ("float", "int"):
        extra = " log" if d.get("log") else (f" step {d['step']}" if d.get("step") is not None else "")
        return f"{d['type']} [{d.get('low')}, {d.get('high')}]{extra}"
    return str(d.get("type"))


def _priors(record: Mapping[str, Any] | None) -> list[tuple[dict[str, Any], Any]]:
    """(params, result) of each recorded configuration: its mean, or its means by metric where recorded."""
    return [(dict(c["params"]), dict(c["means"]) if "means" in c else float(c["value"]))
            for c in (record or {}).get("configurations", [])]


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
        root = open_storage(storage) / study_name
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


def same_space_document(stored: Any, text: str) -> bool:
    """Whether a study's recorded space text and ``text`` are the same YAML document: comments, blank lines, key
    order and quoting may differ (a study whose file gained a comment can still be resumed), any value may not."""
    if stored == text:
        return True
    if not isinstance(stored, str):
        return False
    try:
        return bool(load_yaml(stored) == load_yaml(text))
    except YAMLSyntaxError:
        return False


def prepare_study(space: SearchSpace, storage: str | Path, name: str | None, resume: bool,
                  warm_start: Mapping[str, Any] | None = None) -> StudyStore:
    """Create (or, with resume, reopen) the study folder. Errors leave nothing behind. ``warm_start``: a new
    study's record of its warm start (:func:`read_warm_start`), written into its study.json."""
    study_name = check_study_name(name, "--name") if name is not None else space.name  # no path outside storage
    store = StudyStore(open_storage(storage) / study_name)
    if resume:
        if not store.meta_path.exists():
            raise ConfigError("--resume", "there is no study to resume at this path", str(store.root))
        meta = store.read_meta()
        if not same_space_document(meta.get("space_text"), space.text):
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
        "metric": space.metric_record()[0], "mode": space.metric_record()[1],
        **({"constraints": [c.text for c in space.constraints]} if space.constraints else {}),
        "parameter_names": space.parameter_names,
        "sampled_names": space.sampled_names, "distributions": space.distributions(),
        "versions": _versions(), "code": _code(), "machine": _machine(), "created": _now(), "updated": _now(),
        "status": "created", "sessions": 0, "n_trials_total": space.n_configurations() * len(space.seeds),
        "target_accuracy": space.train.target_accuracy,
        "target_loss": space.train.target_loss,
        **({"warm_start": dict(warm_start)} if warm_start is not None else {}),
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


def _forget_run(study_dir: StudyPath, trial_id: str) -> None:
    """A failed trial that runs again starts from scratch: no checkpoint of it is left."""
    for d in [*study_dir.glob(f"tune/session-*/{trial_id}"), study_dir / "train" / trial_id]:
        rmtree(d)


@_holding_study_lock
def run_sweep(space: SearchSpace, *, storage: str | Path = "runs", name: str | None = None, resume: bool = False,
              address: str | None = None, verbose: bool = False, out: Printer = print,
              samples: int | None = None, seeds: int | None = None, retry_errors: bool = False,
              warm_start: str | Path | None = None, log: str | Sequence[str] | None = None) -> Study:
    """Run (or resume) the sweep of ``space``; return the study as read back from its Parquet files.
    ``retry_errors`` (with ``resume``): run the trials that failed (status ``error``) again, from scratch.
    ``warm_start``: an earlier study (folder, or name under ``storage``) whose configurations' results the
    sampler is told first (:func:`read_warm_start`); recorded in study.json, so ``resume`` needs it not again.
    ``log``: experiment trackers each finished trial is logged to (``--log``: mlflow, mlflow=URI, tensorboard,
    tensorboard=DIR, none; :mod:`hyperswitch.search.trackers`); recorded in study.json, a resume without it keeps
    the recorded ones."""
    from hyperswitch.search import trackers as tracking
    from hyperswitch.search.supervise import ray_processes, tell

    if retry_errors and not resume:
        raise ConfigError("--retry-errors", "goes with --resume (it runs the failed trials of a study again)", True)
    space = space.with_overrides(samples=samples, seeds=seeds)
    study_dir = open_storage(storage) / (check_study_name(name, "--name") if name is not None else space.name)
    targets = tracking.parse_log(log)  # checked before the study is created, as the warm start below
    if targets:
        tracking.require(targets)
        tracking.check_targets(targets, study_dir)
    warm = None
    if warm_start is not None and not resume:  # checked before the study is created: an error leaves nothing
        warm = read_warm_start(space, warm_start, storage, study_dir)
    store = prepare_study(space, storage, name, resume, warm)
    recorded = store.read_meta().get("warm_start")
    if resume and warm_start is not None:
        from hyperswitch.results.fs import display
        from hyperswitch.results.names import find_study

        try:
            same = recorded is not None and recorded["study"] == display(find_study(warm_start, storage))
        except ConfigError:
            same = False
        if not same:
            raise ConfigError("--warm-start", "a resumed study keeps the warm start it was started with ("
                              + (f"study {recorded['study']}" if recorded else "none") + ")", str(warm_start))
    if targets is None and resume:  # a resume keeps the study's trackers
        targets = tracking.targets_from_record(store.read_meta())
        tracking.require(targets)
        tracking.check_targets(targets, store.root)
    trackers = None
    if targets:
        try:
            trackers = tracking.open_trackers(targets, store, out, verbose)
        except ConfigError:
            if not resume:  # a new study is undone: nothing left behind
                tracking.discard_defaults(store.root)
                store.meta_path.unlink(missing_ok=True)
            raise
        store.update_meta(log=trackers.record())
        out(f"logging each finished trial to {trackers.describe()}")
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
    if recorded:
        out(f"warm start: {len(recorded['configurations'])} configurations of {recorded['study']} told to the "
            "sampler first (not counted as this study's)")
    if resume:
        out(f"resuming {store.name}: {done} trials finished and kept, {remaining} to run"
            + (f" ({len(discarded)} unfinished: continued from their checkpoints where they have one)"
               if discarded else "")
            + (f" ({len(retried)} that failed: run again from the start)" if retried else ""))
    objectives = f"metric {space.metric} ({space.mode})" if not space.multi_objective else "objectives " + \
        ", ".join(f"{m} ({d})" for m, d in zip(space.objectives, space.objective_modes, strict=True))
    if space.constraints:
        objectives += ", constraints " + "; ".join(c.text for c in space.constraints)
    out(f"study {store.name}: {n_configs} configurations x {len(space.seeds)} seeds = {total} trials "
        f"({space.algorithm}, {space.max_concurrent} at a time), {objectives}")
    if trackers is not None:
        trackers.catch_up(skip=retried)  # finished trials a tracker lacks (new to the study, or missed)
    if remaining == 0:
        store.update_meta(status="completed", updated=_now())
        out("nothing left to run")
        return _finish(store, space, out)

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    from hyperswitch.search.trial import run_trial

    repeater = build_searcher(space, carried, lag, _priors(recorded))
    scheduler = None
    if space.scheduler["type"] == "asha":
        s = space.scheduler
        scheduler = ASHAScheduler(time_attr="step", metric=OBJECTIVE, mode=space.mode, max_t=s["max_t"],
                                  grace_period=s["grace_period"], reduction_factor=s["reduction_factor"])
    progress = Progress(total, done, space.metric, space.mode, out,
                        objectives=list(zip(space.objectives, space.objective_modes, strict=True)))
    for _, row in study.finished().iterrows():
        if row["trial_id"] in retried:
            continue
        progress.offer_row({str(k): v for k, v in row.items()})
        if space.metric in row and row[space.metric] is not None:
            progress.offer(float(row[space.metric]), str(row["trial_id"]))

    joining = _ray.joins_cluster(address)
    if not joining:
        out("starting an embedded local Ray ...")
    elif address:
        out(f"starting a connection to {address} ...")
    _ray.connect(address, verbose=verbose, modules=_user_modules(space) if address else None)
    if joining:
        out(_ray.cluster_line())
    # where each session ran: a resumed study may move between machines and clusters
    runs = list(store.read_meta().get("ray_sessions") or [])
    runs.append({"session": sessions, "started": _now(), "joined": joining, **_ray.cluster_facts(),
                 "code": _code()})
    store.update_meta(ray_sessions=runs)
    tell(ray=ray_processes())  # the supervising `hyperswitch sweep` watches them
    concurrency = _concurrency(space, out)
    searcher = ConcurrencyLimiter(repeater, max_concurrent=concurrency)
    out(f"running {remaining} trials; one line per finished trial")
    trainable = tune.with_parameters(run_trial, space=space, study_dir=str(store.root))  # space: with overrides
    r = space.resources
    # One worker: the trial's own process trains, with the worker's resources. More: the trial's process (a token
    # share of a CPU; 0 is refused) drives a worker group placed in the trial's other bundles (train.group).
    if r.workers == 1:
        res: Any = {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker}
    else:
        worker = {"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}
        res = tune.PlacementGroupFactory([{"CPU": 0.01}] + [dict(worker) for _ in range(r.workers)],
                                         strategy="PACK")
    tuner = tune.Tuner(
        tune.with_resources(trainable, res),
        # Tune keeps each trial process for the next trial (~5 s a trial saved; a multi-worker trial's process
        # keeps its worker group, placement group and all, so its workers receive the next configuration)
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    reuse_actors=True, trial_dirname_creator=_trial_dirname),
        # the study's storage, local or remote (storage_filesystem: the same pyarrow file system, None locally)
        run_config=tune.RunConfig(name=f"session-{sessions}", storage_path=ray_storage(store.root / "tune")[0],
                                  storage_filesystem=ray_storage(store.root / "tune")[1], verbose=0,
                                  # the trackers after the study's callback, which settles each trial's row
                                  callbacks=[callback := _study_callback(store, space, progress),
                                             *([trackers.callback()] if trackers is not None else [])],
                                  failure_config=tune.FailureConfig(max_failures=r.max_failures,
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
    if trackers is not None:
        trackers.catch_up()  # what a tracker failed to take mid-sweep, once more
        if (missed := trackers.unlogged_line()) is not None:
            out(missed)
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
    """``max_concurrent``, lowered when multi-worker trials would not fit the cluster's CPUs together (Tune would
    wait for placement groups that never come); GPUs asked of a cluster that has none are an error."""
    r = space.resources
    if r.gpus_per_worker and not _ray.cluster_resources().get("GPU"):
        raise ConfigError("resources.gpus_per_worker", f"asks for {r.gpus_per_worker:g} GPU per worker but the Ray "
                          "cluster has none; set it to 0 to train on CPUs", r.gpus_per_worker, file=space.source)
    if r.workers == 1:
        return space.max_concurrent
    cpus = float(_ray.cluster_resources().get("CPU", 0))
    need = r.workers * r.cpus_per_worker
    if need > cpus + 1e-9:
        raise ConfigError("resources", f"a trial needs workers x cpus_per_worker = {need:g} CPUs but the Ray "
                          f"cluster has {cpus:g}; lower cpus_per_worker (fractions work) or workers",
                          r.as_dict(), file=space.source)
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
    if space.multi_objective:
        _print_front(study, space, out)
        return study
    best = study.best_trial()
    if best is not None:
        params = ", ".join(f"{n}={_fmt(best.get(n))}" for n in space.parameter_names
                           if n not in space.conditions or space.is_active(n, best))
        out(f"best trial: {best['trial_id']} {space.metric}={best[space.metric]:.4f}  ({params})")
    t = study.finished()
    if len(t) and space.metric in t and len(space.seeds) > 1:
        from hyperswitch.errors import ConfigError
        from hyperswitch.results.select import select_configurations

        try:  # the rule `hyperswitch export` applies: best mean over complete seeds, no failed seed
            choice = select_configurations(t, space.metric, space.mode, constraints=space.constraints).choices[0]
        except ConfigError:
            choice = None
        if choice is not None:
            out(f"best configuration (mean over seeds): {choice.config_id} {space.metric}={choice.mean:.4f} "
                f"± {choice.std or 0.0:.4f} (n={choice.n}); export it: hyperswitch export {store.name}")
    counts = t["status"].value_counts().to_dict() if len(t) else {}
    if counts:
        out("trial status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return study


def _print_front(study: Study, space: SearchSpace, out: Printer) -> None:
    """A multi-objective study's summary: the Pareto front of its configurations by their seeds' means (the rule of
    ``hyperswitch export --select pareto``), one line per member."""
    from hyperswitch.results.select import select_configurations

    t = study.finished()
    if len(t):
        try:
            sel = select_configurations(t, space.metric, space.mode, "pareto", top=10**9, constraints=space.constraints,
                                        objectives=list(zip(space.objectives, space.objective_modes, strict=True)))
        except ConfigError as exc:
            out(f"Pareto front: none ({exc.rule})")
        else:
            names = ", ".join(f"{m} ({d})" for m, d in zip(space.objectives, space.objective_modes, strict=True))
            out(f"Pareto front of {names}, seeds' means: {len(sel.choices)} configuration(s)"
                + (" (feasible ones only)" if space.constraints else "") + f"; export them: hyperswitch export "
                f"{study.path.name} --select pareto")
            for c in sel.choices:
                vals = "  ".join(f"{m}={mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")
                                 for m, mean, std, _ in c.objectives)
                out(f"  {c.config_id}  {vals}  (n={c.n})")
    counts = t["status"].value_counts().to_dict() if len(t) else {}
    if counts:
        out("trial status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def _value_text(v: Any) -> str:
    """A metric's value for a progress line: 4 significant digits, n/a when missing or not finite."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{f:.4g}" if math.isfinite(f) else "n/a"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
