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
from hyperswitch.results.store import StudyStore, concat

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
        return [n for n in self.parameters if self.trials[n].nunique(dropna=True) > 1]

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
    def __init__(self, size: int) -> None:
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_CACHE = _LRU(48)


def clear_cache() -> None:
    _CACHE.clear()


def cached(key: tuple[Any, ...], compute: Any) -> Any:
    """A value computed once per key (keys carry the study file versions they depend on)."""
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    value = compute()
    _CACHE.put(key, value)
    return value


# --- reading ------------------------------------------------------------------------------------------------

def _read(path: Path, columns: Sequence[str] | None, dictionary: bool = False) -> pa.Table | None:
    """One Parquet file through one open handle (writers replace files atomically), only ``columns`` that it
    has; ``trial_id`` dictionary-encoded when asked (a pandas categorical: cheap on millions of rows)."""
    try:
        with open(path, "rb") as f:
            pf = pq.ParquetFile(f, read_dictionary=["trial_id"] if dictionary else None)
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
    except (pa.ArrowException, OSError) as exc:
        raise StudyReadError(f"{store.parts}: a part file is not readable Parquet ({_short(exc)})") from None


def read_table(root: str | Path, table: str, columns: Sequence[str] | None = None,
               include_running: bool = True) -> pa.Table | None:
    """One table of a study (compacted rows + part files, parts win), only ``columns`` (None: all)."""
    store = StudyStore(root)
    ids = _part_ids(store, include_running)
    parts, read_ids = [], []
    for tid in ids:  # parts before the compacted table: a compaction in between can only duplicate
        row = _read(store.part_path(tid, "trials"), columns if table == "trials" else ["trial_id"])
        if row is None:  # compacted (or discarded) meanwhile: the main table has it
            continue
        read_ids.append(tid)
        t = row if table == "trials" else _read(store.part_path(tid, table), columns, table != "trials")
        if t is not None:
            parts.append(t)
    main = _read(store.table_path(table), columns, table != "trials")
    if main is not None and read_ids and "trial_id" in main.column_names:
        main = main.filter(pc.invert(pc.is_in(main.column("trial_id"), pa.array(read_ids))))
    return concat([main, *parts])


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


def study_table(root: str | Path, table: str, columns: Sequence[str]) -> pd.DataFrame:
    """``steps`` or ``events`` of a study with only ``columns`` (plus ``trial_id``), cached per version.

    ``trial_id`` comes back as a pandas categorical (cheap grouping on millions of rows). A study with
    trials whose steps/events file is missing raises :class:`StudyReadError`.
    """
    root = Path(root).resolve()
    cols = tuple(dict.fromkeys(["trial_id", *columns]))
    key = ("table", str(root), table, cols, study_version(root, table))

    def load() -> pd.DataFrame:
        t = read_table(root, table, list(cols))
        if t is None:
            info = study_info(root)
            if len(info.trials) and (root / "trials.parquet").exists():
                raise StudyReadError(f"{root / (table + '.parquet')}: missing (the study has {len(info.trials)} "
                                     f"trials but no {table} table)")
            t = SCHEMAS[table].empty_table().select(list(cols))
        missing = [c for c in cols if c not in t.column_names]
        if missing:
            raise StudyReadError(f"{root / (table + '.parquet')}: lacks column(s) {', '.join(missing)}")
        t = t.select(list(cols))
        df = t.to_pandas()
        df["trial_id"] = df["trial_id"].astype("category")
        return df

    return cached(key, load)


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


def policy_labels(trials: pd.DataFrame) -> pd.Series:
    """A readable label per trial: ``switch: adam -> sgdm``, ``mixer: kfac -> sgdm``, ``single: sgdm``."""
    if not len(trials):
        return pd.Series([], dtype=str, index=trials.index)
    ptype = trials["policy_type"].fillna("?").astype(str) if "policy_type" in trials else pd.Series(
        "?", index=trials.index)
    opts = trials["optimizers"].fillna("").astype(str) if "optimizers" in trials else pd.Series(
        "", index=trials.index)
    labels = []
    for p, o in zip(ptype, opts, strict=True):
        names = [n for n in o.split(",") if n]
        if p in ("switch", "mixer") and len(names) == 2:
            labels.append(f"{p}: {names[0]} \u2192 {names[1]}")
        elif names:
            labels.append(f"{p}: {', '.join(names)}")
        else:
            labels.append(p)
    return pd.Series(labels, index=trials.index)


def policy_family(trials: pd.DataFrame) -> pd.Series:
    """first-order / second-order / switching (phase 1 -> phase 2) / mixer / iomt, per trial."""
    second = second_order_names()
    out = []
    ptype = trials["policy_type"].fillna("?").astype(str) if "policy_type" in trials else ["?"] * len(trials)
    opts = trials["optimizers"].fillna("").astype(str) if "optimizers" in trials else [""] * len(trials)
    for p, o in zip(ptype, opts, strict=True):
        names = [n for n in o.split(",") if n]
        if p in ("mixer", "iomt"):
            out.append(p)
        elif p == "switch":
            out.append("switch (second \u2192 first order)" if names and names[0] in second else "switch")
        elif names:
            out.append("second-order" if all(n in second for n in names) else "first-order")
        else:
            out.append(p)
    return pd.Series(out, index=trials.index)


def numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def finite(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[np.isfinite(a)]
