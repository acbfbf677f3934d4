"""Cached, column-selective reads of a study's tables (the dashboard and the report read through these).

Every read names the columns it needs (pyarrow ``columns=``), so a view of a 2-million-row ``steps.parquet``
reads only, say, ``trial_id, step, loss``. Results are cached per study *file version*: the (mtime, size) of
the compacted table and of every part file of the study, so a running sweep's new parts are seen at the next
read and an unchanged study is read once. Partial studies are read as ``open_study(path,
include_running=True)`` reads them (:meth:`StudyStore.read_table`: compacted rows plus part files, parts win).

On an object store the versions come from the objects' metadata (one listing of ``parts/``), and a version with
an object younger than :data:`~hyperswitch.results.fs.RECENT_S` carries the current second
(:func:`~hyperswitch.results.fs.recent_marker`): the store's times are whole seconds.

A file that is missing where the study needs it, or that is not readable Parquet, raises
:class:`StudyReadError` with a message naming the file; callers show it and log it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hyperswitch.results.distributions import study_distributions
from hyperswitch.results.fs import ObjectPath, StudyPath, file_version, list_versions, recent_marker, study_path
from hyperswitch.results.schema import (
    EVENTS_SCHEMA,
    FINISHED_STATUSES,
    STEPS_SCHEMA,
    meta_metric,
    meta_mode,
)
from hyperswitch.results.store import DICTIONARY_COLUMNS, StudyFileError, StudyStore

SCHEMAS = {"steps": STEPS_SCHEMA, "events": EVENTS_SCHEMA}


class StudyReadError(RuntimeError):
    """A study file is missing or unreadable; the message names the file and says what is wrong."""


def nunique(series: pd.Series, dropna: bool = True) -> int:
    """Distinct values, also for columns of dicts or lists (struct parameters), compared by their text."""
    try:
        return int(series.nunique(dropna=dropna))
    except TypeError:
        return int(series.map(lambda v: None if v is None else repr(v)).nunique(dropna=dropna))


@dataclass(frozen=True)
class StudyInfo:
    """study.json plus the trials table (all columns: one row per trial, small)."""

    name: str
    path: StudyPath
    meta: dict[str, Any]
    trials: pd.DataFrame  # every trial, running ones included

    @property
    def metric(self) -> str:
        return meta_metric(self.meta)

    @property
    def mode(self) -> str:
        return meta_mode(self.meta)

    @property
    def objectives(self) -> tuple[list[str], list[str]]:
        """(metrics, modes): one of each, or a multi-objective study's lists (``metric`` is the first)."""
        from hyperswitch.results.objectives import study_objectives

        return study_objectives(self.meta)

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "?"))

    @property
    def parameters(self) -> list[str]:
        """Parameter columns present in the trials table, in the space's order."""
        names = list(self.meta.get("parameter_names", []))
        return [n for n in names if n in self.trials.columns]

    @property
    def varied_parameters(self) -> list[str]:
        """Parameters that take more than one value among the trials (the ones worth plotting against)."""
        return [n for n in self.parameters if nunique(self.trials[n]) > 1]

    @property
    def distributions(self) -> dict[str, dict[str, Any]]:
        """The space's parameter distributions (see :func:`hyperswitch.results.study_distributions`)."""
        return study_distributions(self.meta)

    def finished(self) -> pd.DataFrame:
        t = self.trials
        return t[t["status"].isin(FINISHED_STATUSES)] if len(t) and "status" in t else t

    def n_total(self) -> int | None:
        v = self.meta.get("n_trials_total")
        return int(v) if isinstance(v, int | float) else None


# --- versions and the cache ---------------------------------------------------------------------------------

def _stat(path: StudyPath) -> tuple[int, int] | None:
    return file_version(path)


def study_version(root: StudyPath, table: str) -> tuple[Any, ...]:
    """What identifies the current contents of one table of a study: the file and its parts."""
    parts = [(name, mtime, size) for name, mtime, size in list_versions(root / "parts")
             if name.endswith(f".{table}.parquet") or name.endswith(".trials.parquet")]
    main = _stat(root / f"{table}.parquet")
    recent = recent_marker(root, [m for _, m, _ in parts] + ([main[0]] if main else []))
    return (main, tuple(sorted(parts)), *recent)


class _LRU:
    """A thread-safe least-recently-used cache bounded by entries and by bytes (numpy/pandas values)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size, self.max_bytes = size, max_bytes
        self.data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.lock = threading.Lock()
        self.bytes = 0

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key][0]
        return None

    def put(self, key: Any, value: Any) -> None:
        n = _nbytes(value)
        with self.lock:
            if key in self.data:
                self.bytes -= self.data.pop(key)[1]
            self.data[key] = (value, n)
            self.bytes += n
            while len(self.data) > 1 and (len(self.data) > self.size or self.bytes > self.max_bytes):
                self.bytes -= self.data.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.bytes = 0


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, pd.DataFrame | pd.Series):
        return int(value.memory_usage(deep=False).sum()) if isinstance(value, pd.DataFrame) else int(value.nbytes)
    if isinstance(value, pd.Categorical):
        return int(value.codes.nbytes)
    if isinstance(value, StudyInfo):
        return _nbytes(value.trials)
    return 1024


_CACHE = _LRU(size=256, max_bytes=int(os.environ.get("HYPERSWITCH_CACHE_MB", "1536")) * 2**20)
_INFLIGHT: dict[Any, threading.Lock] = {}
_INFLIGHT_LOCK = threading.Lock()


def clear_cache() -> None:
    _CACHE.clear()


def cached(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """A value computed once per key (keys carry the study file versions they depend on); concurrent callers
    of the same key wait for one computation."""
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with _INFLIGHT_LOCK:
        lock = _INFLIGHT.setdefault(key, threading.Lock())
    with lock:
        hit = _CACHE.get(key)
        if hit is None:
            hit = compute()
            if hit is not None:
                _CACHE.put(key, hit)
    with _INFLIGHT_LOCK:
        _INFLIGHT.pop(key, None)
    return hit


# --- reading ------------------------------------------------------------------------------------------------

def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def read_table(root: str | Path | ObjectPath, table: str, columns: Sequence[str] | None = None,
               include_running: bool = True) -> pa.Table | None:
    """One table of a study (compacted rows + part files, parts win), only ``columns`` (None: all), with
    ``trial_id``/``optimizer``/``kind`` dictionary-encoded; errors as :class:`StudyReadError`. Not cached."""
    store = StudyStore(root)
    try:
        ids = store.part_trial_ids(finished_only=not include_running)
    except StudyFileError as exc:  # names the part file
        raise StudyReadError(str(exc)) from None
    except (pa.ArrowException, OSError) as exc:
        raise StudyReadError(f"{store.parts}: a part file is not readable Parquet ({_short(exc)})") from None
    try:
        return store.read_table(table, columns, dictionary=True, ids=ids)
    except StudyFileError as exc:  # names the file
        raise StudyReadError(str(exc)) from None


def study_info(root: str | Path | ObjectPath) -> StudyInfo:
    """study.json and every trial (running included), cached per file version."""
    root = study_path(root)
    meta_path = root / "study.json"
    meta_version = _stat(meta_path)
    key = ("info", str(root), meta_version, study_version(root, "trials"),
           *recent_marker(root, [meta_version[0]] if meta_version else []))

    def load() -> StudyInfo:
        try:
            meta = StudyStore(root).read_meta()
        except FileNotFoundError:
            raise StudyReadError(f"{meta_path}: missing (not a study folder)") from None
        except StudyFileError as exc:
            raise StudyReadError(str(exc)) from None
        table = read_table(root, "trials")
        trials = table.to_pandas() if table is not None else pd.DataFrame(
            {"trial_id": pd.Series(dtype=str), "config_id": pd.Series(dtype=str),
             "seed": pd.Series(dtype="int64"), "status": pd.Series(dtype=str)})
        if len(trials) and "config_id" in trials:
            trials = trials.sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
        return StudyInfo(name=str(meta.get("name", root.name)), path=root, meta=meta, trials=trials)

    return cached(key, load)


def _column_values(col: pa.ChunkedArray) -> Any:
    """One column as numpy (numbers; NaN for nulls) or a pandas Categorical (dictionary-encoded strings)."""
    if pa.types.is_dictionary(col.type):
        arr = col.unify_dictionaries().combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        return pd.Categorical.from_codes(codes, categories=pd.Index(arr.dictionary.to_pylist(), dtype=object),
                                         validate=False)
    if pa.types.is_integer(col.type) and col.null_count:
        return pc.cast(col, pa.float64()).to_numpy()
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy()
    return np.asarray(col.to_pylist(), dtype=object)


def study_table(root: str | Path | ObjectPath, table: str, columns: Sequence[str]) -> pd.DataFrame:
    """``steps`` or ``events`` of a study with only ``columns`` (plus ``trial_id``).

    Each column is read once per study file version and cached on its own, so that views asking for
    different columns share the reads (``trial_id``, the costliest, is decoded once). ``trial_id``,
    ``optimizer`` and ``kind`` come back as pandas categoricals. A compacted study with trials but no such table
    raises :class:`StudyReadError`.
    """
    root = study_path(root)
    cols = list(dict.fromkeys(["trial_id", *columns]))
    version = study_version(root, table)
    got = {c: _CACHE.get(("col", str(root), table, c, version)) for c in cols}
    missing = [c for c in cols if got[c] is None]
    if missing:
        with _INFLIGHT_LOCK:
            lock = _INFLIGHT.setdefault(("cols", str(root), table), threading.Lock())
        with lock:  # one read of a study's table at a time: a second caller finds the columns cached
            got.update({c: _CACHE.get(("col", str(root), table, c, version)) for c in missing})
            missing = [c for c in cols if got[c] is None]
            if missing:
                got.update(_read_columns(root, table, missing, version))
    return pd.DataFrame({c: got[c] for c in cols}, copy=False)


def _read_columns(root: StudyPath, table: str, columns: list[str], version: tuple[Any, ...]) -> dict[str, Any]:
    t = read_table(root, table, columns)
    if t is None:
        info = study_info(root)
        if len(info.trials) and (root / "trials.parquet").exists():
            raise StudyReadError(f"{root / (table + '.parquet')}: missing (the study has {len(info.trials)} "
                                 f"trials but no {table} table)")
        t = SCHEMAS[table].empty_table()
    absent = [c for c in columns if c not in t.column_names]
    if absent:
        raise StudyReadError(f"{root / (table + '.parquet')}: lacks column(s) {', '.join(absent)}")
    out = {}
    for c in columns:
        col = t.column(c)
        if c in DICTIONARY_COLUMNS and not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        out[c] = _column_values(col)
    if study_version(root, table) == version:  # files unchanged while reading: the columns line up
        for c, v in out.items():
            _CACHE.put(("col", str(root), table, c, version), v)
    return out
