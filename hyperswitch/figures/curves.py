"""Learning curves: loss or accuracy against step, epoch or wall time, grouped by a parameter or by policy, with
a band over the runs (seeds) of each group and a marker where each run switched optimizer."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, WEBGL_POINTS, axis, figure, rgba, step_label
from hyperswitch.figures._stats import (
    SPREAD_LONG,
    SPREAD_SHORT,
    axis_for,
    band,
    check_spread,
    grouped_mean,
    grouped_stats,
)
from hyperswitch.figures.data import NotApplicable, policy_family, policy_labels

X_COLUMNS = ("step", "epoch", "elapsed_s")
Y_COLUMNS = ("loss", "val_loss", "val_accuracy", "lr", "memory_bytes")
POLICY, FAMILY, NONE = "policy", "policy family", "none"
MAX_RUN_MARKERS = 1000  # above this many switch markers, runs that switched at the same x share one marker


class CurveGroup(NamedTuple):
    name: str
    x: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray  # runs contributing at each x


class SwitchMarks(NamedTuple):
    group: str
    x: np.ndarray  # where each run switched, on the curve's x axis
    y: np.ndarray  # on its group's mean curve
    runs: list[str]


class Curves(NamedTuple):
    x: str
    y: str
    group_by: str
    spread: str
    groups: list[CurveGroup]
    marks: list[SwitchMarks]
    n_runs: int
    time_bins: int | None  # x = wall time: runs are averaged within this many equal time bins


def run_groups(trials: pd.DataFrame, group_by: str, max_groups: int = 8) -> pd.Series:
    """A group label per trial (index: trial_id): a parameter's value (binned when there are many),
    the policy label, the policy family, or one group."""
    t = trials.set_index("trial_id") if "trial_id" in trials else trials
    if group_by == NONE:
        return pd.Series("all runs", index=t.index)
    if group_by == POLICY:
        return policy_labels(t)
    if group_by == FAMILY:
        return policy_family(t)
    if group_by not in t.columns:
        raise NotApplicable(f"this study has no parameter {group_by!r}")
    ax = axis_for(t[group_by], max_groups)
    labels = np.array([f"{group_by} = {lab}" for lab in ax.labels] + [f"{group_by} missing"], dtype=object)
    return pd.Series(labels[np.where(ax.codes >= 0, ax.codes, len(ax.labels))], index=t.index)


def curves_data(steps: pd.DataFrame, groups: pd.Series, switch_steps: pd.Series | None = None, *,
                x: str = "step", y: str = "loss", spread: str = "std", group_by: str = "",
                time_bins: int = 100) -> Curves:
    """Per group and per x: mean and spread over runs of ``y``.

    ``steps``: rows with ``trial_id``, ``step``, ``x`` and ``y``; ``groups``: trial_id -> group label (runs not
    in it are left out); ``switch_steps``: trial_id -> step of the switch (NaN: never switched). With
    ``x="epoch"`` a run's value in an epoch is the mean of its rows in that epoch; with ``x="elapsed_s"`` its
    rows are averaged in ``time_bins`` equal bins of wall time (and a switch is marked at its bin's centre).
    """
    check_spread(spread)
    if x not in X_COLUMNS:
        raise ValueError(f"x must be one of {', '.join(X_COLUMNS)}, but got {x!r}")
    if not len(steps):
        raise NotApplicable("this study has no recorded steps yet")
    tid = steps["trial_id"]
    if not isinstance(tid.dtype, pd.CategoricalDtype):
        tid = tid.astype("category")
    cats = tid.cat.categories
    codes_all = tid.cat.codes.to_numpy()  # -1: a missing trial id
    labels = groups.reindex(pd.Index(cats).astype(str))
    names = sorted(pd.unique(labels.dropna()).tolist(), key=str)
    if not names:
        raise NotApplicable("no run of this study has recorded steps yet")
    group_of_run = pd.Categorical(labels, categories=names).codes.astype(np.intp)
    # Index -1 (a missing trial id) reads the appended -1: in no group.
    group_lookup = np.append(group_of_run, -1)
    float_x = x == "elapsed_s" or not pd.api.types.is_integer_dtype(steps[x])
    xv_all = steps[x].to_numpy(dtype=float, na_value=np.nan) if float_x else steps[x].to_numpy()
    # Rows that can be placed (in a group, with an x), and of those the rows with a value of y.
    placed = group_lookup[codes_all] >= 0
    if float_x:
        placed &= np.isfinite(xv_all)
    ok = placed & np.isfinite(steps[y].to_numpy(dtype=float, na_value=np.nan))
    if not ok.any():
        raise NotApplicable(f"no run has a value of {step_label(y)} yet")
    # From here on only those rows (validation metrics are on one row in many: far fewer).
    sel = slice(None) if ok.all() else np.flatnonzero(ok)
    run_code = codes_all[sel].astype(np.intp, copy=False)
    yv = steps[y].to_numpy(dtype=float, na_value=np.nan)[sel]
    xv = xv_all[sel]

    bins = None
    xpos: np.ndarray
    if x == "elapsed_s":
        bins = time_bins
        hi = float(xv.max())
        width = hi / bins if hi > 0 else 1.0
        xidx = np.minimum((xv / width).astype(np.intp), bins - 1)
        xpos = (np.arange(bins) + 0.5) * width
        n_x = bins
    else:
        x0 = int(xv.min())
        xidx = (xv - x0).astype(np.intp, copy=False)
        n_x = int(xv.max()) - x0 + 1
        xpos = np.arange(n_x) + x0

    n_runs = len(cats)
    # Level 1: one value per (run, x) (a run has one row per step; several per epoch or time bin).
    if x == "step":
        stats = grouped_stats(group_lookup[run_code] * n_x + xidx, yv, len(names) * n_x)
    else:
        count1, mean1 = grouped_mean(run_code * n_x + xidx, yv, n_runs * n_x)
        filled = np.flatnonzero(count1 > 0)
        cell_run, cell_x, cell_y = filled // n_x, filled % n_x, mean1[filled]
        # Level 2: over the runs of each group.
        stats = grouped_stats(group_of_run[cell_run] * n_x + cell_x, cell_y, len(names) * n_x)
    lo, hi_ = band(stats, spread)
    out = []
    for g, name in enumerate(names):
        sl = slice(g * n_x, (g + 1) * n_x)
        has = stats.count[sl] > 0
        out.append(CurveGroup(str(name), xpos[has].astype(float), stats.mean[sl][has], lo[sl][has], hi_[sl][has],
                              stats.count[sl][has]))
    has_rows = np.bincount(run_code, minlength=n_runs) > 0

    marks: list[SwitchMarks] = []
    if switch_steps is not None and len(switch_steps):
        sw = switch_steps.reindex(pd.Index(cats).astype(str)).to_numpy(dtype=float, na_value=np.nan)
        if x == "step":  # the switch step is the x: no need to look at the rows
            runs_sw = np.flatnonzero(np.isfinite(sw) & (group_of_run >= 0) & has_rows)
            mark_x = sw[runs_sw]
        else:  # the x (epoch, time) of the run's row at the switch step, whether or not it has a value of y
            step_v = steps["step"].to_numpy()
            rows = np.flatnonzero(placed & (step_v == np.append(sw, np.nan)[codes_all]))
            runs_sw, first = np.unique(codes_all[rows], return_index=True)
            keep = has_rows[runs_sw]
            runs_sw, mark_x = runs_sw[keep], xv_all[rows[first[keep]]].astype(float)
            if x == "elapsed_s":  # at the centre of its time bin, as the curve (and pooled per bin when many)
                mark_x = xpos[np.minimum((mark_x / width).astype(np.intp), time_bins - 1)]  # bins == time_bins here
        cat_names = np.asarray(pd.Index(cats).astype(str), dtype=object)
        for g, name in enumerate(names):
            mine = group_of_run[runs_sw] == g
            if not mine.any() or not len(out[g].x):
                continue
            mx = mark_x[mine]
            marks.append(SwitchMarks(str(name), mx, np.interp(mx, out[g].x, out[g].mean),
                                     cat_names[runs_sw[mine]].tolist()))
    return Curves(x, y, group_by, spread, out, marks, int(has_rows.sum()), bins)


def curves_figure(d: Curves, log_y: bool = False) -> go.Figure:
    s = METRIC_SCALE.get(d.y, 1.0)
    data: list[dict] = []
    n_marks = sum(len(m.x) for m in d.marks)
    for i, g in enumerate(d.groups):
        color = PALETTE[i % len(PALETTE)]
        if np.isfinite(g.lower).any():
            data.append({"type": "scatter", "x": g.x, "y": g.upper * s, "mode": "lines", "line": {"width": 0},
                         "showlegend": False, "hoverinfo": "skip", "legendgroup": g.name, "name": f"{g.name} upper"})
            data.append({"type": "scatter", "x": g.x, "y": g.lower * s, "mode": "lines", "line": {"width": 0},
                         "fill": "tonexty", "fillcolor": rgba(color, 0.18), "showlegend": False, "hoverinfo": "skip",
                         "legendgroup": g.name, "name": f"{g.name} {SPREAD_SHORT[d.spread]}"})
        mode = "lines+markers" if len(g.x) <= 30 else "lines"  # a short curve (one epoch) stays visible
        data.append({"type": "scatter", "x": g.x, "y": g.mean * s, "mode": mode, "marker": {"size": 5},
                     "line": {"color": color, "width": 2}, "name": g.name, "legendgroup": g.name, "customdata": g.n,
                     "hovertemplate": f"{g.name}<br>{step_label(d.x)} %{{x:.4g}}<br>{step_label(d.y)} "
                     "%{y:.4g}<br>runs %{customdata}<extra></extra>"})
    names = [g.name for g in d.groups]
    pooled = n_marks > MAX_RUN_MARKERS  # thousands of crosses hide each other: one sized marker per switch point
    kind = "scattergl" if n_marks > WEBGL_POINTS and not pooled else "scatter"
    for m in d.marks:
        i = names.index(m.group)
        color = PALETTE[i % len(PALETTE)]
        if pooled:
            xs, counts = np.unique(m.x, return_counts=True)
            ys = np.interp(xs, m.x[np.argsort(m.x)], m.y[np.argsort(m.x)])
            data.append({"type": "scatter", "x": xs, "y": ys * s, "mode": "markers", "name": f"switch ({m.group})",
                         "legendgroup": m.group, "customdata": counts,
                         "marker": {"symbol": "x", "color": color, "size": 5 + 10 * np.sqrt(counts / counts.max())},
                         "hovertemplate": "%{customdata} runs switched at %{x:.4g}<extra></extra>"})
            continue
        data.append({"type": kind, "x": m.x, "y": m.y * s, "mode": "markers", "name": f"switch ({m.group})",
                     "legendgroup": m.group, "text": m.runs,
                     "marker": {"symbol": "x", "size": 8 if kind == "scatter" else 6, "color": color},
                     "hovertemplate": "%{text} switched at %{x:.4g}<extra></extra>"})
    xlabel = step_label(d.x) + (f" ({d.time_bins} bins)" if d.time_bins else "")
    sub = f"line: mean; band: {SPREAD_LONG[d.spread]} over the runs of each group; {d.n_runs} runs; "
    if pooled:
        sub += f"\u00d7 = where runs switched optimizer (size: how many of the {n_marks})"
    else:
        sub += "\u00d7 = where a run switched optimizer" if n_marks else "no run switched optimizer"
    by = f" by {d.group_by}" if d.group_by and d.group_by != NONE else ""
    layout = {"xaxis": axis(xlabel), "yaxis": axis(step_label(d.y), type="log" if log_y else "linear")}
    return figure(data, layout, f"{step_label(d.y)} vs {step_label(d.x)}{by}", sub, height=500)
