"""Parameter study: a metric against one parameter (mean and spread band over seeds), two parameters (heatmap of
the mean, seeds per cell on hover), more (parallel coordinates), and parameter importance (PED-ANOVA/fANOVA)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, axis, error_array, figure, metric_label, rgba
from hyperswitch.figures._stats import SPREAD_SHORT, SPREADS, axis_for, band, check_spread, grouped_stats
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import nunique
from hyperswitch.results.schema import FINISHED_STATUSES, METRICS


def metric_rows(trials: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int]:
    """Finished trials with a finite value of ``metric``, and how many finished trials had none."""
    if metric not in trials.columns:
        raise NotApplicable(f"this study has no {metric_label(metric)} ({metric}) column")
    done = trials[trials["status"].isin(FINISHED_STATUSES)] if "status" in trials else trials
    if not len(done):
        raise NotApplicable("no trial has finished yet")
    values = pd.to_numeric(done[metric], errors="coerce").astype(float)
    ok = np.isfinite(values.to_numpy())
    if not ok.any():
        if metric == "time_to_target_s":
            raise NotApplicable("no finished run reached the target accuracy (time to target is empty)")
        if metric == "switch_step":
            raise NotApplicable("no finished run switched optimizer (switch step is empty)")
        raise NotApplicable(f"no finished trial has a value of {metric_label(metric)}")
    out = done[ok].copy()
    out[metric] = values[ok]
    return out, int((~ok).sum())


def _need_param(trials: pd.DataFrame, name: str) -> None:
    if name not in trials.columns:
        raise NotApplicable(f"this study has no parameter {name!r}")


def excluded_note(metric: str, n: int) -> str:
    if not n:
        return ""
    if metric == "time_to_target_s":
        return f"; {n} finished run(s) never reached the target (left out)"
    if metric == "switch_step":
        return f"; {n} finished run(s) never switched (left out)"
    return f"; {n} finished run(s) without a value (left out)"


# --- one parameter ------------------------------------------------------------------------------------------

class Sensitivity(NamedTuple):
    param: str
    metric: str
    spread: str
    labels: list[str]  # one per point (a value or a bin)
    x: list[float] | None  # numeric positions (None: categorical parameter)
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray  # runs per point
    binned: bool
    log: bool
    n_runs: int
    n_excluded: int


def sensitivity_data(trials: pd.DataFrame, param: str, metric: str, spread: str = "std",
                     max_points: int = 40) -> Sensitivity:
    """Mean and spread of ``metric`` over the runs at each value of ``param`` (binned above ``max_points``)."""
    check_spread(spread)
    _need_param(trials, param)
    rows, excluded = metric_rows(trials, metric)
    ax = axis_for(rows[param], max_points)
    stats = grouped_stats(ax.codes, rows[metric].to_numpy(float), len(ax.labels))
    lo, hi = band(stats, spread)
    keep = stats.count > 0
    idx = np.flatnonzero(keep)
    return Sensitivity(param, metric, spread, [ax.labels[i] for i in idx],
                       [ax.centers[i] for i in idx] if ax.centers is not None else None,
                       stats.mean[idx], lo[idx], hi[idx], stats.count[idx], ax.binned, ax.log,
                       int((ax.codes >= 0).sum()), excluded)


def sensitivity_figure(d: Sensitivity) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    color = PALETTE[0]
    hover = [f"{d.param} = {lab}<br>mean = {m * s:.4g}<br>runs = {n}" for lab, m, n in
             zip(d.labels, d.mean, d.n, strict=True)]
    xaxis = axis(d.param + (" (binned)" if d.binned else ""))
    data: list[dict[str, Any]]
    if d.x is None:  # categorical: points with error bars
        data = [{"type": "scatter", "x": d.labels, "y": d.mean * s, "mode": "markers+lines", "name": "mean",
                 "marker": {"size": 9, "color": color}, "hovertext": hover, "hoverinfo": "text",
                 "error_y": {"type": "data", "symmetric": False, "array": error_array(d.upper - d.mean, s),
                             "arrayminus": error_array(d.mean - d.lower, s), "visible": True}}]
        xaxis["type"] = "category"
    else:
        x = np.asarray(d.x, dtype=float)
        data = [
            {"type": "scatter", "x": x, "y": d.upper * s, "mode": "lines", "line": {"width": 0},
             "showlegend": False, "hoverinfo": "skip", "name": "upper"},
            {"type": "scatter", "x": x, "y": d.lower * s, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": rgba(color, 0.2), "name": SPREAD_SHORT[d.spread], "hoverinfo": "skip"},
            {"type": "scatter", "x": x, "y": d.mean * s, "mode": "lines+markers", "name": "mean",
             "line": {"color": color}, "marker": {"size": 7}, "hovertext": hover, "hoverinfo": "text"},
        ]
        if d.log:
            xaxis["type"] = "log"
    sub = f"{SPREADS[d.spread]}; {d.n_runs} finished runs{excluded_note(d.metric, d.n_excluded)}"
    return figure(data, {"xaxis": xaxis, "yaxis": axis(metric_label(d.metric))},
                  f"{metric_label(d.metric)} vs {d.param}", sub)


# --- two parameters -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Heatmap:  # not a NamedTuple: its field ``count`` would hide tuple.count
    x_param: str
    y_param: str
    metric: str
    x_labels: list[str]
    y_labels: list[str]
    z: np.ndarray  # (len(y_labels), len(x_labels)) mean of the metric, NaN where no run
    count: np.ndarray  # same shape: runs (seeds) per cell
    best: tuple[int, int] | None  # (row, column) of the best cell by the metric's direction
    binned: tuple[bool, bool]
    n_runs: int
    n_excluded: int


def heatmap_data(trials: pd.DataFrame, x_param: str, y_param: str, metric: str, mode: str | None = None,
                 max_bins: int = 12) -> Heatmap:
    """The mean of ``metric`` per (``y_param``, ``x_param``) cell and the number of runs in each cell."""
    _need_param(trials, x_param)
    _need_param(trials, y_param)
    if x_param == y_param:
        raise NotApplicable("pick two different parameters for a heatmap")
    rows, excluded = metric_rows(trials, metric)
    ax, ay = axis_for(rows[x_param], max_bins), axis_for(rows[y_param], max_bins)
    nx, ny = len(ax.labels), len(ay.labels)
    ok = (ax.codes >= 0) & (ay.codes >= 0)
    codes = np.where(ok, ay.codes * nx + ax.codes, -1)
    stats = grouped_stats(codes, rows[metric].to_numpy(float), nx * ny)
    z = stats.mean.reshape(ny, nx)
    count = stats.count.reshape(ny, nx)
    best = None
    if np.isfinite(z).any():
        mode = mode or METRICS.get(metric, "max")
        flat = np.nanargmax(z) if mode == "max" else np.nanargmin(z)
        best = (int(flat // nx), int(flat % nx))
    return Heatmap(x_param, y_param, metric, ax.labels, ay.labels, z, count, best, (ax.binned, ay.binned),
                   int(ok.sum()), excluded)


def heatmap_trace(d: Heatmap, scale: float = 1.0, **extra: Any) -> list[dict]:
    """The heatmap: the mean per cell, the number of runs (seeds) per cell on hover."""
    return [{"type": "heatmap", "z": d.z * scale, "x": d.x_labels, "y": d.y_labels, "customdata": d.count,
             "texttemplate": "%{z:.3g}", "hoverongaps": False,
             "hovertemplate": (f"{d.x_param} = %{{x}}<br>{d.y_param} = %{{y}}<br>mean = %{{z:.4g}}"
                               "<br>seeds (runs) = %{customdata}<extra></extra>"), **extra}]


def best_cell_shape(d: Heatmap, xref: str = "x", yref: str = "y") -> list[dict]:
    """A frame around the best cell (category axes: cell i spans i - 0.5 .. i + 0.5)."""
    if d.best is None:
        return []
    r, c = d.best
    return [{"type": "rect", "xref": xref, "yref": yref, "x0": c - 0.5, "x1": c + 0.5, "y0": r - 0.5,
             "y1": r + 0.5, "line": {"color": "white", "width": 4}},
            {"type": "rect", "xref": xref, "yref": yref, "x0": c - 0.5, "x1": c + 0.5, "y0": r - 0.5,
             "y1": r + 0.5, "line": {"color": "black", "width": 1.5, "dash": "dot"}}]


def heatmap_figure(d: Heatmap, title: str | None = None) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    data = heatmap_trace(d, s, colorscale="Viridis", colorbar={"title": {"text": metric_label(d.metric)}})
    cells = int(np.isfinite(d.z).sum())
    sub = (f"mean over seeds per cell ({cells} cells with runs; seeds per cell on hover; framed: best); "
           f"{d.n_runs} finished runs{excluded_note(d.metric, d.n_excluded)}")
    layout = {"xaxis": axis(d.x_param + (" (binned)" if d.binned[0] else ""), type="category"),
              "yaxis": axis(d.y_param + (" (binned)" if d.binned[1] else ""), type="category"),
              "shapes": best_cell_shape(d)}
    return figure(data, layout, title or f"{metric_label(d.metric)}: {d.y_param} \u00d7 {d.x_param}", sub)


# --- more parameters ----------------------------------------------------------------------------------------

class Parallel(NamedTuple):
    params: list[str]
    metric: str
    values: dict[str, np.ndarray]  # per dimension (params then metric): one value per configuration
    ticks: dict[str, tuple[list[int], list[str]]]  # categorical dimensions: codes and their labels
    n_configs: int


def config_means(rows: pd.DataFrame, params: Sequence[str], metric: str) -> pd.DataFrame:
    """One row per configuration: its parameter values and the mean of ``metric`` over its seeds."""
    key = "config_id" if "config_id" in rows else None
    if key is None:
        return rows[[*params, metric]].reset_index(drop=True)
    agg: dict[str, Any] = {p: "first" for p in params if p != metric}
    agg[metric] = "mean"
    return rows.groupby(key, sort=True, observed=True).agg(agg).reset_index()


def parallel_data(trials: pd.DataFrame, params: Sequence[str], metric: str) -> Parallel:
    for p in params:
        _need_param(trials, p)
    rows, _ = metric_rows(trials, metric)
    conf = config_means(rows, list(params), metric)
    # a conditional parameter is null where it does not apply: only configurations where every axis applies
    conf = conf.dropna(subset=[p for p in params if p != metric])
    if not len(conf):
        raise NotApplicable(f"no configuration sets all of {', '.join(params)} (a conditional parameter applies "
                            "only under its condition's choice)")
    values, ticks = {}, {}
    for p in [*params, metric]:
        col = conf[p]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values[p] = col.to_numpy(float)
        else:
            ax = axis_for(col, 10**9)
            values[p] = ax.codes.astype(float)
            ticks[p] = (list(range(len(ax.labels))), ax.labels)
    return Parallel(list(params), metric, values, ticks, len(conf))


def parallel_figure(d: Parallel) -> go.Figure:
    dims = []
    for p in [*d.params, d.metric]:
        v = d.values[p] * (METRIC_SCALE.get(p, 1.0) if p == d.metric else 1.0)
        dim: dict[str, Any] = {"label": metric_label(p) if p == d.metric else p, "values": v}
        if p in d.ticks:
            dim["tickvals"], dim["ticktext"] = d.ticks[p]
        dims.append(dim)
    color = d.values[d.metric] * METRIC_SCALE.get(d.metric, 1.0)
    data = [{"type": "parcoords", "dimensions": dims,
             "line": {"color": color, "colorscale": "Viridis", "showscale": True,
                      "colorbar": {"title": {"text": metric_label(d.metric)}}}}]
    return figure(data, {}, f"{metric_label(d.metric)} over {len(d.params)} parameters",
                  f"one line per configuration (mean over seeds); {d.n_configs} configurations")


# --- importance ---------------------------------------------------------------------------------------------

class Importance(NamedTuple):
    metric: str
    method: str
    params: list[str]  # most important first
    values: list[float]  # normalised to sum to 1
    n_configs: int  # configurations the evaluator saw
    note: str
    n_total: int  # finished configurations in the study (more than n_configs when a sample was taken)


def _distributions(conf: pd.DataFrame, params: Sequence[str], log_hints: dict[str, bool]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, FloatDistribution | CategoricalDistribution] = {}
    for p in params:
        col = conf[p]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            lo, hi = float(col.min()), float(col.max())
            log = bool(log_hints.get(p, False) and lo > 0)
            out[p] = FloatDistribution(lo, hi, log=log)
        else:
            out[p] = CategoricalDistribution(sorted(col.astype(str).unique().tolist()))
    return out


def log_hints(distributions: Mapping[str, Mapping[str, Any]] | None) -> dict[str, bool]:
    """Which parameters the space samples on a log scale (to weigh log-sampled ranges right), from the study's
    distributions (:func:`hyperswitch.results.study_distributions`)."""
    return {n: bool(d.get("log")) for n, d in (distributions or {}).items() if d.get("type") in ("float", "int")}


def importance_data(trials: pd.DataFrame, params: Sequence[str], metric: str, mode: str | None = None,
                    method: str = "auto", distributions: Mapping[str, Mapping[str, Any]] | None = None,
                    max_configs: int = 500) -> Importance:
    """Importance of each parameter for ``metric`` from Optuna's evaluators, on one Optuna trial per
    configuration (its mean over seeds). ``method``: ``ped-anova``, ``fanova`` or ``auto`` (PED-ANOVA from
    50 configurations on, where its top-10% quantile holds at least 5 of them; fANOVA below). Above
    ``max_configs`` configurations a random sample of that many (seed 0) is ranked, and the figure says so.
    ``distributions``: the study's (``StudyInfo.distributions``); a log-sampled range is weighed on a log scale."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    params = [p for p in params if p in trials.columns]
    if not params:
        raise NotApplicable("this study has no varied parameter to rank")
    rows, _ = metric_rows(trials, metric)
    conf = config_means(rows, params, metric)
    params = [p for p in params if nunique(conf[p]) > 1]
    if not params:
        raise NotApplicable("every finished configuration has the same parameter values")
    # a conditional parameter (null where it does not apply) cannot be ranked jointly with the others: left out
    partial = [p for p in params if conf[p].isna().any() and conf[p].notna().any()]
    params = [p for p in params if p not in partial]
    if not params:
        raise NotApplicable(f"every varied parameter is conditional ({', '.join(partial)}: null where it does not "
                            "apply); importance ranks parameters set in every configuration")
    conf = conf.dropna(subset=params)
    if len(conf) < 3:
        raise NotApplicable(f"parameter importance needs at least 3 finished configurations (has {len(conf)})")
    n_total = len(conf)
    mode = mode or METRICS.get(metric, "max")
    if method == "auto":
        method = "ped-anova" if len(conf) >= 50 else "fanova"
    dists = _distributions(conf, params, log_hints(distributions))
    direction: Literal["maximize", "minimize"] = "maximize" if mode == "max" else "minimize"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=direction)
    if len(conf) > max_configs:  # Optuna copies every trial into its storage: keep the cost bounded
        conf = conf.sample(n=max_configs, random_state=0)
    cols = {p: (conf[p].astype(str).tolist() if isinstance(dists[p], optuna.distributions.CategoricalDistribution)
                else conf[p].astype(float).tolist()) for p in params}
    values = conf[metric].astype(float).tolist()
    frozen = [optuna.trial.create_trial(value=v, params={p: cols[p][i] for p in params}, distributions=dists)
              for i, v in enumerate(values)]
    study.add_trials(frozen)
    evaluator: PedAnovaImportanceEvaluator | FanovaImportanceEvaluator
    if method == "ped-anova":
        evaluator = PedAnovaImportanceEvaluator()
        target = (lambda t: -t.value) if mode == "max" else (lambda t: t.value)  # PED-ANOVA: lower is better
    elif method == "fanova":
        evaluator, target = FanovaImportanceEvaluator(seed=0), None
    else:
        raise ValueError(f"method must be one of auto, ped-anova, fanova, but got {method!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp = get_param_importances(study, evaluator=evaluator, params=params, target=target, normalize=True)
    # PED-ANOVA always reminds that it ranks for *low* targets: the target above is negated for "max".
    note = "; ".join(dict.fromkeys(" ".join(str(w.message).split()) for w in caught
                                   if "achieve low `target`" not in str(w.message)))
    if partial:
        note = "; ".join(filter(None, [note, f"not ranked: {', '.join(partial)} (conditional: set only where it "
                                       "applies)"]))
    names = list(imp)
    return Importance(metric, method, names, [float(imp[n]) for n in names], len(conf), note,
                      n_total)


def importance_figure(d: Importance) -> go.Figure:
    label = {"ped-anova": "PED-ANOVA (Optuna)", "fanova": "fANOVA (Optuna)"}[d.method]
    data = [{"type": "bar", "x": d.values[::-1], "y": d.params[::-1], "orientation": "h",
             "marker": {"color": PALETTE[0]}, "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}]
    on = f"a random {d.n_configs} of {d.n_total}" if d.n_total > d.n_configs else str(d.n_configs)
    sub = f"{label} on {on} configurations (mean over seeds) for {metric_label(d.metric)}"
    if d.note:
        sub += f"; note: {d.note[:120]}"
    return figure(data, {"xaxis": axis("importance (normalised)"), "yaxis": axis("parameter")},
                  "parameter importance", sub, height=max(260, 90 + 40 * len(d.params)))
