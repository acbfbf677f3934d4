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


# --- comparisons of two arms: paired differences, rates, bimodal outcomes -------------------------------------

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal
BOOT_SEED = 0  # the percentile bootstrap's fixed generator seed: the same data give the same interval
BOOT_RESAMPLES = 10_000
PAIRED_METHODS = {"t": "Student t on the paired differences",
                  "bootstrap": f"percentile bootstrap of the mean paired difference ({BOOT_RESAMPLES} resamples, "
                               f"fixed seed {BOOT_SEED})"}
RATE_METHOD = "Wilson score interval"
RATE_DIFF_METHOD = "Newcombe's hybrid score interval (his method 10, from two Wilson intervals; independent arms)"


@dataclass(frozen=True)
class PairedDiff:
    """``arm - reference`` over the keys (seeds, or seed and setting) both have a finite value for."""

    n: int  # pairs
    mean: float  # mean paired difference (NaN without a pair)
    sd: float  # sample standard deviation of the differences (NaN under 2 pairs)
    low: float  # 95% interval of the mean difference (NaN under 2 pairs)
    high: float
    method: str  # "t" or "bootstrap" (PAIRED_METHODS)
    keys: list[object]  # the paired keys, sorted
    diffs: np.ndarray  # the paired differences, in the order of ``keys``
    dropped: list[tuple[object, str]]  # (key, why it is not a pair), sorted by key

    @property
    def excludes_zero(self) -> bool:
        """The interval lies wholly on one side of 0 (False when there is no interval)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high) and (self.low > 0 or self.high < 0))


def _key_order(k: object) -> tuple[str, str]:
    return (type(k).__name__, repr(k))


def paired_difference(arm: dict[object, float], reference: dict[object, float], method: str = "t",
                      arm_name: str = "arm", reference_name: str = "reference", level: float = 0.95,
                      resamples: int = BOOT_RESAMPLES, seed: int = BOOT_SEED) -> PairedDiff:
    """The mean of ``arm[k] - reference[k]`` over the keys both arms have with a finite value, and its
    ``level`` interval: Student t on the differences (``method="t"``: mean ± t(n-1) s/√n) or the percentile
    bootstrap of their mean (``"bootstrap"``, ``resamples`` resamples of the n differences from
    ``np.random.default_rng(seed)``). A key (a seed: same initialisation and batch order in both arms) that only one
    arm has, or that has no finite value in one of them (a diverged run), is not a pair: it is listed in
    ``dropped`` with the reason."""
    if method not in PAIRED_METHODS:
        raise ValueError(f"method must be one of {', '.join(PAIRED_METHODS)}, but got {method!r}")
    keys, diffs, dropped = [], [], []
    for k in sorted(set(arm) | set(reference), key=_key_order):
        if k not in reference:
            dropped.append((k, f"only in {arm_name}"))
            continue
        if k not in arm:
            dropped.append((k, f"only in {reference_name}"))
            continue
        a, b = float(arm[k]), float(reference[k])
        bad = [name for name, v in ((arm_name, a), (reference_name, b)) if not np.isfinite(v)]
        if bad:
            dropped.append((k, f"no finite value in {' and '.join(bad)}"))
            continue
        keys.append(k)
        diffs.append(a - b)
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    low = high = float("nan")
    if n > 1:
        if method == "t":
            from scipy.stats import t

            half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
            low, high = mean - half, mean + half
        else:
            rng = np.random.default_rng(seed)
            means = d[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
            low, high = (float(v) for v in np.percentile(means, [50 * (1 - level), 50 * (1 + level)]))
    return PairedDiff(n, mean, sd, low, high, method, keys, d, dropped)


class Rate(NamedTuple):
    k: int  # runs with the outcome
    n: int  # runs
    rate: float  # k / n (NaN when n = 0)
    low: float  # Wilson score interval
    high: float


def wilson(k: int, n: int, z: float = Z95) -> Rate:
    """``k`` of ``n`` with the Wilson score interval (95% for the default ``z``): it stays inside [0, 1] and is
    not empty at k = 0 or k = n, unlike the normal approximation."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, but got k={k}, n={n}")
    if n == 0:
        return Rate(0, 0, float("nan"), float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Rate(k, n, p, max(0.0, float(center - half)), min(1.0, float(center + half)))


class RateDiff(NamedTuple):
    diff: float  # rate of the arm - rate of the reference
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))


def rate_difference(arm: Rate, reference: Rate) -> RateDiff:
    """``arm.rate - reference.rate`` with Newcombe's hybrid score interval (Newcombe 1998, Statistics in Medicine
    17:873, method 10): the two Wilson intervals combined, ``d - sqrt((p1-l1)² + (u2-p2)²)`` to
    ``d + sqrt((u1-p1)² + (p2-l2)²)``. It treats the arms as independent samples (conservative when paired
    seeds' outcomes go together)."""
    if not arm.n or not reference.n:
        return RateDiff(float("nan"), float("nan"), float("nan"))
    d = arm.rate - reference.rate
    low = d - np.sqrt((arm.rate - arm.low) ** 2 + (reference.high - reference.rate) ** 2)
    high = d + np.sqrt((arm.high - arm.rate) ** 2 + (reference.rate - reference.low) ** 2)
    return RateDiff(float(d), float(low), float(high))


class Outcome(NamedTuple):
    """An arm's runs split by the bimodal rule (:func:`split_outcome`)."""

    n: int  # runs
    failed: Rate  # runs that diverged or have no finite value, with the Wilson interval
    values: np.ndarray  # the finite values of the others
    mean: float  # over ``values`` (NaN when none)
    sd: float  # sample s.d. over ``values`` (NaN under 2)

    @property
    def bimodal(self) -> bool:
        return self.failed.k > 0


def split_outcome(values: np.ndarray, failed: np.ndarray | None = None) -> Outcome:
    """The bimodal rule: a run fails when it diverged (``failed``) or has no finite value; an arm with at least
    one failed run is bimodal (a mean ± s.d. over all its runs would mix two populations), and is reported as
    the failure rate (Wilson interval) and, separately, the mean ± s.d. over the runs that did not fail. An arm
    without a failure is reported by its mean ± s.d. alone (its failure rate is 0 of n)."""
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v)
    if failed is not None:
        bad |= np.asarray(failed, dtype=bool)
    ok = v[~bad]
    mean = float(ok.mean()) if len(ok) else float("nan")
    sd = float(ok.std(ddof=1)) if len(ok) > 1 else float("nan")
    return Outcome(len(v), wilson(int(bad.sum()), len(v)), ok, mean, sd)
