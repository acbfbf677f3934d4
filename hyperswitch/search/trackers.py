"""Experiment trackers: each finished trial of a sweep logged to MLflow and/or TensorBoard (``sweep --log``).

``--log mlflow`` (``mlflow=URI``: another tracking URI) and ``--log tensorboard`` (``tensorboard=DIR``: another
folder), repeatable. What a trial leaves, read from its Parquet parts through :mod:`hyperswitch.results` once the
study has settled its row (a Ray Tune callback in the driver, after the study's own):

- its per-step curves (:data:`STEP_METRICS`, each at its step; a value a step did not measure is left out),
- its events as metrics (``switch``, ``iomt_cycle``, ``diverged``, ...: 1 at the event's step) with their detail
  (MLflow: a ``switch/STEP`` tag for each switch and every event in the run's ``events.json`` artifact;
  TensorBoard: a text entry at the step),
- its parameters (the space's parameters, ``config_id``, ``seed``) and its final metrics (the trials row, as
  ``final/NAME``: the curves keep the plain names).

MLflow: the experiment is the study's name; one run per trial, named by its trial id and tagged with ``trial_id``,
``config_id``, ``seed``, ``status``, ``study``; metrics sent in batches (``log_batch``) with their steps. The
default store is SQLite, ``<study>/mlflow.db``, with artifacts under ``<study>/mlflow-artifacts`` (MLflow 3.13 on
refuses a plain folder as a tracking store; SQLite is its own local default). A value without ``://`` is taken as
a SQLite file's path.

TensorBoard: one folder per trial, ``<study>/tensorboard/<trial_id>/`` (``tensorboard=DIR``:
``DIR/<study>/<trial_id>/``): scalars per step and the trial's hyperparameters with its final metrics (the
HParams dashboard). Event files are written locally: a study on object storage (``s3://...``) needs
``tensorboard=DIR``, and ``mlflow=URI`` (a SQLite file cannot live in a bucket).

A trial is logged once: a session first logs the finished trials that a tracker lacks (a run tagged with its
trial id that finished; a trial folder), and a trial run again (``--retry-errors``) replaces its earlier run.
A trial is written completely or not at all (an MLflow run left RUNNING is deleted; a TensorBoard folder is
written under ``.partial/`` and moved into place). A tracker that is missing or cannot be opened is a one-line
error before anything runs; one that fails later prints one line per trial and the sweep goes on (``--resume``
logs what was missed). study.json records the targets (``log``); a resume without ``--log`` keeps them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from hyperswitch.errors import ConfigError
from hyperswitch.results.fs import ObjectPath, StudyPath, display, is_uri, rmtree
from hyperswitch.results.schema import FINISHED_STATUSES, TRIAL_METRIC_COLUMNS
from hyperswitch.results.store import StudyStore, read_parquet

Printer = Callable[[str], None]

TRACKERS = ("mlflow", "tensorboard")
INSTALL = "pip install 'hyperswitch[trackers]'"
# the per-step columns of steps.parquet logged as curves (the names they have there)
STEP_METRICS = ("loss", "lr", "val_loss", "val_accuracy", "val_recon_error", "memory_bytes", "elapsed_s")
# the trials row's numeric metrics, logged once as final/NAME
FINAL_METRICS = tuple(n for n, t in TRIAL_METRIC_COLUMNS.items() if pa.types.is_integer(t) or pa.types.is_floating(t))
# MLflow's limits: entities per log_batch, characters of a param or tag value
MLFLOW_METRICS_PER_BATCH = 1000
MLFLOW_PARAMS_TAGS_PER_BATCH = 100
MLFLOW_VALUE_CHARS = 5000
# an MLflow run's status for a trial's (MLflow's own RunStatus names)
RUN_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "stopped": "KILLED", "error": "FAILED"}


@dataclass(frozen=True)
class Target:
    """One ``--log`` value: the tracker and where it writes (None: its default in the study folder)."""

    tracker: str
    where: str | None = None

    @property
    def text(self) -> str:
        return self.tracker if self.where is None else f"{self.tracker}={self.where}"


def parse_log(values: str | Iterable[str] | None) -> list[Target] | None:
    """The ``--log`` values as targets; None where none were given. ``none`` (alone) logs nothing. Errors:
    :class:`ConfigError` on ``--log``, one line."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    if not items:
        return None
    targets: list[Target] = []
    for raw in items:
        text = str(raw).strip()
        tracker, eq, where = text.partition("=")
        tracker = tracker.strip().lower()
        if tracker == "none" and not eq:
            if len(items) > 1:
                raise ConfigError("--log", "none logs nothing and goes alone", list(items))
            return []
        if tracker not in TRACKERS:
            raise ConfigError("--log", "names no tracker: mlflow, mlflow=URI, tensorboard, tensorboard=DIR or none",
                              raw)
        where = where.strip()
        if eq and not where:
            raise ConfigError("--log", f"{tracker}= names nothing; give {tracker}=" +
                              ("URI" if tracker == "mlflow" else "DIR") + f", or {tracker} for the default", raw)
        if tracker == "tensorboard" and is_uri(where):
            raise ConfigError("--log", "tensorboard=DIR takes a local folder (event files are written locally; "
                              "copy them to object storage afterwards)", raw)
        if any(t.tracker == tracker for t in targets):
            raise ConfigError("--log", f"{tracker} is given twice", list(items))
        targets.append(Target(tracker, where or None))
    return targets


def require(targets: Sequence[Target]) -> None:
    """A one-line error where a tracker's package is not installed."""
    for t in targets:
        try:
            if t.tracker == "mlflow":
                import mlflow  # noqa: F401
            else:
                import tensorboard  # noqa: F401
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError("--log", f"{t.tracker} needs the {t.tracker} package: {INSTALL}", show_value=False) \
                from None


def mlflow_uri(where: str) -> str:
    """A tracking URI as given, or ``sqlite:///`` + the absolute path of a value without a scheme."""
    if "://" in where or where == "databricks" or where.startswith("databricks:"):
        return where
    return f"sqlite:///{Path(where).expanduser().resolve()}"


def check_targets(targets: Sequence[Target], root: StudyPath) -> None:
    """The defaults need a local study folder: one line for each that a study on object storage lacks."""
    if not isinstance(root, ObjectPath):
        return
    for t in targets:
        if t.where is not None:
            continue
        if t.tracker == "mlflow":
            raise ConfigError("--log", f"mlflow: the study is on {display(root)}, where its default SQLite store "
                              "cannot be; name a tracking URI: --log mlflow=URI (a tracking server http://HOST:PORT, "
                              "or a local SQLite file, sqlite:////PATH/mlflow.db)", show_value=False)
        raise ConfigError("--log", f"tensorboard: the study is on {display(root)} and event files are written "
                          "locally; name a folder: --log tensorboard=DIR", show_value=False)


def targets_from_record(meta: Mapping[str, Any]) -> list[Target]:
    """The targets a study's study.json records (``log``), for a resume that names none."""
    out = []
    for entry in meta.get("log") or []:
        if isinstance(entry, Mapping) and entry.get("tracker") in TRACKERS:
            out.append(Target(str(entry["tracker"]), None if entry.get("default") else entry.get("where")))
    return out


# --- what a trial leaves ------------------------------------------------------------------------------------
@dataclass
class TrialRecord:
    """A finished trial as the trackers log it: its trials row, its steps (columns, in step order) and events."""

    trial_id: str
    row: dict[str, Any]
    steps: dict[str, list[Any]]
    events: list[dict[str, Any]]

    def curves(self) -> Iterator[tuple[str, int, float]]:
        """(metric, step, value) of each per-step value the trial measured."""
        steps = self.steps.get("step", [])
        for name in STEP_METRICS:
            for step, v in zip(steps, self.steps.get(name, []), strict=False):
                if v is not None:
                    yield name, int(step), float(v)

    def event_marks(self) -> list[tuple[str, int]]:
        """(kind, step) once for each kind and step with an event."""
        return sorted({(str(e["kind"]), int(e["step"])) for e in self.events}, key=lambda m: (m[1], m[0]))

    def finals(self) -> dict[str, float]:
        out = {}
        for name in FINAL_METRICS:
            v = self.row.get(name)
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[f"final/{name}"] = float(v)
        return out

    @property
    def last_step(self) -> int:
        steps = self.steps.get("step") or [0]
        return int(self.row.get("steps_done") or max(steps))


def _one_trial(table: pa.Table | None, trial_id: str) -> pa.Table | None:
    if table is None or "trial_id" not in table.column_names:
        return None
    return table.filter(pc.equal(table.column("trial_id"), trial_id))


def _columns(table: pa.Table | None) -> dict[str, list[Any]]:
    if table is None or not table.num_rows:
        return {}
    if "step" in table.column_names:
        table = table.sort_by("step")
    return {n: table.column(n).to_pylist() for n in table.column_names if n != "trial_id"}


def _events(table: pa.Table | None) -> list[dict[str, Any]]:
    cols = _columns(table)
    n = len(cols.get("step", []))
    return [{k: cols[k][i] for k in ("step", "kind", "detail") if k in cols} for i in range(n)]


def trial_record(store: StudyStore, trial_id: str) -> TrialRecord | None:
    """The record of a finished trial from its parts, else from the compacted tables (parts first: a compaction
    writes the tables before it removes the parts); None while it is unfinished or unknown."""
    row = store.find_trial(trial_id)
    if row is None or row.get("status") not in FINISHED_STATUSES:
        return None
    tables = {}
    for name in ("steps", "events"):
        part = read_parquet(store.part_path(trial_id, name))
        tables[name] = part if part is not None else _one_trial(read_parquet(store.table_path(name)), trial_id)
    return TrialRecord(trial_id, row, _columns(tables["steps"]), _events(tables["events"]))


def _local(root: StudyPath) -> Path:
    """A local study folder, absolute (an object-store study has no local default: :func:`check_targets`)."""
    if isinstance(root, ObjectPath):
        raise ConfigError("--log", f"{display(root)} is not a local folder", show_value=False)
    return Path(root).resolve()


def _params(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {n: row.get(n) for n in [*names, "config_id", "seed"] if n in row}


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return " ".join(first.split())[:300]


# --- the trackers -------------------------------------------------------------------------------------------
class Tracker(Protocol):
    name: str

    def describe(self) -> str: ...

    def record(self) -> dict[str, Any]: ...

    def logged(self) -> set[str]: ...

    def log(self, rec: TrialRecord, parameters: Sequence[str], sampled: Sequence[str]) -> None: ...


class MlflowTracker:
    """One MLflow run per trial in the experiment named as the study, through ``MlflowClient``."""

    name = "mlflow"

    def __init__(self, target: Target, root: StudyPath, study: str, verbose: bool = False) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        self.target, self.study, self.root = target, study, root
        self.where = display(root)  # each run's hyperswitch.study tag: whose runs these are
        if target.where is None:
            self.uri = f"sqlite:///{_local(root) / 'mlflow.db'}"
        else:
            self.uri = mlflow_uri(target.where)
        # artifacts under the study where the study and the store are both local; else the store's default
        artifacts = (_local(root) / "mlflow-artifacts").as_uri() \
            if not isinstance(root, ObjectPath) and self.uri.startswith("sqlite:") else None
        quiet = _quiet_logger("mlflow", "alembic") if not verbose else contextlib.nullcontext()
        with quiet:
            self.client = MlflowClient(tracking_uri=self.uri)
            exp = self.client.get_experiment_by_name(study)
            if exp is None:
                self.experiment_id = self.client.create_experiment(
                    study, artifact_location=artifacts, tags={"hyperswitch.study": self.where})
            elif exp.lifecycle_stage != "active":
                raise ConfigError("--log", f"mlflow: experiment {study!r} is deleted in {self.uri}; restore it, or "
                                  "remove it for good (mlflow gc), or give another --name", show_value=False)
            else:
                self.experiment_id = exp.experiment_id
            # the trials logged before: finished runs tagged with a trial id; a run left RUNNING (a driver killed
            # while it logged) is deleted, so that the trial is logged again whole. In a store of the user's own,
            # only this study's runs (another study of the same name may log to the same experiment); the default
            # store, inside the study, holds no other's
            self.runs: dict[str, str] = {}
            token = None
            while True:
                page = self.client.search_runs([self.experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                                               max_results=1000, page_token=token)
                for run in page:
                    tid = run.data.tags.get("trial_id")
                    if tid is None or (target.where is not None
                                       and run.data.tags.get("hyperswitch.study") != self.where):
                        continue
                    if run.info.status == "RUNNING" or tid in self.runs:
                        self.client.delete_run(run.info.run_id)
                    else:
                        self.runs[tid] = run.info.run_id
                token = page.token
                if not token:
                    break

    def describe(self) -> str:
        return f"mlflow ({self.uri}, experiment {self.study})"

    def record(self) -> dict[str, Any]:
        return {"tracker": "mlflow", "default": self.target.where is None, "where": self.target.where,
                "tracking_uri": self.uri, "experiment": self.study, "experiment_id": self.experiment_id}

    def logged(self) -> set[str]:
        return set(self.runs)

    def log(self, rec: TrialRecord, parameters: Sequence[str], sampled: Sequence[str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        row = rec.row
        tags = {"trial_id": rec.trial_id, "config_id": row.get("config_id"), "seed": row.get("seed"),
                "status": row.get("status"), "study": self.study, "workload": row.get("workload"),
                "policy_type": row.get("policy_type"), "optimizers": row.get("optimizers"),
                "error": row.get("error")}
        for e in rec.events:
            if e.get("kind") == "switch":
                tags[f"switch/{int(e['step'])}"] = e.get("detail") or ""
        ms = int(time.time() * 1000)
        metrics = [Metric(name, value, ms, step) for name, step, value in rec.curves()]
        metrics += [Metric(kind, 1.0, ms, step) for kind, step in rec.event_marks()]
        metrics += [Metric(name, value, ms, rec.last_step) for name, value in rec.finals().items()]
        params = [Param(k, _text(v)) for k, v in _params(row, parameters).items() if v is not None]
        run_tags = [RunTag(k, _text(v)) for k, v in tags.items() if v is not None]
        old = self.runs.get(rec.trial_id)
        run = self.client.create_run(self.experiment_id, run_name=rec.trial_id,
                                     tags={"trial_id": rec.trial_id, "study": self.study,
                                           "hyperswitch.study": self.where})
        rid = run.info.run_id
        try:
            for chunk in _chunks([*params, *run_tags], MLFLOW_PARAMS_TAGS_PER_BATCH):
                self.client.log_batch(rid, params=[p for p in chunk if isinstance(p, Param)],
                                      tags=[t for t in chunk if isinstance(t, RunTag)])
            for chunk in _chunks(metrics, MLFLOW_METRICS_PER_BATCH):
                self.client.log_batch(rid, metrics=chunk)
            if rec.events:
                self.client.log_text(rid, json.dumps([_event_json(e) for e in rec.events], indent=1), "events.json")
            self.client.set_terminated(rid, status=RUN_STATUS.get(str(row.get("status")), "FINISHED"))
        except BaseException:
            with contextlib.suppress(Exception):  # not left half-logged (else deleted when the next session opens)
                self.client.delete_run(rid)
            raise
        if old is not None:  # the trial ran again (--retry-errors): its new run replaces the earlier one
            self.client.delete_run(old)
        self.runs[rec.trial_id] = rid


class TensorBoardTracker:
    """One folder of event files per trial (``torch.utils.tensorboard.SummaryWriter``)."""

    name = "tensorboard"

    def __init__(self, target: Target, root: StudyPath, study: str) -> None:
        self.target = target
        if target.where is None:
            self.logdir = _local(root) / "tensorboard"
        else:
            self.logdir = Path(target.where).expanduser().resolve() / study
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("--log", f"tensorboard: cannot make the folder {self.logdir} ({_line(exc)})",
                              show_value=False) from None
        rmtree(self.partial)  # a trial a killed driver was writing: written again whole

    @property
    def partial(self) -> Path:
        return self.logdir / ".partial"

    def describe(self) -> str:
        return f"tensorboard ({self.logdir})"

    def record(self) -> dict[str, Any]:
        return {"tracker": "tensorboard", "default": self.target.where is None, "where": self.target.where,
                "logdir": str(self.logdir)}

    def logged(self) -> set[str]:
        try:
            return {p.name for p in self.logdir.iterdir() if p.is_dir() and not p.name.startswith(".")}
        except FileNotFoundError:
            return set()

    def log(self, rec: TrialRecord, parameters: Sequence[str], sampled: Sequence[str]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        tmp = self.partial / rec.trial_id
        rmtree(tmp)
        with SummaryWriter(log_dir=str(tmp)) as w:
            for name, step, value in rec.curves():
                w.add_scalar(name, value, step)
            for kind, step in rec.event_marks():
                w.add_scalar(kind, 1.0, step)
            for e in rec.events:
                w.add_text(str(e["kind"]), f"step {int(e['step'])}: `{e.get('detail') or ''}`", int(e["step"]))
            finals = rec.finals()
            hp = {k: _hparam(v) for k, v in _params(rec.row, sampled).items() if v is not None}
            hp["status"] = str(rec.row.get("status"))
            # the HParams dashboard: this run's hyperparameters and the final metrics (scalars of the same tags)
            for summary in hparams(hp, finals):
                w.file_writer.add_summary(summary)
            for name, value in finals.items():
                w.add_scalar(name, value, rec.last_step)
        final = self.logdir / rec.trial_id
        rmtree(final)  # the trial ran again (--retry-errors): its new folder replaces the earlier one
        os.replace(tmp, final)


def _text(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v)
    return s if len(s) <= MLFLOW_VALUE_CHARS else s[: MLFLOW_VALUE_CHARS - 3] + "..."


def _hparam(v: Any) -> bool | int | float | str:
    if isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, default=str)


def _event_json(e: Mapping[str, Any]) -> dict[str, Any]:
    detail: Any = e.get("detail")
    with contextlib.suppress(TypeError, ValueError):
        detail = json.loads(detail) if detail is not None else None
    return {"step": int(e["step"]), "kind": str(e["kind"]), "detail": detail}


def _chunks(items: Sequence[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


@contextlib.contextmanager
def _quiet_logger(*names: str) -> Iterator[None]:
    """Loggers at WARNING for a while (MLflow announces its SQLite store's creation and migrations at INFO)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class Trackers:
    """The trackers of one sweep session: log a finished trial to each, catch up on earlier ones, never raise
    once opened (a failure is one printed line; the trial stays in the study and a later session logs it)."""

    def __init__(self, trackers: Sequence[Tracker], store: StudyStore, out: Printer) -> None:
        self.trackers = list(trackers)
        self.store, self.out = store, out
        meta = store.read_meta()
        self.parameters = [str(n) for n in meta.get("parameter_names") or []]
        self.sampled = [str(n) for n in meta.get("sampled_names") or []]
        self.failed: dict[str, set[str]] = {}  # tracker -> trial ids not logged this session

    def record(self) -> list[dict[str, Any]]:
        return [t.record() for t in self.trackers]

    def describe(self) -> str:
        return " and ".join(t.describe() for t in self.trackers)

    def _log(self, tracker: Tracker, rec: TrialRecord) -> bool:
        try:
            tracker.log(rec, self.parameters, self.sampled)
        except Exception as exc:  # a tracker never costs the sweep a trial: the study has it
            self.failed.setdefault(tracker.name, set()).add(rec.trial_id)
            self.out(f"{tracker.name}: trial {rec.trial_id} not logged ({_line(exc)}); --resume logs it")
            return False
        self.failed.get(tracker.name, set()).discard(rec.trial_id)
        return True

    def log_trial(self, trial_id: str) -> None:
        """Log a trial that finished in this session (its row settled) to every tracker; one that ran before
        (``--retry-errors``) replaces its earlier record. Unfinished (cut off by Ray): nothing."""
        try:
            rec = trial_record(self.store, trial_id)
        except Exception as exc:
            self.out(f"trackers: trial {trial_id} not logged (its results: {_line(exc)}); --resume logs it")
            return
        if rec is None:
            return
        for t in self.trackers:
            self._log(t, rec)

    def catch_up(self, skip: Iterable[str] = ()) -> int:
        """Log the study's finished trials that a tracker lacks (all of them, for a tracker new to the study);
        ``skip``: trial ids about to run again. Returns how many (trial, tracker) records were written."""
        trials = self.store.read_table("trials", ["trial_id", "status"])
        if trials is None or not trials.num_rows:
            return 0
        finished = {str(t) for t, s in zip(trials.column("trial_id").to_pylist(), trials.column("status").to_pylist(),
                                           strict=True) if s in FINISHED_STATUSES} - set(skip)
        missing = {t.name: sorted(finished - t.logged()) for t in self.trackers}
        wanted = sorted(set().union(*missing.values()))
        if not wanted:
            return 0
        tables = self.store.read_tables()
        rows = tables["trials"]
        done = dict.fromkeys(missing, 0)
        for tid in wanted:
            row_t = _one_trial(rows, tid)
            if row_t is None or not row_t.num_rows:
                continue
            rec = TrialRecord(tid, row_t.to_pylist()[0], _columns(_one_trial(tables["steps"], tid)),
                              _events(_one_trial(tables["events"], tid)))
            for t in self.trackers:
                if tid in missing[t.name] and self._log(t, rec):
                    done[t.name] += 1
        for name, n in done.items():
            if n:
                self.out(f"{name}: logged {n} trial(s) finished before this session")
        return sum(done.values())

    def unlogged_line(self) -> str | None:
        """One line naming the trackers that missed trials this session (None: none missed)."""
        missed = {k: v for k, v in self.failed.items() if v}
        if not missed:
            return None
        return ("not logged: " + ", ".join(f"{len(v)} trial(s) to {k}" for k, v in sorted(missed.items()))
                + "; --resume logs them")

    def callback(self) -> Any:
        """The Ray Tune callback (driver side) that logs each trial as it finishes; it goes after the study's
        own callback, which settles the trial's row first."""
        from ray.tune import Callback

        trackers = self

        class TrackerCallback(Callback):
            def _done(self, trial: Any) -> None:
                tid = trial.config.get("trial_id")
                if tid is not None:
                    trackers.log_trial(str(tid))

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self._done(trial)

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                self._done(trial)

        return TrackerCallback()


def open_trackers(targets: Sequence[Target], store: StudyStore, out: Printer, verbose: bool = False) -> Trackers:
    """Open each target (an MLflow experiment made, a TensorBoard folder made); errors: one-line
    :class:`ConfigError`. The packages were checked by :func:`require`."""
    opened: list[Tracker] = []
    for t in targets:
        if t.tracker == "mlflow":
            try:
                opened.append(MlflowTracker(t, store.root, store.name, verbose))
            except ConfigError:
                raise
            except Exception as exc:
                uri = mlflow_uri(t.where) if t.where is not None else "the study's SQLite store"
                raise ConfigError("--log", f"mlflow: cannot open {uri} ({_line(exc)})", show_value=False) from None
        else:
            opened.append(TensorBoardTracker(t, store.root, store.name))
    return Trackers(opened, store, out)


def discard_defaults(root: StudyPath) -> None:
    """Remove what the default targets made in a new study folder (its opening failed: the study is undone)."""
    if isinstance(root, ObjectPath):
        return
    for name in ("mlflow.db", "mlflow-artifacts", "tensorboard"):
        p = _local(root) / name
        if p.is_dir():
            rmtree(p)
        else:
            p.unlink(missing_ok=True)


__all__ = ["STEP_METRICS", "TRACKERS", "Target", "TrialRecord", "Trackers", "check_targets", "discard_defaults",
           "open_trackers", "parse_log", "require", "targets_from_record", "trial_record"]
