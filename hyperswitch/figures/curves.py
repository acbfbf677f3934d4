"""Learning curves: loss or accuracy against step, epoch or wall time, grouped by a parameter or by policy, with
a band over the runs (seeds) of each group and a marker where each run switched optimizer."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, WEBGL_POINTS, metric_label, rgba, styled
from hyperswitch.figures._stats import SPREAD_LONG, SPREAD_SHORT, axis_for, band, check_spread, grouped_stats
from hyperswitch.figures.data import NotApplicable, policy_family, policy_labels

X_COLUMNS = ("step", "epoch", "elapsed_s")
Y_COLUMNS = ("loss", "val_loss", "val_accuracy", "lr", "memory_bytes")
POLICY, FAMILY, NONE = "policy", "policy family", "none"


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
    rows are averaged in ``time_bins`` equal bins of wall time.
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
    run_code = tid.cat.codes.to_numpy(np.int64)
    labels = groups.reindex(cats.astype(str))
    names = sorted(pd.unique(labels.dropna()).tolist(), key=str)
    if not names:
        raise NotApplicable("no run of this study has recorded steps yet")
    name_pos = {n: i for i, n in enumerate(names)}
    group_of_run = np.array([name_pos.get(v, -1) if isinstance(v, str) else -1 for v in labels], dtype=np.int64)
    yv = steps[y].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(yv) & (group_of_run[run_code] >= 0)
    if not ok.any():
        raise NotApplicable(f"no run has a value of {metric_label(y)} yet")

    xv = steps[x].to_numpy(dtype=float, na_value=np.nan)
    ok &= np.isfinite(xv)
    bins = None
    if x == "elapsed_s":
        bins = time_bins
        hi = float(np.nanmax(xv[ok])) if ok.any() else 1.0
        width = hi / bins if hi > 0 else 1.0
        xidx = np.clip((np.where(ok, xv, 0.0) / width).astype(np.int64), 0, bins - 1)
        xpos = (np.arange(bins) + 0.5) * width
        n_x = bins
    else:
        x0 = int(np.nanmin(xv[ok]))
        xidx = np.where(ok, np.nan_to_num(xv, nan=x0) - x0, 0).astype(np.int64)
        n_x = int(xidx[ok].max()) + 1
        xpos = np.arange(n_x) + x0

    n_runs = len(cats)
    # Level 1: one value per (run, x) (a run has one row per step; several per epoch or time bin).
    if x == "step":
        cell_run, cell_x, cell_y = run_code[ok], xidx[ok], yv[ok]
    else:
        key = np.where(ok, run_code * n_x + xidx, -1)
        lvl1 = grouped_stats(key, yv, n_runs * n_x)
        filled = np.flatnonzero(lvl1.count > 0)
        cell_run, cell_x, cell_y = filled // n_x, filled % n_x, lvl1.mean[filled]
    # Level 2: over the runs of each group.
    gkey = group_of_run[cell_run] * n_x + cell_x
    stats = grouped_stats(gkey, cell_y, len(names) * n_x)
    lo, hi_ = band(stats, spread)
    out = []
    for g, name in enumerate(names):
        sl = slice(g * n_x, (g + 1) * n_x)
        has = stats.count[sl] > 0
        out.append(CurveGroup(str(name), xpos[has].astype(float), stats.mean[sl][has], lo[sl][has], hi_[sl][has],
                              stats.count[sl][has]))

    marks: list[SwitchMarks] = []
    if switch_steps is not None and len(switch_steps):
        sw = switch_steps.reindex(cats.astype(str)).to_numpy(dtype=float, na_value=np.nan)
        step_v = steps["step"].to_numpy(dtype=float, na_value=np.nan)
        hit = np.isfinite(sw[run_code]) & (step_v == sw[run_code]) & np.isfinite(xv)
        rows = np.flatnonzero(hit)
        # one row per run (the first, should a run have recorded its switch step twice)
        _, first = np.unique(run_code[rows], return_index=True)
        rows = rows[first]
        for g, name in enumerate(names):
            mine = rows[group_of_run[run_code[rows]] == g]
            if not len(mine) or not len(out[g].x):
                continue
            mx = xv[mine]
            my = np.interp(mx, out[g].x, out[g].mean)
            marks.append(SwitchMarks(str(name), mx, my, [str(cats[c]) for c in run_code[mine]]))
    return Curves(x, y, group_by, spread, out, marks, int(len(np.unique(run_code[ok]))), bins)


def curves_figure(d: Curves, log_y: bool = False) -> go.Figure:
    s = METRIC_SCALE.get(d.y, 1.0)
    fig = go.Figure()
    n_marks = sum(len(m.x) for m in d.marks)
    for i, g in enumerate(d.groups):
        color = PALETTE[i % len(PALETTE)]
        if np.isfinite(g.lower).any():
            fig.add_trace(go.Scatter(x=g.x, y=g.upper * s, mode="lines", line={"width": 0}, showlegend=False,
                                     hoverinfo="skip", legendgroup=g.name, name=f"{g.name} upper"))
            fig.add_trace(go.Scatter(x=g.x, y=g.lower * s, mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor=rgba(color, 0.18), showlegend=False, hoverinfo="skip",
                                     legendgroup=g.name, name=f"{g.name} {SPREAD_SHORT[d.spread]}"))
        fig.add_trace(go.Scatter(x=g.x, y=g.mean * s, mode="lines", line={"color": color, "width": 2},
                                 name=g.name, legendgroup=g.name, customdata=g.n,
                                 hovertemplate=f"{g.name}<br>{metric_label(d.x)} %{{x:.4g}}<br>"
                                 f"{metric_label(d.y)} %{{y:.4g}}<br>runs %{{customdata}}<extra></extra>"))
    trace = go.Scattergl if n_marks > WEBGL_POINTS else go.Scatter
    for m in d.marks:
        i = [g.name for g in d.groups].index(m.group)
        fig.add_trace(trace(x=m.x, y=m.y * s, mode="markers", name=f"switch ({m.group})", legendgroup=m.group,
                            marker={"symbol": "x", "size": 8, "color": PALETTE[i % len(PALETTE)],
                                    "line": {"width": 1}},
                            text=m.runs, hovertemplate="%{text} switched at %{x:.4g}<extra></extra>"))
    xlabel = metric_label(d.x) + (f" ({d.time_bins} bins)" if d.time_bins else "")
    fig.update_xaxes(title_text=xlabel)
    fig.update_yaxes(title_text=metric_label(d.y), type="log" if log_y else "linear")
    sub = f"line: mean; band: {SPREAD_LONG[d.spread]} over the runs of each group; {d.n_runs} runs; "
    sub += "\u00d7 = where a run switched optimizer" if n_marks else "no run switched optimizer"
    by = f" by {d.group_by}" if d.group_by and d.group_by != NONE else ""
    return styled(fig, f"{metric_label(d.y)} vs {metric_label(d.x)}{by}", sub, height=500)
