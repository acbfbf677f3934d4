"""Switch points: the step/epoch where each run switched, their mean and spread per workload and configuration
(000's C5 table), and IOMT's timeline of the candidate that ran in each cycle with its score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import PALETTE, WEBGL_POINTS, styled
from hyperswitch.figures.data import NotApplicable
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
        se = step_epochs[["trial_id", "step", "epoch"]]
        se = se.assign(trial_id=se["trial_id"].astype(str))
        m = out[out["switched"]][["trial_id", "switch_step"]].merge(
            se, left_on=["trial_id", "switch_step"], right_on=["trial_id", "step"], how="left")
        m = m.drop_duplicates("trial_id").set_index("trial_id")["epoch"]
        out["switch_epoch"] = m.reindex(out["trial_id"]).to_numpy(dtype=float, na_value=np.nan)
    return out


class SwitchTable(NamedTuple):
    by: list[str]
    rows: pd.DataFrame  # *by, runs, switched, step_mean, step_std, step_min, step_max, epoch_mean, epoch_std


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
    t = trials.assign(trial_id=trials["trial_id"].astype(str))[["trial_id", *by]]
    m = points.merge(t, on="trial_id", how="left")
    keys = by or [lambda _: "all runs"]
    g = m.groupby(keys, dropna=False, sort=True)
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
    return SwitchTable(by, rows)


def group_label(frame: pd.DataFrame, by: Sequence[str], sep: str = ", ") -> pd.Series:
    """``a=1, b=x`` per row from the ``by`` columns that vary (a column with one value names no group)."""
    varied = [b for b in by if frame[b].nunique(dropna=False) > 1] or list(by[:1])
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
    t = trials.assign(trial_id=trials["trial_id"].astype(str))[["trial_id", *by]]
    m = points[points["switched"]].merge(t, on="trial_id", how="left")
    m = m[np.isfinite(m[col].to_numpy(dtype=float, na_value=np.nan))]
    if not len(m):
        raise NotApplicable(f"no run has a switch {unit} to show")
    m["group"] = group_label(m, by, "<br>")
    groups = sorted(m["group"].unique().tolist())
    note = ""
    if len(groups) > max_groups:
        counts = m["group"].value_counts()
        groups = sorted(counts.index[:max_groups].tolist())
        note = f"; the {max_groups} groups with the most runs of {counts.size}"
    many = len(m) > WEBGL_POINTS
    fig = go.Figure()
    for i, name in enumerate(groups):
        y = m.loc[m["group"] == name, col].to_numpy(float)
        fig.add_trace(go.Box(y=y, name=name, boxpoints=False if many else "all", jitter=0.4, pointpos=0,
                             showlegend=False,
                             marker={"color": PALETTE[i % len(PALETTE)], "size": 5}, boxmean="sd"))
    fig.update_xaxes(title_text=" / ".join(by) if by else "", type="category")
    fig.update_yaxes(title_text=f"switch {unit}")
    sub = (f"box: quartiles; dashed: mean \u00b1 1 s.d.; {len(m)} runs that switched of {len(points)} finished"
           f"{note}")
    return styled(fig, f"switch {unit} per {' / '.join(by) if by else 'study'}", sub, height=480)


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


def _num(v: object) -> float:
    try:
        return float(v) if v is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def iomt_timeline_figure(d: IomtTimeline) -> go.Figure:
    names = list(dict.fromkeys(sorted(d.candidate)))
    text = [f"cycle {c} (step {s})<br>{n}<br>score {sc:.3f}<br>chosen: {sel}" if np.isfinite(sc) else
            f"cycle {c} (step {s})<br>{n}<br>score: not scored (run ended)<br>chosen: {sel}"
            for c, s, n, sc, sel in zip(d.cycle, d.step, d.candidate, d.score, d.select, strict=True)]
    fig = go.Figure(go.Scatter(
        x=d.step, y=d.candidate, mode="markers+lines", line={"color": "#bbb", "width": 1, "shape": "hv"},
        marker={"size": 12, "symbol": "square", "color": np.nan_to_num(d.score, nan=0.0),
                "colorscale": "RdYlGn", "cmin": -1, "cmax": 1, "showscale": True,
                "colorbar": {"title": {"text": "cycle score"}}, "line": {"width": 1, "color": "#333"}},
        text=text, hovertemplate="%{text}<extra></extra>", name="cycle"))
    fig.update_xaxes(title_text="step (start of cycle)")
    fig.update_yaxes(title_text="candidate", type="category", categoryorder="array", categoryarray=names)
    return styled(fig, f"IOMT timeline of run {d.trial_id}",
                  f"{len(d.cycle)} cycles; colour: the cycle's score s \u2208 [-1, 1] (last cycle unscored: grey 0)",
                  height=max(320, 120 + 28 * len(names)))
