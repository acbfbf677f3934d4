"""Choosing a study's best configurations from its trials (pure: a DataFrame in, ranked choices out), as
``hyperswitch export`` and the sweep's closing summary do; and matching a table's value to a parameter's value.

The rules (also in the package docstring):

- A trial *counts* for its configuration when it finished with status ``completed`` and a finite value of the
  metric. A finished trial that diverged, errored, was stopped by the scheduler (its value comes from a shorter
  run) or has no value (NaN, e.g. ``time_to_target_s`` when the target was never reached) is a *failed seed*.
  Running trials are ignored.
- ``mean`` (default): a configuration is eligible when it has no failed seed. Among the eligible ones only those
  with the most counted seeds compete, so a configuration whose other seeds have not run yet cannot win on one
  lucky seed. They are ranked by the mean of the metric over their seeds (better first by the metric's mode),
  ties by the smaller standard deviation, then by ``config_id``.
- ``best``: the single completed trial with the best finite value; ``top N`` gives the best trials of N different
  configurations (ties by ``config_id``, then seed). The provenance still reports the configuration's mean.
- ``pareto``: among the configurations eligible for ``mean``, with a finite mean ``wall_time_s``: the fastest
  one's mean wall time ``t_min`` sets the budget ``max_time_ratio * t_min``; the configurations within the
  budget are ranked by mean metric (ties by the smaller mean wall time, then ``config_id``). The first one is on
  the accuracy-vs-time Pareto front: anything faster and at least as good would be within the budget and rank
  before it.
- ``pareto`` on a multi-objective study (``objectives``: its (metric, mode) pairs): the configurations eligible
  as for ``mean`` (every finished seed completed with a finite value of every objective, the most seeds) whose
  seeds' means no other eligible configuration dominates: the whole front, ranked by the first objective (ties by
  the next, then ``config_id``). No time budget applies.
- ``constraints`` (a constrained study's): every rule chooses only among *feasible* configurations: those whose
  seeds' mean of each constrained metric (finished seeds with a finite value, :func:`seed_mean`, as the sampler
  was told) satisfies every constraint; the others are left out with a note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from hyperswitch.errors import ConfigError
from hyperswitch.results.objectives import Constraint, feasible, pareto_front
from hyperswitch.results.schema import COMPLETED, FINISHED_STATUSES, METRICS

SELECTIONS = ("mean", "best", "pareto")
TIME_METRIC = "wall_time_s"


@dataclass(frozen=True)
class Choice:
    """One configuration chosen for export."""

    rank: int
    config_id: str
    trial_ids: tuple[str, ...]  # the seeds that count, by seed
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # the metric of each of those trials
    mean: float
    std: float | None  # sample standard deviation (ddof 1); None for a single seed
    trial_id: str | None = None  # ``best``: the chosen trial
    value: float | None = None  # ``best``: its value
    wall_time_mean: float | None = None
    time_ratio: float | None = None  # ``pareto``: mean wall time / the fastest eligible configuration's
    # ``pareto`` of several objectives: (metric, mean, std, per-seed values) of each objective, in order
    objectives: tuple[tuple[str, float, float | None, tuple[float, ...]], ...] = ()

    @property
    def n(self) -> int:
        return len(self.trial_ids)


@dataclass
class Selection:
    choices: list[Choice]
    notes: list[str] = field(default_factory=list)
    front_size: int | None = None  # ``pareto`` of several objectives: configurations on the front


def finite_values(values: Iterable[Any]) -> list[float]:
    """The values that are finite numbers, as floats, in their order (None, NaN, inf and non-numbers left out)."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def seed_mean(values: Iterable[Any]) -> float | None:
    """A configuration's value over its seeds as the sweep's sampler is told it (and Optuna exports carry it): the
    mean of the finite values, by ``math.fsum`` (the same float whatever order the seeds finished in); None when
    no seed gave one. Export's choice is stricter (``select_configurations``: completed seeds only)."""
    vals = finite_values(values)
    return math.fsum(vals) / len(vals) if vals else None


def same_value(a: Any, b: Any) -> bool:
    """Equal parameter values; numbers compared as floats (Parquet may have widened an int choice to a float)."""
    def num(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    a = a.item() if hasattr(a, "item") else a
    b = b.item() if hasattr(b, "item") else b
    if num(a) and num(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def check_metric(metric: str, mode: str | None) -> str:
    """The mode for ``metric``: its direction in the results schema; a contradicting ``mode`` is an error."""
    if metric not in METRICS:
        raise ConfigError("--metric", f"is not a results metric (one of: {', '.join(METRICS)})", metric)
    if mode is not None and mode not in ("max", "min"):
        raise ConfigError("--mode", "must be max or min", mode)
    right = METRICS[metric]
    if mode is not None and mode != right:
        raise ConfigError("--mode", f"{metric} is better when it is {'higher' if right == 'max' else 'lower'}; "
                          f"its mode is {right}", mode)
    return right


def _numeric(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").astype(float).to_numpy()


def _config_table(trials: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(counted trials with a float ``_v`` column, per-configuration table: n_counted, n_failed, mean, std)."""
    done = trials[trials["status"].isin(FINISHED_STATUSES)].copy()
    done["_v"] = _numeric(done[metric]) if metric in done else np.nan
    done["_ok"] = (done["status"] == COMPLETED).to_numpy() & np.isfinite(done["_v"].to_numpy())
    done["_t"] = _numeric(done[TIME_METRIC]) if TIME_METRIC in done else np.nan
    counted = done[done["_ok"]]
    per = done.groupby("config_id", sort=True).agg(n_finished=("_ok", "size"), n_counted=("_ok", "sum"))
    per["n_failed"] = per["n_finished"] - per["n_counted"]
    stats = counted.groupby("config_id", sort=True).agg(mean=("_v", "mean"), std=("_v", "std"),
                                                         wall=("_t", "mean"))
    return counted, per.join(stats)


def _choice(rank: int, cid: str, counted: pd.DataFrame, row: pd.Series, **extra: object) -> Choice:
    mine = counted[counted["config_id"] == cid].sort_values("seed", kind="stable")
    std = float(row["std"]) if math.isfinite(float(row["std"])) else None
    wall = float(row["wall"]) if math.isfinite(float(row["wall"])) else None
    return Choice(rank=rank, config_id=str(cid), trial_ids=tuple(str(t) for t in mine["trial_id"]),
                  seeds=tuple(int(s) for s in mine["seed"]), values=tuple(float(v) for v in mine["_v"]),
                  mean=float(row["mean"]), std=std, wall_time_mean=wall, **extra)  # type: ignore[arg-type]


def feasible_configurations(trials: pd.DataFrame, constraints: Sequence[Constraint]) -> dict[str, bool]:
    """config id -> whether its seeds' means (finished trials, finite values) satisfy every constraint."""
    done = trials[trials["status"].isin(FINISHED_STATUSES)]
    out: dict[str, bool] = {}
    for cid, group in done.groupby("config_id", sort=True):
        means = {c.metric: seed_mean(group[c.metric]) if c.metric in group else None for c in constraints}
        out[str(cid)] = feasible(constraints, means)
    return out


def select_configurations(trials: pd.DataFrame, metric: str, mode: str, select: str = "mean", top: int = 1,
                          max_time_ratio: float | None = None, *, objectives: Sequence[tuple[str, str]] = (),
                          constraints: Sequence[Constraint] = ()) -> Selection:
    """Rank the study's configurations by the rule ``select`` and return the ``top`` first (fewer when fewer
    qualify, with a note). ``objectives``: a multi-objective study's (metric, mode) pairs (``pareto`` then gives its
    front); ``constraints``: only feasible configurations compete. Raises ``ConfigError`` when none qualifies."""
    if select not in SELECTIONS:
        raise ConfigError("--select", f"must be one of {', '.join(SELECTIONS)}", select)
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise ConfigError("--top", "must be an integer >= 1", top)
    several = len(objectives) > 1
    if select == "pareto" and several:
        if max_time_ratio is not None:
            raise ConfigError("--max-time-ratio", "applies to a single-objective study; --select pareto on a "
                              "multi-objective study exports its Pareto front", max_time_ratio)
    elif select == "pareto":
        if max_time_ratio is None:
            raise ConfigError("--max-time-ratio", "is required with --select pareto (e.g. 1.5: at most 1.5 times "
                              "the fastest configuration's mean wall time)", None)
        if isinstance(max_time_ratio, bool) or not isinstance(max_time_ratio, int | float) \
                or not math.isfinite(max_time_ratio) or max_time_ratio < 1:
            raise ConfigError("--max-time-ratio", "must be a number >= 1", max_time_ratio)
    elif max_time_ratio is not None:
        raise ConfigError("--max-time-ratio", "applies only with --select pareto", max_time_ratio)
    if not len(trials) or not trials["status"].isin(FINISHED_STATUSES).any():
        raise ConfigError("STUDY", "has no finished trial yet; nothing to export", show_value=False)
    notes: list[str] = []
    if constraints:
        ok = feasible_configurations(trials, constraints)
        out = sorted(c for c, f in ok.items() if not f)
        rules = "; ".join(c.text for c in constraints)
        if out:
            listed = ", ".join(out[:5]) + (", ..." if len(out) > 5 else "")
            notes.append(f"{len(out)} configuration(s) left out: infeasible by the study's constraints ({rules}) by "
                         f"their seeds' means ({listed})")
        if not any(ok.values()):
            raise ConfigError("--select", f"no configuration satisfies the study's constraints ({rules}) by its "
                              "seeds' means; nothing to export", select)
        trials = trials[trials["config_id"].astype(str).isin([c for c, f in ok.items() if f])]
    if select == "pareto" and several:
        return _front(trials, list(objectives), top, notes)

    counted, per = _config_table(trials, metric)
    sign = -1.0 if mode == "max" else 1.0
    if select == "best":
        if not len(counted):
            raise ConfigError("--metric", f"no completed trial has a finite value of {metric}; nothing to export",
                              metric)
        order = counted.assign(_key=sign * counted["_v"]).sort_values(["_key", "config_id", "seed"], kind="stable")
        firsts = order.drop_duplicates("config_id").head(top)
        choices = [_choice(k, str(r["config_id"]), counted, per.loc[r["config_id"]], trial_id=str(r["trial_id"]),
                           value=float(r["_v"]))
                   for k, (_, r) in enumerate(firsts.iterrows(), start=1)]
    else:
        eligible = per[(per["n_failed"] == 0) & (per["n_counted"] > 0)]
        failed = per[per["n_failed"] > 0]
        if len(failed):
            listed = ", ".join(map(str, failed.index[:5])) + (", ..." if len(failed) > 5 else "")
            notes.append(f"{len(failed)} configuration(s) left out: a seed diverged, errored, was stopped early or "
                         f"has no {metric} ({listed})")
        if not len(eligible):
            raise ConfigError("--select", f"no configuration has all its finished seeds completed with a finite "
                              f"{metric}; --select best exports the best single trial", select)
        eligible = _most_seeds(eligible, notes)
        # means equal up to float round-off (the same values summed in another order) are ties
        table = eligible.assign(_key=np.round(sign * eligible["mean"].to_numpy(float), 12),
                                _std=np.round(eligible["std"].fillna(np.inf).to_numpy(float), 12),
                                _cid=eligible.index.astype(str))
        if select == "mean":
            table = table.sort_values(["_key", "_std", "_cid"], kind="stable")
            choices = [_choice(k, str(cid), counted, row) for k, (cid, row) in
                       enumerate(table.head(top).iterrows(), start=1)]
        else:
            timed = table[np.isfinite(table["wall"].to_numpy(float))]
            if not len(timed):
                raise ConfigError("--select", f"no eligible configuration has a {TIME_METRIC}", select)
            fastest = float(timed["wall"].min())
            assert max_time_ratio is not None  # --select pareto: checked above (ConfigError when missing)
            budget = max_time_ratio * fastest
            within = timed[timed["wall"] <= budget * (1 + 1e-12)]
            within = within.sort_values(["_key", "wall", "_cid"], kind="stable")
            notes.append(f"time budget {max_time_ratio:g} x {fastest:.4g} s (fastest mean {TIME_METRIC}) = "
                         f"{budget:.4g} s: {len(within)} of {len(timed)} configuration(s) within it")
            choices = [_choice(k, str(cid), counted, row, time_ratio=float(row["wall"]) / fastest if fastest > 0
                               else 1.0)
                       for k, (cid, row) in enumerate(within.head(top).iterrows(), start=1)]
    if len(choices) < top:
        notes.append(f"only {len(choices)} configuration(s) qualify; --top {top} asked for more")
    return Selection(choices, notes)


def _front(trials: pd.DataFrame, objectives: list[tuple[str, str]], top: int, notes: list[str]) -> Selection:
    """``pareto`` of several objectives: the eligible configurations on the front of their seeds' means."""
    tables = [_config_table(trials, m) for m, _ in objectives]
    per = tables[0][1][["n_finished"]].copy()
    failed = np.zeros(len(per), dtype=bool)
    counted_n = None
    for (m, _), (_, p) in zip(objectives, tables, strict=True):
        p = p.reindex(per.index)
        failed |= (p["n_failed"].to_numpy() > 0)
        counted_n = p["n_counted"].to_numpy() if counted_n is None else np.minimum(counted_n, p["n_counted"])
        per[f"mean:{m}"] = p["mean"].to_numpy(float)
    per["n_counted"] = counted_n
    names = ", ".join(m for m, _ in objectives)
    if failed.any():
        listed = ", ".join(map(str, per.index[failed][:5])) + (", ..." if failed.sum() > 5 else "")
        notes.append(f"{int(failed.sum())} configuration(s) left out: a seed diverged, errored, was stopped early or "
                     f"has no value of {names} ({listed})")
    eligible = per[~failed & (per["n_counted"] > 0)]
    if not len(eligible):
        raise ConfigError("--select", f"no configuration has all its finished seeds completed with finite {names}",
                          "pareto")
    eligible = _most_seeds(eligible, notes)
    points = eligible[[f"mean:{m}" for m, _ in objectives]].to_numpy(float)
    on = pareto_front(points, [d for _, d in objectives])
    signs = [-1.0 if d == "max" else 1.0 for _, d in objectives]
    order = sorted(on, key=lambda i: (*(round(s * points[i, j], 12) for j, s in enumerate(signs)),
                                      str(eligible.index[i])))
    notes.append(f"Pareto front of {names} (seeds' means): {len(on)} of {len(eligible)} configuration(s)")
    choices = []
    for rank, i in enumerate(order[:top], start=1):
        cid = str(eligible.index[i])
        parts = []
        for (m, _), (counted, p) in zip(objectives, tables, strict=True):
            mine = counted[counted["config_id"] == cid].sort_values("seed", kind="stable")
            std = float(p["std"].get(cid, np.nan))
            parts.append((m, float(p["mean"].get(cid, np.nan)), std if math.isfinite(std) else None,
                          tuple(float(v) for v in mine["_v"])))
        row = tables[0][1].loc[cid]
        assert isinstance(row, pd.Series)  # config ids are unique in the per-configuration table
        choices.append(replace(_choice(rank, cid, tables[0][0], row), objectives=tuple(parts)))
    if len(choices) < len(on):
        notes.append(f"--top {top}: the first {len(choices)} of the front's {len(on)} by {objectives[0][0]}")
    return Selection(choices, notes, front_size=len(on))


def _most_seeds(eligible: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The configurations with the most finished seeds (``n_counted``): others are not compared yet (a note)."""
    most = int(eligible["n_counted"].max())
    fewer = eligible[eligible["n_counted"] < most]
    if len(fewer):
        notes.append(f"{len(fewer)} configuration(s) with fewer than {most} finished seeds not compared (their "
                     "other seeds have not run)")
    return eligible[eligible["n_counted"] == most]
