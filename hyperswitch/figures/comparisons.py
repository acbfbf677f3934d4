"""Arms of one study compared with a reference arm, seed by seed: a table and a forest plot.

An *arm* is a value of one factor of the study (a parameter such as ``variant`` or ``optimizer``, the policy, or the
corrector on/off; the factors of :mod:`hyperswitch.figures.ablations`). Two runs are a *pair* when they have the
same seed (same initialisation and batch order) and the same value of every other parameter that varies within an
arm (a task, a learning rate of a grid; never one the arm itself sets, as ``variant`` sets ``T1``). Per arm the
table gives:

- its runs (completed or diverged; running, stopped and error trials are left out and counted),
- the bimodal rule of :func:`hyperswitch.figures._stats.split_outcome`: runs that diverged or have no value of the
  metric are a rate with its Wilson interval, and the mean ± s.d. is over the other runs only,
- against the reference arm: the mean paired difference (arm − reference) with its 95% interval (Student t on the
  differences, or a percentile bootstrap), the number of pairs and the runs that are not pairs and why, the
  difference of the failure rates (Newcombe's interval), and whether each interval excludes 0.

With ``split`` (a task, say) every value of it gets its own arms and pairs: differences are not pooled across it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures import ablations as fa
from hyperswitch.figures._common import METRIC_SCALE, PALETTE, axis, figure, metric_label
from hyperswitch.figures._stats import (
    PAIRED_METHODS,
    RATE_DIFF_METHOD,
    Outcome,
    PairedDiff,
    Rate,
    RateDiff,
    fmt,
    paired_difference,
    rate_difference,
    split_outcome,
    wilson,
)
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.schema import COMPLETED, DIVERGED, METRICS

NONE = fa.NONE
MIN_PAIRS = 10  # a headline comparison needs at least this many pairs (issue 16)
OUTCOME_STATUSES = (COMPLETED, DIVERGED)
_ARM_SETS = {fa.CORRECTOR: ("T1",)}  # columns a derived factor is made of: never a pairing column


WALL_TIME_METRICS = ("wall_time_s", "time_to_target_s", "samples_per_s")
WALL_TIME_NOTE = ("wall times of different trials (run at different moments, under different machine load) are "
                  "not a speed result: use step counts, or runs side by side in one process")


def failure_label(metric: str) -> str:
    """What a run without a value of ``metric`` means."""
    if metric == "time_to_target_s":
        return "diverged or never reached the target"
    if metric == "switch_step":
        return "diverged or never switched"
    return "diverged or no value"


@dataclass(frozen=True)
class ArmRow:
    split: str  # the value of the split factor ("" when not split)
    arm: str  # the arm's label (as on the Ablations page: "variant = mixer")
    is_reference: bool
    outcome: Outcome  # runs, failure rate, mean ± s.d. over the runs that did not fail
    diverged: Rate  # runs whose status is "diverged"
    paired: PairedDiff | None  # arm - reference (None for the reference itself)
    failed_diff: RateDiff | None  # failure rate of the arm - of the reference

    @property
    def verdict(self) -> str:
        """A helper for a verdict, not the verdict: which side of 0 the paired interval lies on."""
        p = self.paired
        if p is None:
            return "reference"
        if p.n < 2:
            return "no interval (under 2 pairs)"
        if not p.excludes_zero:
            return "CI includes 0"
        return "higher (CI excludes 0)" if p.mean > 0 else "lower (CI excludes 0)"


@dataclass(frozen=True)
class Comparisons:
    metric: str
    mode: str  # which way the metric is better
    factor: str  # the arm factor
    reference: str  # the reference arm's label
    split: str  # NONE or a factor
    method: str  # "t" or "bootstrap"
    pair_on: list[str]  # what a pair shares: "seed" and the other parameters that vary within an arm
    rows: list[ArmRow]
    left_out: dict[str, int]  # status -> trials that are not an outcome (running, stopped, error)

    @property
    def bimodal(self) -> bool:
        return any(r.outcome.bimodal for r in self.rows)


def arm_labels(trials: pd.DataFrame, factor: str) -> list[str]:
    """The arms of ``factor`` in this study, in the order the table lists them."""
    labels = fa.factor_labels(trials, factor)
    return sorted(labels.dropna().astype(str).unique().tolist(), key=_natural_label)


def _natural_label(s: str) -> tuple[str, float, str]:
    head, _, tail = s.rpartition(" = ")
    try:
        return (head, float(tail), "")
    except ValueError:
        return (head, math.inf, s)


BASELINES = ("first_order", "baseline", "constant", "off", "none", "false", "0", "sgd", "sgdm", "single",
             "corrector off")


def default_reference(labels: Sequence[str]) -> str | None:
    """A baseline-looking arm (its value first_order, baseline, constant, off, none, false, 0, sgd, sgdm, single; the
    corrector off), else the first."""
    if not labels:
        return None
    values = [lab.rpartition(" = ")[2].strip().lower() for lab in labels]
    for hint in BASELINES:
        for lab, v in zip(labels, values, strict=True):
            if v == hint or v.startswith(hint + ":") or v == f"single: {hint}":
                return lab
    return labels[0]


def _label_key(text: str) -> str:
    """``text`` with the spaces around its ``=`` as arm labels write them (``variant=mixer``: ``variant = mixer``)."""
    head, eq, tail = text.strip().partition("=")
    return f"{head.strip()} = {tail.strip()}" if eq else text.strip()


def find_arms(labels: Sequence[str], arm: str) -> list[str]:
    """The arms among ``labels`` that ``arm`` names: the one whose full label it is (``variant = iomt_prose``, the
    spaces around ``=`` optional), else those whose value it is (``iomt_prose``: the label after `` = ``; a label
    with no ``=``, such as ``corrector off`` or a policy, is its own value)."""
    full = [lab for lab in labels if lab == arm.strip() or lab == _label_key(arm)]
    return full or [lab for lab in labels if lab.rpartition(" = ")[2] == arm.strip()]


def outcome_arms(trials: pd.DataFrame, factor: str) -> list[str]:
    """The arms of ``factor`` that :func:`comparison_data` compares: those of the completed or diverged trials."""
    done = trials[trials["status"].astype(str).isin(OUTCOME_STATUSES)] if "status" in trials else trials
    return arm_labels(done, factor) if len(done) else []


def pairing_columns(trials: pd.DataFrame, factor: str, parameters: Sequence[str],
                    arm: pd.Series | None = None) -> list[str]:
    """``seed`` and every parameter (not the factor, nor a column the factor is made of) that takes more than one
    value within some arm: two runs pair when they agree on all of them."""
    arm = fa.factor_labels(trials, factor) if arm is None else arm
    skip = {factor, *_ARM_SETS.get(factor, ())}
    out = ["seed"] if "seed" in trials else []
    for p in parameters:
        if p in skip or p not in trials or p in out:
            continue
        keys = trials[p].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v))
        if (keys.groupby(arm.to_numpy(), dropna=False).nunique(dropna=False) > 1).any():
            out.append(p)
    return out


def _plain(v: object) -> object:
    """A key value that compares equal to itself (NaN -> None, numpy scalars -> Python)."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _key_text(key: object, names: Sequence[str]) -> str:
    vals = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{n} {fmt(v) if not isinstance(v, str) else v}" for n, v in zip(names, vals, strict=True))


def comparison_data(trials: pd.DataFrame, parameters: Sequence[str], factor: str, metric: str,
                    reference: str | None = None, split: str = NONE, method: str = "t",
                    mode: str | None = None) -> Comparisons:
    """Every arm of ``factor`` against ``reference`` (an arm label; default :func:`default_reference`) on
    ``metric`` (see the module's docstring). Raises :class:`NotApplicable` when there is nothing to compare."""
    if method not in PAIRED_METHODS:
        raise ValueError(f"method must be one of {', '.join(PAIRED_METHODS)}, but got {method!r}")
    if metric not in trials.columns:
        raise NotApplicable(f"this study has no {metric_label(metric)} ({metric}) column")
    if "status" in trials:
        status = trials["status"].astype(str)
        done = trials[status.isin(OUTCOME_STATUSES)]
        left_out = {str(k): int(v) for k, v in status[~status.isin(OUTCOME_STATUSES)].value_counts().items()}
    else:
        done, left_out = trials, {}
    if not len(done):
        raise NotApplicable("no trial has completed or diverged yet")
    labels = fa.factor_labels(done, factor).astype(str)
    arms = sorted(labels.unique().tolist(), key=_natural_label)
    if len(arms) < 2:
        raise NotApplicable(f"{factor} takes a single value among the finished trials: nothing to compare")
    reference = reference if reference in arms else default_reference(arms)
    assert reference is not None
    pair_on = pairing_columns(done, factor, parameters, labels)
    if "seed" not in pair_on:
        raise NotApplicable("the trials have no seed column: runs cannot be paired")
    values = pd.to_numeric(done[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    diverged = (done["status"].astype(str) == DIVERGED).to_numpy() if "status" in done else np.zeros(len(done), bool)
    failed = diverged | ~np.isfinite(values)
    keys = list(zip(*(done[c].map(_plain).tolist() for c in pair_on), strict=True))
    if split in (NONE, factor):
        split = NONE
        parts = [("", np.ones(len(done), dtype=bool))]
    else:
        sv = fa.factor_labels(done, split).astype(str).to_numpy()
        parts = [(s, sv == s) for s in sorted(set(sv.tolist()), key=_natural_label)]
    lab = labels.to_numpy()
    rows: list[ArmRow] = []
    for sname, in_part in parts:
        per_arm: dict[str, tuple[Outcome, Rate, dict[object, float], list[tuple[object, str]]]] = {}
        for a in arms:
            m = in_part & (lab == a)
            if not m.any():
                continue
            idx = np.flatnonzero(m)
            outcome = split_outcome(values[idx], failed[idx])
            by_key: dict[object, list[float]] = {}
            for i in idx:
                by_key.setdefault(keys[i], []).append(math.nan if failed[i] else float(values[i]))
            single = {k: v[0] for k, v in by_key.items() if len(v) == 1}
            dup = [(k, f"{len(v)} runs of {a} share it") for k, v in by_key.items() if len(v) > 1]
            per_arm[a] = (outcome, wilson(int(diverged[idx].sum()), len(idx)), single, dup)
        if reference not in per_arm:
            continue
        ref_out, _, ref_vals, ref_dup = per_arm[reference]
        for a, (outcome, div, vals, dup) in per_arm.items():
            if a == reference:
                rows.append(ArmRow(sname, a, True, outcome, div, None, None))
                continue
            p = paired_difference(vals, ref_vals, method, a, reference)
            dropped: list[tuple[object, str]] = [(_key_text(k, pair_on), why)
                                                 for k, why in [*p.dropped, *dup, *ref_dup]]
            p = PairedDiff(p.n, p.mean, p.sd, p.low, p.high, p.method, [_key_text(k, pair_on) for k in p.keys],
                           p.diffs, dropped)
            rows.append(ArmRow(sname, a, False, outcome, div, p, rate_difference(outcome.failed, ref_out.failed)))
    if not any(not r.is_reference for r in rows):
        raise NotApplicable(f"no arm shares a {split} with the reference {reference}: nothing to compare"
                            if split != NONE else f"the reference {reference} has no finished run")
    mode = mode or METRICS.get(metric) or "max"
    return Comparisons(metric, mode, factor, reference, split, method, pair_on, rows, left_out)


# --- the table ------------------------------------------------------------------------------------------------

def _v(metric: str, v: float, signed: bool = False) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v * METRIC_SCALE.get(metric, 1.0):{'+' if signed else ''}.4g}"


def _rate_text(r: Rate) -> str:
    if not r.n:
        return "-"
    return f"{r.k}/{r.n} ({100 * r.rate:.0f}%, CI {100 * r.low:.0f}\u2013{100 * r.high:.0f}%)"


def _unpaired_text(p: PairedDiff) -> str:
    if not p.dropped:
        return ""
    reasons: dict[str, int] = {}
    for _, why in p.dropped:
        reasons[why] = reasons.get(why, 0) + 1
    return "; ".join(f"{n} {why}" for why, n in reasons.items())


TABLE_COLUMNS = ("split", "arm", "runs", "failed", "mean \u00b1 s.d.", "paired difference [95% CI]", "pairs",
                 "verdict helper", "failure rate difference [95% CI]", "not paired")


def comparison_rows(d: Comparisons) -> list[dict[str, Any]]:
    """The table as rows of text (the dashboard's and the report's): one per arm (and split value)."""
    out = []
    for r in d.rows:
        o = r.outcome
        ms = f"{_v(d.metric, o.mean)} \u00b1 {_v(d.metric, o.sd)}" if math.isfinite(o.sd) else _v(d.metric, o.mean)
        ms += f" (n {len(o.values)}{', runs that did not fail' if o.bimodal else ''})"
        row: dict[str, Any] = {"split": r.split, "arm": r.arm + (" (reference)" if r.is_reference else ""),
                               "runs": o.n, "failed": _rate_text(o.failed), "mean \u00b1 s.d.": ms}
        p, fd = r.paired, r.failed_diff
        if p is None or fd is None:
            row.update({"paired difference [95% CI]": "", "pairs": "", "verdict helper": "reference",
                        "failure rate difference [95% CI]": "", "not paired": ""})
        else:
            ci = f" [{_v(d.metric, p.low, True)}, {_v(d.metric, p.high, True)}]" if math.isfinite(p.low) else ""
            row["paired difference [95% CI]"] = _v(d.metric, p.mean, True) + ci
            row["pairs"] = f"{p.n}" + (f" (< {MIN_PAIRS})" if p.n < MIN_PAIRS else "")
            row["verdict helper"] = r.verdict
            row["failure rate difference [95% CI]"] = (
                f"{100 * fd.diff:+.0f} pp [{100 * fd.low:+.0f}, {100 * fd.high:+.0f}]"
                + (" excludes 0" if fd.excludes_zero else "")) if math.isfinite(fd.diff) else "-"
            row["not paired"] = _unpaired_text(p)
        out.append(row)
    if d.split == NONE:
        for row in out:
            del row["split"]
    return out


def comparison_note(d: Comparisons) -> str:
    """How to read the table: what a pair is, the methods, what was left out."""
    parts = [f"Pairs share {', '.join(d.pair_on)}; difference = arm \u2212 {d.reference} on "
             f"{metric_label(d.metric)} ({d.mode} is better); interval: {PAIRED_METHODS[d.method]}.",
             f"'failed' = {failure_label(d.metric)}, with the Wilson 95% interval; an arm with a failed run is "
             "bimodal: its mean \u00b1 s.d. is over the runs that did not fail, and the failure rates are compared "
             f"by {RATE_DIFF_METHOD}.",
             f"Under {MIN_PAIRS} pairs a comparison is not a headline result."]
    if d.metric in WALL_TIME_METRICS:
        parts.append(f"Caution: {WALL_TIME_NOTE}.")
    if d.left_out:
        parts.append("Left out (not an outcome): " + ", ".join(f"{n} {s}" for s, n in sorted(d.left_out.items())) + ".")
    return " ".join(parts)


# --- the forest plot ------------------------------------------------------------------------------------------

def forest_figure(d: Comparisons) -> go.Figure:
    """One row per arm (and split value): the mean paired difference with its 95% interval, a line at 0; when an
    arm is bimodal, a second panel with the difference of the failure rates (Newcombe's interval)."""
    s = METRIC_SCALE.get(d.metric, 1.0)
    rows = [r for r in d.rows if r.paired is not None]
    splits = sorted({r.split for r in rows}, key=_natural_label)
    ylab = [f"{r.arm} ({r.split})" if r.split else r.arm for r in rows]
    two = d.bimodal
    data: list[dict[str, Any]] = []
    for i, sp in enumerate(splits):
        sel = [k for k, r in enumerate(rows) if r.split == sp]
        ps = [rows[k].paired for k in sel]
        mean = np.array([p.mean if p else np.nan for p in ps]) * s
        lo = np.array([p.low if p else np.nan for p in ps]) * s
        hi = np.array([p.high if p else np.nan for p in ps]) * s
        color = PALETTE[i % len(PALETTE)]
        name = sp or "paired difference"
        data.append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                     "x": mean.tolist(), "y": [ylab[k] for k in sel], "marker": {"color": color, "size": 10,
                                                                         "symbol": ["circle" if p and p.n >= MIN_PAIRS
                                                                                    else "circle-open" for p in ps]},
                     "error_x": {"type": "data", "symmetric": False, "array": np.nan_to_num(hi - mean).tolist(),
                                 "arrayminus": np.nan_to_num(mean - lo).tolist(), "visible": True, "color": color},
                     "customdata": [[p.n if p else 0, float(lo[j]), float(hi[j])] for j, p in enumerate(ps)],
                     "hovertemplate": "%{y}<br>difference %{x:.4g}<br>95% CI [%{customdata[1]:.4g}, "
                                      "%{customdata[2]:.4g}]<br>pairs %{customdata[0]}<extra></extra>"})
        if two:
            fds = [rows[k].failed_diff for k in sel]
            fm = np.array([f.diff if f else np.nan for f in fds]) * 100
            flo = np.array([f.low if f else np.nan for f in fds]) * 100
            fhi = np.array([f.high if f else np.nan for f in fds]) * 100
            data.append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                         "showlegend": False, "xaxis": "x2", "yaxis": "y", "x": fm.tolist(),
                         "y": [ylab[k] for k in sel],
                         "marker": {"color": color, "size": 10, "symbol": "diamond"},
                         "error_x": {"type": "data", "symmetric": False, "array": np.nan_to_num(fhi - fm).tolist(),
                                     "arrayminus": np.nan_to_num(fm - flo).tolist(), "visible": True, "color": color},
                         "hovertemplate": "%{y}<br>failure rate difference %{x:.0f} pp<extra></extra>"})
    label = metric_label(d.metric)
    layout: dict[str, Any] = {
        "xaxis": axis(f"{label}: arm \u2212 reference", domain=[0, 0.6] if two else [0, 1],
                      zeroline=True, zerolinecolor="#444", zerolinewidth=1),
        "yaxis": axis("", type="category", autorange="reversed"),
        "showlegend": len(splits) > 1,
        "legend": {"title": {"text": d.split}, "orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"},
        "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                    "line": {"color": "#444", "width": 1, "dash": "dot"}}],
    }
    if two:
        layout["xaxis2"] = axis("failure rate: arm \u2212 reference (pp)", domain=[0.7, 1], anchor="y")
        layout["shapes"].append({"type": "line", "xref": "x2", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                                 "line": {"color": "#444", "width": 1, "dash": "dot"}})
    ns = ", ".join(str(r.paired.n) for r in rows[:12] if r.paired) + (" ..." if len(rows) > 12 else "")
    sub = (f"point: mean paired difference (pairs share {', '.join(d.pair_on)}; pairs: {ns}); bar: 95% CI "
           f"({'Student t' if d.method == 't' else 'percentile bootstrap'}); open point: under {MIN_PAIRS} pairs"
           + (f"<br>right: rate of runs that {failure_label(d.metric).replace('or no value', 'or have no value')}, "
              "difference with Newcombe's 95% CI" if two else "")
           + (f"<br>caution: {WALL_TIME_NOTE}" if d.metric in WALL_TIME_METRICS else ""))
    height = max(320, 170 + 44 * len(rows) + (60 if len(splits) > 1 else 0))
    layout["margin"] = {"l": 60, "r": 20, "t": 100 if two else 84, "b": 110 if len(splits) > 1 else 60}
    return figure(data, layout, f"{label}: paired difference vs {d.reference}", sub, height=height)


def table_figure(d: Comparisons) -> go.Figure:
    """The table of :func:`comparison_rows` as a figure (for the report's HTML and PNG files)."""
    rows = comparison_rows(d)
    cols = [c for c in TABLE_COLUMNS if c in rows[0]]
    widths = {"split": 1.2, "arm": 1.6, "runs": 0.5, "failed": 1.5, "mean \u00b1 s.d.": 1.7, "pairs": 0.7,
              "paired difference [95% CI]": 1.8, "verdict helper": 1.4, "failure rate difference [95% CI]": 1.5,
              "not paired": 1.8}
    data = [{"type": "table", "columnwidth": [widths[c] for c in cols],
             "header": {"values": [f"<b>{c}</b>" for c in cols], "align": "left", "fill": {"color": "#EBF0F8"},
                        "font": {"size": 11}},
             "cells": {"values": [[str(r[c]) for r in rows] for c in cols], "align": "left", "font": {"size": 11},
                       "height": 24}}]
    height = 150 + 80 * len(rows)
    return figure(data, {"margin": {"l": 10, "r": 10, "t": 84, "b": 10}},
                  f"{metric_label(d.metric)}: every arm of {d.factor} vs {d.reference}",
                  f"pairs share {', '.join(d.pair_on)}; 95% CI: {PAIRED_METHODS[d.method]}; failed = "
                  f"{failure_label(d.metric)} (Wilson; differences: Newcombe)", height=height)
