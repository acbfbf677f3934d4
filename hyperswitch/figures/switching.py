"""Switch points: the step/epoch where each run switched, their mean and spread per workload and configuration
(000's C5 table), and IOMT's timeline of the candidate that ran in each cycle with its score."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import PALETTE, WEBGL_POINTS, axis, figure
from hyperswitch.figures._stats import axis_for
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import nunique
from hyperswitch.results.schema import FINISHED_STATUSES

SWITCH_KINDS = ("switch",)
IOMT_KIND = "iomt_cycle"


def switch_points(trials: pd.DataFrame, events: pd.DataFrame, step_epochs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per finished trial: ``trial_id, switched, switch_step, switch_epoch`` (NaN: never switched).

    The switch step is the step of the trial's first ``switch`` event (the first update of phase 2), else the
    trial's ``switch_step`` column; the epoch is that step's epoch in ``step_epochs`` (trial_id, step, epoch).
    """
    done = trials[trials["status"].isin(FINISHED_STATUSES)] if "status" in trials else trials
    ids = done["trial_id"].astype(str)
    ev = events[events["kind"].astype(str).isin(SWITCH_KINDS)] if len(events) else events
    first = (ev.assign(trial_id=ev["trial_id"].astype(str)).groupby("trial_id", observed=True)["step"].min()
             if len(ev) else pd.Series(dtype=float))
    step = first.reindex(ids).to_numpy(dtype=float, na_value=np.nan)
    if "switch_step" in done:
        fallback = pd.to_numeric(done["switch_step"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        step = np.where(np.isfinite(step), step, fallback)
    out = pd.DataFrame({"trial_id": ids.to_numpy(), "switch_step": step})
    out["switched"] = np.isfinite(step)
    out["switch_epoch"] = np.nan
    if step_epochs is not None and len(step_epochs) and out["switched"].any():
        # Vectorised on the categorical codes: no per-row strings on millions of step rows.
        tid = step_epochs["trial_id"]
        tid = tid if isinstance(tid.dtype, pd.CategoricalDtype) else tid.astype("category")
        codes = tid.cat.codes.to_numpy(np.int64)
        want = (out.set_index("trial_id")["switch_step"].reindex(tid.cat.categories.astype(str))
                .to_numpy(dtype=float, na_value=np.nan))
        srow = step_epochs["step"].to_numpy(dtype=float, na_value=np.nan)
        hit = np.flatnonzero((codes >= 0) & (srow == want[np.maximum(codes, 0)]))
        epochs = pd.Series(step_epochs["epoch"].to_numpy(dtype=float, na_value=np.nan)[hit],
                           index=tid.cat.categories.astype(str)[codes[hit]])
        epochs = epochs[~epochs.index.duplicated()]
        out["switch_epoch"] = epochs.reindex(out["trial_id"]).to_numpy(dtype=float, na_value=np.nan)
    return out


class SwitchTable(NamedTuple):
    by: list[str]
    rows: pd.DataFrame  # *by, runs, switched, step_mean, step_std, step_min, step_max, epoch_mean, epoch_std
    binned: list[str]  # by columns with more than MAX_LEVELS values, grouped in bins


MAX_LEVELS = 12


def grouping(trials: pd.DataFrame, by: Sequence[str], max_levels: int = MAX_LEVELS) -> tuple[pd.DataFrame, list[str]]:
    """``trial_id`` and the ``by`` columns, numeric columns with more than ``max_levels`` values replaced by
    their bin (``a–b``), so that a study of thousands of sampled configurations still gives readable groups."""
    out = pd.DataFrame({"trial_id": trials["trial_id"].astype(str).to_numpy()}, index=trials.index)
    binned = []
    for b in by:
        col = trials[b]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) and \
                nunique(col) > max_levels:
            ax = axis_for(col, max_levels)
            labels = np.array([*ax.labels, "missing"], dtype=object)
            out[b] = labels[np.where(ax.codes >= 0, ax.codes, len(ax.labels))]
            out[f"_order_{b}"] = ax.codes
            binned.append(b)
        else:
            out[b] = col.to_numpy()
            out[f"_order_{b}"] = col.to_numpy()
    return out, binned


def switch_table(points: pd.DataFrame, trials: pd.DataFrame, by: Sequence[str]) -> SwitchTable:
    """Per group of ``by`` columns of ``trials``: how many runs, how many switched, and the mean, sample
    standard deviation, min and max of the switch step (and the mean and s.d. of the switch epoch) over the
    runs that switched."""
    by = list(by)
    for b in by:
        if b not in trials.columns:
            raise NotApplicable(f"this study has no column {b!r}")
    if not len(points):
        raise NotApplicable("no trial has finished yet")
    if not points["switched"].any():
        raise NotApplicable("no finished run switched optimizer (this study has no switch events)")
    t, binned = grouping(trials, by)
    m = points.merge(t, on="trial_id", how="left")
    keys: list[str | Callable[[Any], str]] = [*by] if by else [lambda _: "all runs"]
    if by:  # sort bins by position, values by value
        m = m.sort_values([f"_order_{b}" for b in by], kind="stable")
    g = m.groupby(keys, dropna=False, sort=False)
    rows = pd.DataFrame({
        "runs": g.size(),
        "switched": g["switched"].sum().astype(int),
        "step_mean": g["switch_step"].mean(),
        "step_std": g["switch_step"].std(ddof=1),
        "step_min": g["switch_step"].min(),
        "step_max": g["switch_step"].max(),
        "epoch_mean": g["switch_epoch"].mean(),
        "epoch_std": g["switch_epoch"].std(ddof=1),
    }).reset_index()
    if not by:
        rows = rows.rename(columns={"index": "group"})
    return SwitchTable(by, rows, binned)


def group_label(frame: pd.DataFrame, by: Sequence[str], sep: str = ", ") -> pd.Series:
    """``a=1, b=x`` per row from the ``by`` columns that vary (a column with one value names no group)."""
    varied = [b for b in by if nunique(frame[b], dropna=False) > 1] or list(by[:1])
    if not varied:
        return pd.Series("all runs", index=frame.index)
    parts = [frame[b].map(lambda v, b=b: f"{b}={_short(v)}") for b in varied]
    out = parts[0]
    for p in parts[1:]:
        out = out + sep + p
    return out


def _short(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def switch_figure(points: pd.DataFrame, trials: pd.DataFrame, by: Sequence[str], unit: str = "step",
                  max_groups: int = 40) -> go.Figure:
    """The distribution of the switch step (or epoch) per group: a box per group with its runs."""
    col = f"switch_{unit}"
    t, binned = grouping(trials, by)
    m = points[points["switched"]].merge(t, on="trial_id", how="left")
    m = m[np.isfinite(m[col].to_numpy(dtype=float, na_value=np.nan))]
    if not len(m):
        raise NotApplicable(f"no run has a switch {unit} to show")
    m["group"] = group_label(m, by, "<br>")
    order = [f"_order_{b}" for b in by]
    groups = (m.sort_values(order, kind="stable") if order else m)["group"].drop_duplicates().tolist()
    note = ""
    if len(groups) > max_groups:
        counts = m["group"].value_counts()
        keep = set(counts.index[:max_groups])
        groups = [g for g in groups if g in keep]
        note = f"; the {max_groups} groups with the most runs of {counts.size}"
    many = len(m) > WEBGL_POINTS
    data = []
    for i, name in enumerate(groups):
        y = m.loc[m["group"] == name, col].to_numpy(float)
        data.append({"type": "box", "y": y, "name": name, "boxpoints": False if many else "all", "jitter": 0.4,
                     "pointpos": 0, "showlegend": False, "boxmean": "sd",
                     "marker": {"color": PALETTE[i % len(PALETTE)], "size": 5}})
    sub = (f"box: quartiles; dashed: mean \u00b1 1 s.d.; {len(m)} runs that switched of {len(points)} finished"
           f"{note}")
    xtitle = " / ".join(f"{b} (binned)" if b in binned else b for b in by)
    layout = {"xaxis": axis(xtitle, type="category"), "yaxis": axis(f"switch {unit}")}
    return figure(data, layout, f"switch {unit} per {' / '.join(by) if by else 'study'}", sub, height=480)


# --- IOMT ---------------------------------------------------------------------------------------------------

class IomtTimeline(NamedTuple):
    trial_id: str
    cycle: np.ndarray
    step: np.ndarray  # first step of the cycle
    candidate: list[str]
    score: np.ndarray  # the cycle's score s in [-1, 1]; NaN for the last cycle (not scored when the run ended)
    select: list[str]  # how the candidate was chosen (random, cyclical, surrogate)


def iomt_runs(events: pd.DataFrame) -> list[str]:
    if not len(events):
        return []
    ev = events[events["kind"].astype(str) == IOMT_KIND]
    return sorted(ev["trial_id"].astype(str).unique().tolist())


def iomt_timeline_data(events: pd.DataFrame, trial_id: str) -> IomtTimeline:
    """The cycles of one IOMT run. Each ``iomt_cycle`` event carries the score of the cycle that just ended
    (``detail.score``), so the score of cycle c is read from the event that starts cycle c + 1."""
    if not len(events):
        raise NotApplicable("this study has no IOMT cycles (no iomt policy)")
    ev = events[(events["kind"].astype(str) == IOMT_KIND) & (events["trial_id"].astype(str) == str(trial_id))]
    if not len(ev):
        raise NotApplicable(f"run {trial_id} has no IOMT cycles")
    details = [json.loads(d) if isinstance(d, str) and d else {} for d in ev["detail"]]
    order = np.argsort([int(d.get("cycle", i)) for i, d in enumerate(details)], kind="stable")
    details = [details[i] for i in order]
    steps = ev["step"].to_numpy()[order]
    cycle = np.array([int(d.get("cycle", i)) for i, d in enumerate(details)])
    by_cycle = {int(d.get("cycle", i)): d for i, d in enumerate(details)}
    score = np.array([_num(by_cycle.get(c + 1, {}).get("score")) for c in cycle])
    return IomtTimeline(str(trial_id), cycle, steps.astype(int), [str(d.get("name", d.get("to", "?")))
                                                                  for d in details],
                        score, [str(d.get("select", "")) for d in details])


def _num(v: Any) -> float:
    try:
        return float(v) if v is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def iomt_timeline_figure(d: IomtTimeline) -> go.Figure:
    names = list(dict.fromkeys(sorted(d.candidate)))
    text = [f"cycle {c} (step {s})<br>{n}<br>score {sc:.3f}<br>chosen: {sel}" if np.isfinite(sc) else
            f"cycle {c} (step {s})<br>{n}<br>score: not scored (run ended)<br>chosen: {sel}"
            for c, s, n, sc, sel in zip(d.cycle, d.step, d.candidate, d.score, d.select, strict=True)]
    finite = d.score[np.isfinite(d.score)]
    lim = float(max(np.abs(finite).max(), 1e-3)) if len(finite) else 1.0
    data = [{"type": "scatter", "x": d.step, "y": d.candidate, "mode": "markers+lines", "name": "cycle",
             "line": {"color": "#bbb", "width": 1, "shape": "hv"}, "text": text,
             "hovertemplate": "%{text}<extra></extra>",
             "marker": {"size": 12, "symbol": "square", "color": np.nan_to_num(d.score, nan=0.0),
                        "colorscale": "RdYlGn", "cmin": -lim, "cmax": lim, "showscale": True,
                        "colorbar": {"title": {"text": "cycle score"}}, "line": {"width": 1, "color": "#333"}}}]
    layout = {"xaxis": axis("step (start of cycle)"),
              "yaxis": axis("candidate", type="category", categoryorder="array", categoryarray=names)}
    return figure(data, layout, f"IOMT timeline of run {d.trial_id}",
                  f"{len(d.cycle)} cycles; colour: the cycle's score s (scale \u00b1{lim:.2g}; the last cycle, "
                  "unscored, at 0)", height=max(320, 120 + 28 * len(names)))
