"""Cached, column-selective access to a study's tables for figures (dashboard and report).

Every read names the columns it needs (pyarrow ``columns=``), so a view of a 2-million-row ``steps.parquet``
reads only, say, ``trial_id, step, loss``. Results are cached per study *file version*: the (mtime, size) of
the compacted table and of every part file of the study, so a running sweep's new parts are seen at the next
read and an unchanged study is read once. Partial studies are read as ``open_study(path,
include_running=True)`` reads them: compacted rows plus part files (parts win).

A file that is missing where the study needs it, or that is not readable Parquet, raises
:class:`StudyReadError` with a message naming the file; callers show it and log it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperswitch.results.schema import EVENTS_SCHEMA, FINISHED_STATUSES, METRICS, STEPS_SCHEMA
from hyperswitch.results.store import StudyFileError, StudyStore, concat

log = logging.getLogger("hyperswitch.figures")

SCHEMAS = {"steps": STEPS_SCHEMA, "events": EVENTS_SCHEMA}


class StudyReadError(RuntimeError):
    """A study file is missing or unreadable; the message names the file and says what is wrong."""


class NotApplicable(ValueError):
    """A view does not apply to this study (the message says why, in plain words)."""


@dataclass(frozen=True)
class StudyInfo:
    """study.json plus the trials table (all columns: one row per trial, small)."""

    name: str
    path: Path
    meta: dict[str, Any]
    trials: pd.DataFrame  # every trial, running ones included

    @property
    def metric(self) -> str:
        return str(self.meta.get("metric", "val_accuracy"))

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", METRICS.get(self.metric, "max")))

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

    def finished(self) -> pd.DataFrame:
        t = self.trials
        return t[t["status"].isin(FINISHED_STATUSES)] if len(t) and "status" in t else t

    def n_total(self) -> int | None:
        v = self.meta.get("n_trials_total")
        return int(v) if isinstance(v, int | float) else None


# --- versions and the cache ---------------------------------------------------------------------------------

def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def study_version(root: Path, table: str) -> tuple[Any, ...]:
    """What identifies the current contents of one table of a study: the file and its parts."""
    parts: list[tuple[str, int, int]] = []
    try:
        with os.scandir(root / "parts") as it:
            for e in it:
                if e.name.endswith(".parquet") and (e.name.endswith(f".{table}.parquet")
                                                    or e.name.endswith(".trials.parquet")):
                    st = e.stat()
                    parts.append((e.name, st.st_mtime_ns, st.st_size))
    except FileNotFoundError:
        pass
    return (_stat(root / f"{table}.parquet"), tuple(sorted(parts)))


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


def cached(key: tuple[Any, ...], compute: Any) -> Any:
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

def _read(path: Path, columns: Sequence[str] | None, dictionary: bool = False) -> pa.Table | None:
    """One Parquet file through one open handle (writers replace files atomically), only ``columns`` that it
    has; ``trial_id`` dictionary-encoded when asked (a pandas categorical: cheap on millions of rows)."""
    try:
        with open(path, "rb") as f:
            pf = pq.ParquetFile(f, read_dictionary=[c for c in DICTIONARY_COLUMNS if c in (columns or ())]
                                if dictionary else None)
            cols = None
            if columns is not None:
                names = set(pf.schema_arrow.names)
                cols = [c for c in columns if c in names]
            return pf.read(columns=cols)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as exc:
        raise StudyReadError(f"{path}: not a readable Parquet file ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _part_ids(store: StudyStore, include_running: bool) -> list[str]:
    try:
        return store.part_trial_ids(finished_only=not include_running)
    except StudyFileError as exc:  # names the part file
        raise StudyReadError(str(exc)) from None
    except (pa.ArrowException, OSError) as exc:
        raise StudyReadError(f"{store.parts}: a part file is not readable Parquet ({_short(exc)})") from None


def read_table(root: str | Path, table: str, columns: Sequence[str] | None = None,
               include_running: bool = True) -> pa.Table | None:
    """One table of a study (compacted rows + part files, parts win), only ``columns`` (None: all)."""
    store = StudyStore(root)
    ids = _part_ids(store, include_running)
    wanted = columns
    if ids and columns is not None and "trial_id" not in columns:  # needed to let parts win over the table
        columns = [*columns, "trial_id"]
    parts, read_ids = [], []
    for tid in ids:  # parts before the compacted table: a compaction in between can only duplicate
        row = _read(store.part_path(tid, "trials"), columns if table == "trials" else ["trial_id"])
        if row is None:  # compacted (or discarded) meanwhile: the main table has it
            continue
        read_ids.append(tid)
        t = row if table == "trials" else _read(store.part_path(tid, table), columns, "trial_id" in (columns or ()))
        if t is not None:
            parts.append(t)
    main = _read(store.table_path(table), columns, table != "trials" and "trial_id" in (columns or ()))
    if main is not None and read_ids and "trial_id" in main.column_names:
        main = main.filter(pc.invert(pc.is_in(main.column("trial_id"), pa.array(read_ids))))
    out = concat([main, *parts])
    if out is not None and wanted is not None and list(wanted) != list(columns or []):
        out = out.select([c for c in wanted if c in out.column_names])
    return out


def study_info(root: str | Path) -> StudyInfo:
    """study.json and every trial (running included), cached per file version."""
    root = Path(root).resolve()
    meta_path = root / "study.json"
    key = ("info", str(root), _stat(meta_path), study_version(root, "trials"))

    def load() -> StudyInfo:
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise StudyReadError(f"{meta_path}: missing (not a study folder)") from None
        except (OSError, ValueError) as exc:
            raise StudyReadError(f"{meta_path}: not readable JSON ({_short(exc)})") from None
        table = read_table(root, "trials")
        trials = table.to_pandas() if table is not None else pd.DataFrame(
            {"trial_id": pd.Series(dtype=str), "config_id": pd.Series(dtype=str),
             "seed": pd.Series(dtype="int64"), "status": pd.Series(dtype=str)})
        if len(trials) and "config_id" in trials:
            trials = trials.sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
        return StudyInfo(name=str(meta.get("name", root.name)), path=root, meta=meta, trials=trials)

    return cached(key, load)


DICTIONARY_COLUMNS = frozenset({"trial_id", "optimizer", "kind"})


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


def study_table(root: str | Path, table: str, columns: Sequence[str]) -> pd.DataFrame:
    """``steps`` or ``events`` of a study with only ``columns`` (plus ``trial_id``).

    Each column is read once per study file version and cached on its own, so that views asking for
    different columns share the reads (``trial_id``, the costliest, is decoded once). ``trial_id``,
    ``optimizer`` and ``kind`` come back as pandas categoricals. A compacted study with trials but no such table
    raises :class:`StudyReadError`.
    """
    root = Path(root).resolve()
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


def _read_columns(root: Path, table: str, columns: list[str], version: tuple[Any, ...]) -> dict[str, Any]:
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


_PREFETCHING: set[tuple[Any, ...]] = set()


STEP_COLUMNS_BY_USE = (["step", "loss", "epoch"], ["val_accuracy", "val_loss", "elapsed_s", "lr"],
                       ["optimizer", "memory_bytes"])


_ACTIVITY = {"busy": 0, "last": 0.0}
_ACTIVITY_LOCK = threading.Lock()


def activity(busy: bool) -> None:
    """Views call this when they start (True) and end (False): prefetching waits for idle moments."""
    with _ACTIVITY_LOCK:
        _ACTIVITY["busy"] += 1 if busy else -1
        _ACTIVITY["last"] = time.monotonic()


def _wait_idle(quiet_s: float = 0.5, give_up_s: float = 120.0) -> None:
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        with _ACTIVITY_LOCK:
            idle = _ACTIVITY["busy"] <= 0 and time.monotonic() - _ACTIVITY["last"] > quiet_s
        if idle:
            return
        time.sleep(0.1)


def prefetch(root: str | Path) -> None:
    """Read a study's step and event columns in a background thread while no view is being computed, a few
    columns at a time, so that the study's next views find them cached (two CPU cores are easily shared badly:
    the page that is open comes first). Once per study file version."""
    root = Path(root).resolve()
    key = (str(root), study_version(root, "steps"), study_version(root, "events"))
    with _INFLIGHT_LOCK:
        if key in _PREFETCHING:
            return
        _PREFETCHING.add(key)

    def run() -> None:
        try:
            _wait_idle()
            study_table(root, "events", ["step", "kind"])
            for cols in STEP_COLUMNS_BY_USE:
                _wait_idle()
                study_table(root, "steps", cols)
        except Exception as exc:  # noqa: BLE001  (a view will read again and report it)
            log.debug("prefetch of %s failed: %s", root, exc)

    threading.Thread(target=run, name=f"prefetch-{root.name}", daemon=True).start()


def list_study_paths(storage: str | Path) -> list[Path]:
    root = Path(storage)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "study.json").is_file())


# --- helpers shared by figure modules ----------------------------------------------------------------------

SECOND_ORDER_FALLBACK = frozenset({"kfac", "foof", "shampoo", "ef", "ief", "sf"})
_second_order: frozenset[str] | None = None


def second_order_names() -> frozenset[str]:
    """Names of second-order optimizers, from the optimizer registry (imported once)."""
    global _second_order
    if _second_order is None:
        try:
            from hyperswitch.optim import registry

            _second_order = frozenset(registry.optimizer_names(order="second")) or SECOND_ORDER_FALLBACK
        except Exception:  # noqa: BLE001  (labels only: the known names are a fine fallback)
            _second_order = SECOND_ORDER_FALLBACK
    return _second_order


def _per_policy(trials: pd.DataFrame, label: Any) -> pd.Series:
    """``label(policy_type, names)`` per trial, computed once per distinct (policy_type, optimizers) pair (a
    study has a handful of policies and may have 10,000 trials)."""
    if not len(trials):
        return pd.Series([], dtype=object, index=trials.index)
    ptype = trials["policy_type"].astype(object).fillna("?").astype(str) if "policy_type" in trials else \
        pd.Series("?", index=trials.index)
    opts = trials["optimizers"].astype(object).fillna("").astype(str) if "optimizers" in trials else \
        pd.Series("", index=trials.index)
    codes, pairs = pd.MultiIndex.from_arrays([ptype.to_numpy(), opts.to_numpy()]).factorize()
    labels = np.array([label(p, [n for n in o.split(",") if n]) for p, o in pairs], dtype=object)
    return pd.Series(labels[codes], index=trials.index)


def _policy_label(p: str, names: list[str]) -> str:
    if p in ("switch", "mixer") and len(names) == 2:
        return f"{p}: {names[0]} \u2192 {names[1]}"
    if names:
        return f"{p}: {', '.join(names)}"
    return p


def policy_labels(trials: pd.DataFrame) -> pd.Series:
    """A readable label per trial: ``switch: adam -> sgdm``, ``mixer: kfac -> sgdm``, ``single: sgdm``."""
    return _per_policy(trials, _policy_label)


def policy_family(trials: pd.DataFrame) -> pd.Series:
    """first-order / second-order / switching (phase 1 -> phase 2) / mixer / iomt, per trial."""
    second = second_order_names()

    def family(p: str, names: list[str]) -> str:
        if p in ("mixer", "iomt"):
            return p
        if p == "switch":
            return "switch (second \u2192 first order)" if names and names[0] in second else "switch"
        if names:
            return "second-order" if all(n in second for n in names) else "first-order"
        return p

    return _per_policy(trials, family)


def warm_up() -> None:
    """Import what the figures import lazily (Optuna's importance evaluators, SciPy's t distribution, the
    optimizer registry, plotly.py's validators) so that a server's first page does not pay for it."""
    import optuna.importance  # noqa: F401
    import scipy.stats  # noqa: F401

    from hyperswitch.figures.parameter import importance_data

    second_order_names()
    tiny = pd.DataFrame({"trial_id": [f"t{i}" for i in range(60)], "config_id": [f"c{i:02d}" for i in range(60)],
                         "status": "completed", "a": np.arange(60.0), "b": np.arange(60.0) % 7,
                         "val_accuracy": np.arange(60.0) % 11})
    for method in ("ped-anova", "fanova"):  # their first call imports and compiles more than the import does
        importance_data(tiny, ["a", "b"], "val_accuracy", "max", method)
    # plotly.py reads its validator table (a large JSON) when the first figure is built: not in a view.
    from hyperswitch.figures._common import figure

    figure([{"type": t} for t in ("scatter", "scattergl", "bar", "box", "heatmap", "parcoords")], {}, "warm-up")


def nunique(series: pd.Series, dropna: bool = True) -> int:
    """Distinct values, also for columns of dicts or lists (struct parameters), compared by their text."""
    try:
        return int(series.nunique(dropna=dropna))
    except TypeError:
        return int(series.map(lambda v: None if v is None else repr(v)).nunique(dropna=dropna))


def numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def finite(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[np.isfinite(a)]
