"""Memory and time: a metric per group with error bars (peak memory per policy, time to target), peak memory
per training phase (which optimizer stepped), and the Pareto front of two metrics: accuracy vs time, or a
multi-objective study's first two objectives (:func:`study_pareto_metrics`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, WEBGL_POINTS, axis, error_array, figure, metric_label
from hyperswitch.figures._stats import SPREAD_LONG, band, check_spread, grouped_stats, keyed_reduce
from hyperswitch.figures.data import NotApplicable
from hyperswitch.figures.parameter import config_means, excluded_note, metric_rows
from hyperswitch.results.schema import METRICS


class GroupBars(NamedTuple):
    metric: str
    by: str
    spread: str
    groups: list[str]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray
    n_excluded: int


def group_bars_data(trials: pd.DataFrame, labels: pd.Series, metric: str, spread: str = "std",
                    by: str = "") -> GroupBars:
    """Mean and spread of ``metric`` over the finished runs of each group; ``labels``: a group per trial row
    (same index as ``trials``)."""
    check_spread(spread)
    rows, excluded = metric_rows(trials, metric)
    lab = labels.reindex(rows.index).astype("string").fillna("?")
    names = sorted(lab.unique().tolist(), key=str)
    pos = {n: i for i, n in enumerate(names)}
    codes = lab.map(pos).to_numpy(np.int64)
    stats = grouped_stats(codes, rows[metric].to_numpy(float), len(names))
    lo, hi = band(stats, spread)
    return GroupBars(metric, by, spread, names, stats.mean, lo, hi, stats.count, excluded)


def group_bars_figure(d: GroupBars, title: str | None = None) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    data = [{"type": "bar", "x": d.groups, "y": d.mean * s, "customdata": d.n,
             "marker": {"color": [PALETTE[i % len(PALETTE)] for i in range(len(d.groups))]},
             "error_y": {"type": "data", "symmetric": False, "array": error_array(d.upper - d.mean, s),
                         "arrayminus": error_array(d.mean - d.lower, s), "visible": True},
             "hovertemplate": "%{x}<br>mean %{y:.4g}<br>runs %{customdata}<extra></extra>"}]
    sub = (f"bar: mean; error bar: {SPREAD_LONG[d.spread]} over runs; runs per bar: "
           f"{', '.join(str(int(n)) for n in d.n[:12])}{' ...' if len(d.n) > 12 else ''}"
           f"{excluded_note(d.metric, d.n_excluded)}")
    layout = {"xaxis": axis(d.by, type="category"), "yaxis": axis(metric_label(d.metric))}
    return figure(data, layout, title or f"{metric_label(d.metric)} per {d.by}", sub)


# --- memory per phase -----------------------------------------------------------------------------------------

class PhaseMemory(NamedTuple):
    groups: list[str]  # run groups (policies by default)
    phases: list[str]  # optimizer names as recorded in steps.optimizer (fusion included)
    mean: np.ndarray  # (groups, phases): mean over runs of the run's peak memory in that phase; NaN: no such phase
    std: np.ndarray
    n: np.ndarray
    by: str = "policy"  # what the runs are grouped by (the x axis)


def phase_memory_data(steps: pd.DataFrame, labels: pd.Series, by: str = "policy") -> PhaseMemory:
    """Per group of runs and per phase (the optimizer that stepped): the mean over runs of each run's peak
    ``memory_bytes`` during that phase. ``labels``: trial_id -> group; ``by``: what the groups are (axis title)."""
    if not len(steps):
        raise NotApplicable("this study has no recorded steps yet")
    mem = steps["memory_bytes"].to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(mem).any():
        raise NotApplicable("this study records no memory per step")
    opt = steps["optimizer"].astype("category")
    phases = [str(p) for p in opt.cat.categories]
    tid = steps["trial_id"]
    tid = tid if isinstance(tid.dtype, pd.CategoricalDtype) else tid.astype("category")
    runs = tid.cat.categories.astype(str)
    run_code, phase_code = tid.cat.codes.to_numpy(np.int64), opt.cat.codes.to_numpy(np.int64)
    ok = (run_code >= 0) & (phase_code >= 0) & np.isfinite(mem)
    # Peak per (run, phase), linear in the rows (a run's steps are stored together).
    keys, peaks = keyed_reduce(run_code[ok] * len(phases) + phase_code[ok], mem[ok], np.maximum)
    per_run = pd.DataFrame({"trial_id": runs[keys // len(phases)], "phase": keys % len(phases), "mem": peaks})
    per_run["group"] = labels.reindex(per_run["trial_id"]).to_numpy()
    per_run = per_run.dropna(subset=["group"])
    groups = sorted(per_run["group"].unique().tolist(), key=str)
    if not groups:
        raise NotApplicable("no run with recorded steps belongs to a finished trial")
    gpos = {g: i for i, g in enumerate(groups)}
    codes = per_run["group"].map(gpos).to_numpy(np.int64) * len(phases) + per_run["phase"].to_numpy(np.int64)
    stats = grouped_stats(codes, per_run["mem"].to_numpy(float), len(groups) * len(phases))
    shape = (len(groups), len(phases))
    return PhaseMemory([str(g) for g in groups], phases, stats.mean.reshape(shape), stats.std.reshape(shape),
                       stats.count.reshape(shape), by)


def phase_memory_figure(d: PhaseMemory) -> go.Figure:
    s = METRIC_SCALE["memory_bytes"]
    data = [{"type": "bar", "name": phase, "x": d.groups, "y": d.mean[:, j] * s, "customdata": d.n[:, j],
             "error_y": {"type": "data", "array": error_array(d.std[:, j], s), "visible": True},
             "marker": {"color": PALETTE[j % len(PALETTE)]},
             "hovertemplate": f"{phase}<br>%{{x}}<br>peak %{{y:.4g}} MiB<br>runs %{{customdata}}<extra></extra>"}
            for j, phase in enumerate(d.phases)]
    layout = {"barmode": "group", "xaxis": axis(d.by, type="category"),
              "yaxis": axis("peak memory in phase (MiB)")}
    return figure(data, layout, f"peak memory per {d.by} and phase",
                  "bar: mean over runs of the run's peak memory while that optimizer stepped; error bar: \u00b1 1 "
                  "standard deviation")


# --- Pareto front ---------------------------------------------------------------------------------------------

class Pareto(NamedTuple):
    x_metric: str
    y_metric: str
    y_mode: str
    x: np.ndarray  # one point per configuration (mean over seeds)
    y: np.ndarray
    configs: list[str]
    front: np.ndarray  # indices of the Pareto-optimal points, by increasing x
    x_mode: str = "min"  # time: lower is better


def pareto_front(x: np.ndarray, y: np.ndarray, y_mode: str = "max", x_mode: str = "min") -> np.ndarray:
    """Indices of the points not dominated by another (better or equal in both, better in one), sorted by x (then
    y); points equal in both are kept once (the first)."""
    from hyperswitch.results.objectives import pareto_front as front_of

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    on = front_of(np.column_stack([x, y]), [x_mode, y_mode])
    seen: set[tuple[float, float]] = set()
    kept = []
    for i in on[np.lexsort((y[on], x[on]))]:
        if (x[i], y[i]) not in seen:
            seen.add((x[i], y[i]))
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def study_pareto_metrics(meta: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(y metric, y mode, x metric, x mode) of a multi-objective study's Pareto view: its first objective on y, its
    second on x; None for a single-objective study (the view then plots accuracy against wall time)."""
    from hyperswitch.results.objectives import study_objectives

    metrics, modes = study_objectives(meta)
    if len(metrics) < 2:
        return None
    return metrics[0], modes[0], metrics[1], modes[1]


def pareto_data(trials: pd.DataFrame, y_metric: str = "val_accuracy", x_metric: str = "wall_time_s",
                y_mode: str | None = None, x_mode: str | None = None) -> Pareto:
    rows, _ = metric_rows(trials, y_metric)
    if x_metric not in rows:
        raise NotApplicable(f"this study has no {metric_label(x_metric)}")
    rows = rows[np.isfinite(pd.to_numeric(rows[x_metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan))]
    if not len(rows):
        raise NotApplicable(f"no finished run has a value of {metric_label(x_metric)}")
    both = rows.assign(**{x_metric: pd.to_numeric(rows[x_metric]).astype(float)})
    if "config_id" in both:
        conf = both.groupby("config_id", observed=True)[[x_metric, y_metric]].mean()
        names = conf.index.astype(str).tolist()
    else:
        conf = both[[x_metric, y_metric]]
        names = both["trial_id"].astype(str).tolist()
    x, y = conf[x_metric].to_numpy(float), conf[y_metric].to_numpy(float)
    mode = y_mode or METRICS.get(y_metric, "max")
    xm = x_mode or METRICS.get(x_metric, "min")
    return Pareto(x_metric, y_metric, mode, x, y, names, pareto_front(x, y, mode, xm), xm)


def pareto_figure(d: Pareto) -> go.Figure:
    sx, sy = METRIC_SCALE.get(d.x_metric, 1.0), METRIC_SCALE.get(d.y_metric, 1.0)
    f = d.front
    data = [
        {"type": "scattergl" if len(d.x) > WEBGL_POINTS else "scatter", "x": d.x * sx, "y": d.y * sy,
         "mode": "markers", "name": "configurations", "text": d.configs, "marker": {"color": "#9ab", "size": 6},
         "hovertemplate": "%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"},
        {"type": "scatter", "x": d.x[f] * sx, "y": d.y[f] * sy, "mode": "lines+markers", "name": "Pareto front",
         "line": {"shape": "hv", "color": PALETTE[1]}, "marker": {"size": 9, "color": PALETTE[1]},
         "text": [d.configs[i] for i in f], "hovertemplate": "%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>"},
    ]
    layout = {"xaxis": axis(metric_label(d.x_metric)), "yaxis": axis(metric_label(d.y_metric))}
    better = f"{'higher' if d.y_mode == 'max' else 'lower'} {metric_label(d.y_metric)}, " \
        f"{'higher' if d.x_mode == 'max' else 'lower'} {metric_label(d.x_metric)} better"
    return figure(data, layout, f"{metric_label(d.y_metric)} vs {metric_label(d.x_metric)}",
                  f"one point per configuration (mean over seeds); {len(f)} on the Pareto front of {len(d.x)} "
                  f"({better})")


__all__ = ["GroupBars", "PhaseMemory", "Pareto", "config_means", "group_bars_data", "group_bars_figure",
           "pareto_data", "pareto_figure", "pareto_front", "phase_memory_data", "phase_memory_figure",
           "study_pareto_metrics"]
