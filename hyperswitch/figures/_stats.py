"""Grouped means and spreads (vectorised with ``np.bincount``, fast on millions of rows) and axis binning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

SPREADS = {
    "std": "band: mean \u00b1 1 standard deviation over seeds",
    "ci95": "band: mean \u00b1 95% confidence interval (Student t) over seeds",
}
SPREAD_SHORT = {"std": "\u00b1 1 s.d.", "ci95": "95% CI"}
SPREAD_LONG = {"std": "\u00b1 1 standard deviation", "ci95": "95% confidence interval (Student t)"}


def check_spread(kind: str) -> str:
    if kind not in SPREADS:
        raise ValueError(f"spread must be one of {', '.join(SPREADS)}, but got {kind!r}")
    return kind


def t_quantile(dof: np.ndarray) -> np.ndarray:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (NaN where dof < 1)."""
    from scipy.stats import t

    dof = np.asarray(dof, dtype=float)
    out = np.full(dof.shape, np.nan)
    ok = dof >= 1
    out[ok] = t.ppf(0.975, dof[ok])
    return out


@dataclass(frozen=True)
class GroupStats:  # not a NamedTuple: its field ``count`` would hide tuple.count
    count: np.ndarray  # values per group
    mean: np.ndarray
    std: np.ndarray  # sample standard deviation (ddof 1); NaN where count < 2


def grouped_stats(codes: np.ndarray, values: np.ndarray, n_groups: int) -> GroupStats:
    """Count, mean and sample standard deviation of ``values`` per integer group code (two passes: stable)."""
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (codes >= 0)
    if not ok.all():
        codes, values = codes[ok], values[ok]
    count = np.bincount(codes, minlength=n_groups).astype(float)
    total = np.bincount(codes, weights=values, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
        dev = values - mean[codes]
        ss = np.bincount(codes, weights=dev * dev, minlength=n_groups)
        std = np.where(count > 1, np.sqrt(ss / np.where(count > 1, count - 1, 1)), np.nan)
    return GroupStats(count.astype(np.int64), mean, std)


def grouped_mean(codes: np.ndarray, values: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Count and mean of ``values`` per integer group code (NaN mean where a group has none); rows with a
    negative code or a non-finite value are left out. Half the work of :func:`grouped_stats`."""
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (codes >= 0)
    if not ok.all():
        codes, values = codes[ok], values[ok]
    count = np.bincount(codes, minlength=n_groups)
    total = np.bincount(codes, weights=values, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return count, mean


def keyed_reduce(keys: np.ndarray, values: np.ndarray, ufunc: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
    """``ufunc`` (np.maximum, np.minimum, np.add) of ``values`` per distinct key: (keys, reduced values).

    Linear in the rows when equal keys come in runs (a run's steps are stored together, its phases in
    order): runs of equal keys are reduced first, then the few run results per key.
    """
    keys = np.asarray(keys)
    values = np.asarray(values)
    if not len(keys):
        return keys[:0], values[:0]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    seg_keys, seg_vals = keys[starts], ufunc.reduceat(values, starts)
    order = np.argsort(seg_keys, kind="stable")
    seg_keys, seg_vals = seg_keys[order], seg_vals[order]
    first = np.flatnonzero(np.r_[True, seg_keys[1:] != seg_keys[:-1]])
    return seg_keys[first], ufunc.reduceat(seg_vals, first)


def band(stats: GroupStats, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of the spread band (NaN where a group has fewer than 2 values)."""
    check_spread(kind)
    if kind == "std":
        half = stats.std
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            half = t_quantile(stats.count - 1) * stats.std / np.sqrt(stats.count)
    return stats.mean - half, stats.mean + half


class Axis(NamedTuple):
    """How the values of one column map onto the axis of a figure."""

    codes: np.ndarray  # per row: index into labels, -1 where the value is missing
    labels: list[str]  # tick labels (a value, or a bin "a–b")
    centers: list[float] | None  # numeric position of each label (None: categorical axis)
    binned: bool
    log: bool


def fmt(v: float | int | str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer) or (isinstance(v, float) and float(v).is_integer() and abs(v) < 1e6):
        return str(int(v))
    return f"{float(v):.3g}"


def axis_for(series: pd.Series, max_values: int) -> Axis:
    """Distinct values (sorted) when there are at most ``max_values``; equal-width bins otherwise, on a log
    scale when the values are positive and span more than a factor of 20."""
    s = series
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        keys = s.astype("string")
        names = sorted(keys.dropna().unique().tolist(), key=_natural)
        pos = {k: i for i, k in enumerate(names)}
        codes = np.array([pos.get(k, -1) if isinstance(k, str) else -1 for k in keys.tolist()], dtype=np.int64)
        return Axis(codes, [str(u) for u in names], None, False, False)
    v = s.to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(v)
    uniq = np.unique(v[ok])
    if len(uniq) <= max_values:
        codes = np.full(len(v), -1, dtype=np.int64)
        codes[ok] = np.searchsorted(uniq, v[ok])
        log = bool(len(uniq) > 2 and uniq[0] > 0 and uniq[-1] / uniq[0] > 20)
        return Axis(codes, [fmt(u) for u in uniq], uniq.tolist(), False, log)
    lo, hi = float(uniq[0]), float(uniq[-1])
    log = lo > 0 and hi / lo > 20
    edges = np.geomspace(lo, hi, max_values + 1) if log else np.linspace(lo, hi, max_values + 1)
    codes = np.full(len(v), -1, dtype=np.int64)
    codes[ok] = np.clip(np.searchsorted(edges, v[ok], side="right") - 1, 0, max_values - 1)
    centers = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    labels = [f"{fmt(a)}\u2013{fmt(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return Axis(codes, labels, centers.tolist(), True, log)


def _natural(x: str) -> tuple[int, float, str]:
    try:
        return (0, float(x), "")
    except ValueError:
        return (1, 0.0, x)
