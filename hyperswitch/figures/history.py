"""A study's history: the optimisation history (the metric per configuration in sampling order, each seed a faint
point, the seeds' mean, and the best mean so far), the trials table's rows, and one trial's curves over steps
with its events (switches, IOMT cycles, divergence) marked and listed with their JSON detail made readable.

A configuration's value is the mean of its finished seeds' finite values (what the sweep's sampler was told and
what ``export-optuna`` records); running trials are not results yet, they are counted in the subtitle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import (
    METRIC_SCALE,
    PALETTE,
    WEBGL_POINTS,
    axis,
    figure,
    metric_label,
    rgba,
    step_label,
)
from hyperswitch.figures._stats import fmt, grouped_stats
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.schema import FINISHED_STATUSES, RUNNING

MODES = ("max", "min")
# The per-step column that shows a per-trial metric's course (None: the metric has none; the curves show the
# validation accuracy, else the validation loss).
STEP_COLUMN = {"val_accuracy": "val_accuracy", "best_val_accuracy": "val_accuracy", "val_loss": "val_loss",
               "train_loss": "loss", "val_recon_error": "val_recon_error", "peak_memory_bytes": "memory_bytes"}
# How each event kind is marked on a trial's curve.
EVENT_MARKS = {"switch": ("x", "#d62728"), "fusion_end": ("diamond", "#9467bd"),
               "iomt_cycle": ("triangle-up", "#2ca02c"), "diverged": ("star", "#000000")}
_RUNNER_ID = re.compile(r"c\d+")
MAX_TICK_LABELS = 25  # up to this many configurations, the x axis names them


def config_order(config_ids: Iterable[Any]) -> list[str]:
    """Distinct configuration ids in sampling order: ``c0002`` before ``c0010``, numbers compared as numbers."""
    ids = sorted({str(c) for c in config_ids})
    if len({len(c) for c in ids}) <= 1 and all(_RUNNER_ID.fullmatch(c) for c in ids):
        return ids  # the runner's ids (c0000, c0001, ...): their text order is their number's

    def key(cid: str) -> tuple[Any, ...]:
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", cid) if p)

    return sorted(ids, key=key)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be max or min, but got {mode!r}")
    return mode


# --- the optimisation history -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class History:
    metric: str
    mode: str
    config_ids: list[str]  # every configuration with a finished trial, in sampling order
    x: np.ndarray  # its position, 1..n
    mean: np.ndarray  # the seeds' mean (NaN: no finished seed has a finite value)
    std: np.ndarray  # sample standard deviation over seeds (NaN with fewer than 2)
    n: np.ndarray  # seeds with a finite value
    best: np.ndarray  # the best mean up to and including this configuration (NaN before the first)
    best_config: list[str | None]  # whose mean that is (the earlier one on a tie)
    seed_x: np.ndarray  # one point per finished trial with a finite value
    seed_y: np.ndarray
    seed_trial: list[str]
    n_runs: int  # finished trials
    n_excluded: int  # finished trials without a finite value
    n_running: int

    @property
    def best_index(self) -> int:
        """The index (into ``config_ids``) of the best configuration."""
        return self.config_ids.index(str(self.best_config[-1]))

    @property
    def n_configs(self) -> int:
        """Configurations with a value."""
        return int((self.n > 0).sum())


def history_data(trials: pd.DataFrame, metric: str, mode: str) -> History:
    """The optimisation history of ``metric`` (``mode``: ``max`` or ``min`` is better) over a study's trials."""
    check_mode(mode)
    if metric not in trials.columns:
        raise NotApplicable(f"this study has no {metric_label(metric)} ({metric}) column")
    status = trials["status"].astype(str) if "status" in trials else pd.Series("completed", index=trials.index)
    n_running = int((status == RUNNING).sum())
    done = trials[status.isin(FINISHED_STATUSES).to_numpy()]
    if not len(done):
        raise NotApplicable("no trial has finished yet" + (f" ({n_running} running)" if n_running else ""))
    values = pd.to_numeric(done[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(values)
    if not ok.any():
        raise NotApplicable(f"no finished trial has a value of {metric_label(metric)} ({metric})")
    cids = done["config_id"].astype(str).to_numpy()
    order = config_order(cids)
    pos = {c: i for i, c in enumerate(order)}
    codes = np.array([pos[c] for c in cids], dtype=np.int64)
    stats = grouped_stats(codes, values, len(order))
    sign = 1.0 if mode == "max" else -1.0
    best = np.full(len(order), np.nan)
    best_config: list[str | None] = []
    cur, cur_c = np.nan, None
    for i, m in enumerate(stats.mean):
        if np.isfinite(m) and (not np.isfinite(cur) or sign * (m - cur) > 0):
            cur, cur_c = float(m), order[i]
        best[i] = cur
        best_config.append(cur_c)
    trial_ids = done["trial_id"].astype(str).to_numpy() if "trial_id" in done else np.array([""] * len(done))
    return History(metric, mode, order, np.arange(1, len(order) + 1, dtype=float), stats.mean, stats.std,
                   stats.count, best, best_config, codes[ok].astype(float) + 1, values[ok],
                   [str(t) for t in trial_ids[ok]], len(done), int((~ok).sum()), n_running)


def value_text(metric: str, v: float) -> str:
    """A metric value as the figures show it (bytes in MiB)."""
    if not math.isfinite(v):
        return "-"
    return f"{v * METRIC_SCALE.get(metric, 1.0):.4g}"


def history_figure(d: History) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    label = metric_label(d.metric)
    many = len(d.seed_x) > WEBGL_POINTS
    has = d.n > 0
    data: list[dict[str, Any]] = [
        {"type": "scattergl" if many else "scatter", "x": d.seed_x, "y": d.seed_y * s, "mode": "markers",
         "name": "each seed", "text": d.seed_trial,
         "marker": {"size": 5, "color": rgba("#7f7f7f", 0.45), "line": {"width": 0}},
         "hovertemplate": f"%{{text}}<br>{label} %{{y:.4g}}<extra></extra>"},
        {"type": "scattergl" if has.sum() > WEBGL_POINTS else "scatter", "x": d.x[has], "y": d.mean[has] * s,
         "mode": "markers", "name": "mean over seeds", "marker": {"size": 8, "color": PALETTE[0]},
         "customdata": np.column_stack([np.asarray(d.config_ids, dtype=object)[has], d.n[has],
                                        np.nan_to_num(d.std[has] * s, nan=0.0)]),
         "hovertemplate": f"%{{customdata[0]}}<br>mean {label} %{{y:.4g}}<br>seeds %{{customdata[1]}}, "
                          "s.d. %{customdata[2]:.3g}<extra></extra>"},
        {"type": "scatter", "x": d.x, "y": d.best * s, "mode": "lines", "name": f"best so far ({d.mode})",
         "line": {"color": PALETTE[1], "width": 2, "shape": "hv"}, "text": [c or "" for c in d.best_config],
         "hovertemplate": "best so far %{y:.4g} (%{text})<extra></extra>"},
    ]
    xaxis = axis("configuration (in sampling order)")
    if len(d.config_ids) <= MAX_TICK_LABELS:
        xaxis.update(tickmode="array", tickvals=d.x.tolist(), ticktext=d.config_ids)
    bi = d.best_index
    sub = (f"{d.n_configs} configurations, {d.n_runs} finished runs"
           + (f", {d.n_running} running" if d.n_running else "")
           + (f", {d.n_excluded} without a value (left out)" if d.n_excluded else "")
           + f"; line: the best mean so far ({'highest' if d.mode == 'max' else 'lowest'}); best "
           f"{value_text(d.metric, float(d.mean[bi]))} ({d.config_ids[bi]}, {int(d.n[bi])} "
           f"seed{'' if int(d.n[bi]) == 1 else 's'})")
    return figure(data, {"xaxis": xaxis, "yaxis": axis(label)}, f"optimisation history: {label}", sub, height=420)


# --- the trials table -------------------------------------------------------------------------------------------

ID_COLUMNS = ("trial_id", "config_id", "seed", "status")
MAIN_METRICS = ("val_accuracy", "val_loss", "train_loss", "switch_step", "time_to_target_s", "wall_time_s",
                "peak_memory_bytes")


@dataclass(frozen=True)
class TrialColumn:
    id: str
    name: str
    numeric: bool


def trial_columns(trials: pd.DataFrame, parameters: Sequence[str], metric: str) -> list[TrialColumn]:
    """The trials table's columns: identity, every sampled parameter, the study's metric, the main metrics (those
    the study has). Peak memory is shown in MiB."""
    ids = [c for c in ID_COLUMNS if c in trials.columns]
    params = [p for p in parameters if p in trials.columns and p not in ids]
    metrics = [m for m in dict.fromkeys([metric, *MAIN_METRICS]) if m in trials.columns and m not in params]
    out = []
    for c in [*ids, *params, *metrics]:
        col = trials[c]
        num = (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)) or \
            c in MAIN_METRICS or c == metric
        name = "peak_memory (MiB)" if c == "peak_memory_bytes" else f"{c} (study metric)" if c == metric else c
        out.append(TrialColumn(c, name, bool(num)))
    return out


def _cell(v: Any, numeric: bool, scale: float) -> Any:
    if v is None:
        return None
    if numeric:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(x):
            return None
        x *= scale
        return int(x) if scale == 1.0 and isinstance(v, int | np.integer) else x
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict | list | tuple | np.ndarray):
        return json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, default=str, separators=(", ", ": "))
    return str(v)


def trial_rows(trials: pd.DataFrame, columns: Sequence[TrialColumn],
               statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One record per trial (``id``: its trial id), numbers as numbers (NaN: empty), structured values as JSON;
    only trials whose status is in ``statuses`` (None: all)."""
    t = trials
    if statuses is not None and "status" in t:
        t = t[t["status"].astype(str).isin(list(statuses)).to_numpy()]
    cols = {c.id: [_cell(v, c.numeric, METRIC_SCALE.get(c.id, 1.0)) for v in t[c.id].tolist()] for c in columns}
    ids = t["trial_id"].astype(str).tolist()
    return [{"id": tid, **{k: v[i] for k, v in cols.items()}} for i, tid in enumerate(ids)]


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per status, the finished statuses and ``running`` first (those with none too)."""
    counts: dict[str, int] = {}
    if "status" in trials and len(trials):
        counts = {str(k): int(v) for k, v in trials["status"].astype(str).value_counts().items()}
    known = [*FINISHED_STATUSES, RUNNING]
    return {s: int(counts.get(s, 0)) for s in [*known, *sorted(set(counts) - set(known))]}


# --- one trial ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialEvent:
    step: int
    kind: str
    detail: str  # readable: "key: value; key: value"


@dataclass(frozen=True)
class TrialCurves:
    trial_id: str
    status: str
    step: np.ndarray
    loss: np.ndarray  # training loss per step (NaN where none)
    metric: str  # the study's metric
    column: str | None  # the step column shown for it (None: none besides the loss)
    metric_step: np.ndarray
    metric_value: np.ndarray
    events: list[TrialEvent]


def readable_detail(detail: Any) -> str:
    """An event's JSON detail as ``key: value; key: value`` (numbers to 4 significant digits, nested values as
    compact JSON); text that is not a JSON object is shown as it is."""
    if detail is None or (isinstance(detail, float) and math.isnan(detail)):
        return ""
    try:
        obj = json.loads(detail) if isinstance(detail, str | bytes) else detail
    except ValueError:
        return str(detail)
    if not isinstance(obj, dict):
        return str(detail) if isinstance(detail, str) else json.dumps(obj)

    def one(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return json.dumps(v)
        if isinstance(v, int | float):
            return fmt(v) if math.isfinite(v) else str(v)
        if isinstance(v, str):
            return v
        return json.dumps(v, separators=(",", ":"))

    return "; ".join(f"{k}: {one(v)}" for k, v in obj.items())


def trial_events(events: pd.DataFrame, trial_id: str) -> list[TrialEvent]:
    """One trial's events (``trial_id, step, kind[, detail]`` rows), by step."""
    if not len(events):
        return []
    ev = events[(events["trial_id"].astype(str) == str(trial_id)).to_numpy()]
    order = np.argsort(ev["step"].to_numpy(dtype=float, na_value=np.nan), kind="stable")
    steps, kinds = ev["step"].to_numpy()[order], ev["kind"].astype(str).to_numpy()[order]
    details = ev["detail"].to_numpy()[order] if "detail" in ev else [None] * len(ev)
    return [TrialEvent(int(s), str(k), readable_detail(d)) for s, k, d in zip(steps, kinds, details, strict=True)]


def metric_step_column(metric: str, available: Sequence[str]) -> str | None:
    """The per-step column that follows ``metric`` (the validation accuracy, else loss, for a metric with none)."""
    col = STEP_COLUMN.get(metric)
    if col is None:
        col = next((c for c in ("val_accuracy", "val_loss") if c in available), None)
    return col if col in available and col != "loss" else None


def trial_curves_data(steps: pd.DataFrame, events: pd.DataFrame, trial_id: str, metric: str,
                      status: str = "") -> TrialCurves:
    """One trial's training loss and its metric's step column against step, with its events.

    ``steps``: ``trial_id, step, loss`` and the metric's column (see :func:`metric_step_column`), any number of
    trials; ``events``: ``trial_id, step, kind, detail``."""
    mine = steps[(steps["trial_id"].astype(str) == str(trial_id)).to_numpy()] if len(steps) else steps
    if not len(mine):
        raise NotApplicable(f"trial {trial_id} has no recorded steps yet")
    mine = mine.sort_values("step", kind="stable")
    step = mine["step"].to_numpy(dtype=float)
    loss = mine["loss"].to_numpy(dtype=float, na_value=np.nan) if "loss" in mine else np.full(len(mine), np.nan)
    col = metric_step_column(metric, list(mine.columns))
    ms, mv = np.array([]), np.array([])
    if col is not None:
        v = mine[col].to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(v)
        ms, mv = step[ok], v[ok]
        if not ok.any():
            col = None
    return TrialCurves(str(trial_id), status, step, loss, metric, col, ms, mv, trial_events(events, trial_id))


def _y_at(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    ok = np.isfinite(y)
    if not ok.any():
        return np.zeros(len(at))
    return np.interp(at, x[ok], y[ok])


def trial_curves_figure(d: TrialCurves) -> go.Figure:
    data: list[dict[str, Any]] = []
    kind = "scattergl" if len(d.step) > 5 * WEBGL_POINTS else "scatter"
    data.append({"type": kind, "x": d.step, "y": d.loss, "mode": "lines", "name": step_label("loss"),
                 "line": {"color": PALETTE[0], "width": 2},
                 "hovertemplate": "step %{x}<br>training loss %{y:.4g}<extra></extra>"})
    xaxis = axis("step")
    if d.step[-1] - d.step[0] <= 20:  # whole steps as ticks
        xaxis["dtick"] = 1
    layout: dict[str, Any] = {"xaxis": xaxis, "yaxis": axis(step_label("loss")), "legend": {"orientation": "h",
                                                                                           "y": -0.18}}
    if d.column is not None:
        s = METRIC_SCALE.get(d.column, 1.0)
        lab = step_label(d.column)
        data.append({"type": "scatter", "x": d.metric_step, "y": d.metric_value * s,
                     "mode": "lines+markers" if len(d.metric_step) <= 60 else "lines", "name": lab, "yaxis": "y2",
                     "line": {"color": PALETTE[3], "width": 2}, "marker": {"size": 6},
                     "hovertemplate": f"step %{{x}}<br>{lab} %{{y:.4g}}<extra></extra>"})
        layout["yaxis2"] = axis(lab, overlaying="y", side="right", showgrid=False)
    shapes = []
    for k in dict.fromkeys(e.kind for e in d.events):
        mine = [e for e in d.events if e.kind == k]
        at = np.array([e.step for e in mine], dtype=float)
        symbol, color = EVENT_MARKS.get(k, ("circle", "#7f7f7f"))
        data.append({"type": "scatter", "x": at, "y": _y_at(d.step, d.loss, at), "mode": "markers", "name": k,
                     "marker": {"symbol": symbol, "size": 11, "color": color, "line": {"width": 1, "color": color}},
                     "text": [e.detail for e in mine],
                     "hovertemplate": f"{k} at step %{{x}}<br>%{{text}}<extra></extra>"})
        if k in ("switch", "diverged"):
            shapes += [{"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                        "line": {"color": color, "width": 1, "dash": "dot"}} for x in at[:50]]
    layout["shapes"] = shapes
    counts = {k: sum(e.kind == k for e in d.events) for k in dict.fromkeys(e.kind for e in d.events)}
    ev_text = ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "no events"
    sub = (f"status {d.status}; " if d.status else "") + f"{len(d.step)} steps; {ev_text}"
    if d.column is None:
        sub += f"; no per-step values for {metric_label(d.metric)}"
    return figure(data, layout, f"trial {d.trial_id}: training loss"
                  + (f" and {step_label(d.column)}" if d.column else "") + " vs step", sub, height=420)
