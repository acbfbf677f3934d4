"""Ablations: a metric per value of an on/off (or few-valued) factor, with error bars over runs.

Factors are the study's parameters that take 2 to 8 values (``select: random | cyclical | surrogate``,
``halving``, ``use_transferability``, ``compress``, ...), the policy, and ``corrector`` (on where ``T1 > 0``,
off where ``T1 = 0``) when a Mixer study varies ``T1`` through zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, axis, error_array, figure, metric_label
from hyperswitch.figures._stats import SPREAD_LONG, fmt
from hyperswitch.figures.data import NotApplicable, policy_labels
from hyperswitch.figures.memory import GroupBars, group_bars_data, group_bars_figure
from hyperswitch.results.cache import nunique

CORRECTOR, POLICY, NONE = "corrector", "policy", "none"
MAX_LEVELS = 8
ARM_LEVELS = 16  # ``variant`` / ``ablation``: the arms a study names itself
KNOWN = {
    "T1": "corrector length (T1 = 0 turns it off)",
    "select": "candidate selection (random / cyclical / surrogate)",
    "halving": "halving of the exploration weight",
    "use_transferability": "transferability term",
    "compress": "state compression (pca / rp)",
    "unit": "switch unit",
}


def ablation_factors(trials: pd.DataFrame, parameters: Sequence[str]) -> list[tuple[str, str]]:
    """(factor, label) pairs this study can compare, the usual ablation switches first."""
    out: list[tuple[str, str]] = []
    if "T1" in trials:
        t1 = pd.to_numeric(trials["T1"], errors="coerce")
        if (t1 == 0).any() and (t1 > 0).any():
            out.append((CORRECTOR, "corrector on / off (T1 > 0 vs T1 = 0)"))
    arms = ("variant", "ablation")  # a study's named arms: all of them, up to ARM_LEVELS (iomt_ablation has 9)
    few = [p for p in parameters
           if p in trials and 2 <= nunique(trials[p]) <= (ARM_LEVELS if p in arms else MAX_LEVELS)]
    first = [p for p in few if p in KNOWN or p in arms]
    for p in first + [p for p in few if p not in first]:
        out.append((p, f"{p}: {KNOWN[p]}" if p in KNOWN else p))
    if len(trials) and policy_labels(trials).nunique() > 1:
        out.append((POLICY, "policy"))
    return out


def default_split(factors: Sequence[str], factor: str | None) -> str:
    """A factor to draw side by side (a task, workload or data set), or ``none``."""
    for f in factors:
        if f != factor and any(k in f.lower() for k in ("task", "workload", "dataset", "data")):
            return f
    return NONE


def factor_labels(trials: pd.DataFrame, factor: str) -> pd.Series:
    if factor == CORRECTOR:
        t1 = pd.to_numeric(trials["T1"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(np.where(t1 > 0, "corrector on", np.where(t1 == 0, "corrector off", "?")),
                         index=trials.index)
    if factor == POLICY:
        return policy_labels(trials)
    if factor not in trials:
        raise NotApplicable(f"this study has no parameter {factor!r}")
    return trials[factor].map(lambda v: f"{factor} = {fmt(v) if not isinstance(v, str) else v}")


def ablation_data(trials: pd.DataFrame, factor: str, metric: str, spread: str = "std") -> GroupBars:
    labels = factor_labels(trials, factor)
    if labels.nunique() < 2:
        raise NotApplicable(f"{factor} takes a single value in this study: nothing to compare")
    return group_bars_data(trials, labels, metric, spread, by=factor)


def ablation_split_data(trials: pd.DataFrame, factor: str, split: str, metric: str,
                        spread: str = "std") -> list[tuple[str, GroupBars]]:
    """:func:`ablation_data` for each value of ``split`` (e.g. per task), so that tasks are not pooled."""
    if split in (NONE, factor):
        return [("", ablation_data(trials, factor, metric, spread))]
    labels = factor_labels(trials, split)
    parts = []
    for value in sorted(labels.dropna().unique().tolist(), key=str):
        sub = trials[labels == value]
        try:
            parts.append((str(value), ablation_data(sub, factor, metric, spread)))
        except NotApplicable:
            continue
    if not parts:
        raise NotApplicable(f"{factor} takes a single value within every {split}: nothing to compare")
    return parts


def ablation_figure(parts: list[tuple[str, GroupBars]], factor: str, split: str) -> go.Figure:
    """Bars per value of ``factor``; side by side per value of ``split`` when there are several."""
    if len(parts) == 1 and not parts[0][0]:
        d = parts[0][1]
        return group_bars_figure(d, f"{metric_label(d.metric)} per value of {factor}")
    d0 = parts[0][1]
    s = METRIC_SCALE.get(d0.metric, 1.0)
    data = []
    for i, (name, d) in enumerate(parts):
        data.append({"type": "bar", "name": name, "x": d.groups, "y": d.mean * s, "customdata": d.n,
                     "marker": {"color": PALETTE[i % len(PALETTE)]},
                     "error_y": {"type": "data", "symmetric": False, "array": error_array(d.upper - d.mean, s),
                                 "arrayminus": error_array(d.mean - d.lower, s), "visible": True},
                     "hovertemplate": f"{name}<br>%{{x}}<br>mean %{{y:.4g}}<br>runs %{{customdata}}<extra></extra>"})
    layout = {"barmode": "group", "xaxis": axis(factor, type="category"), "yaxis": axis(metric_label(d0.metric)),
              "legend": {"title": {"text": split}}}
    return figure(data, layout, f"{metric_label(d0.metric)} per value of {factor}, by {split}",
                  f"bar: mean; error bar: {SPREAD_LONG[d0.spread]} over runs; one colour per {split}")
