"""Two or more studies on one metric: per study the distribution of its configurations' means (a box with every
configuration as a point), the best-so-far curves overlaid, and a table (configurations, best mean ± s.d. over
seeds, its configuration). A configuration's value is its finished seeds' mean, as in
:mod:`hyperswitch.figures.history`; a study without a value of the metric is named, not an error."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, PALETTE, axis, figure, metric_label
from hyperswitch.figures.data import NotApplicable
from hyperswitch.figures.history import History, check_mode, history_data, value_text
from hyperswitch.results.schema import METRICS


@dataclass(frozen=True)
class StudyResult:
    name: str
    history: History

    @property
    def best_config(self) -> str:
        return self.history.config_ids[self.history.best_index]

    @property
    def best_mean(self) -> float:
        return float(self.history.mean[self.history.best_index])

    @property
    def best_std(self) -> float:
        """Sample standard deviation over the best configuration's seeds (NaN for one seed)."""
        return float(self.history.std[self.history.best_index])

    @property
    def best_seeds(self) -> int:
        return int(self.history.n[self.history.best_index])

    @property
    def means(self) -> np.ndarray:
        """Every configuration's mean (those with a value), in sampling order."""
        h = self.history
        return h.mean[h.n > 0]

    @property
    def means_config(self) -> list[str]:
        h = self.history
        return [c for c, k in zip(h.config_ids, h.n, strict=True) if k > 0]


@dataclass(frozen=True)
class Comparison:
    metric: str
    mode: str
    studies: list[StudyResult]
    missing: list[tuple[str, str]]  # (study, why it has no value of the metric)


def comparison_mode(metric: str, own_modes: Mapping[str, str]) -> str:
    """Which way ``metric`` is better: its direction in the results schema, else the mode of a study whose own
    metric it is (``own_modes``: study metric -> mode), else ``max``."""
    return METRICS.get(metric) or own_modes.get(metric) or "max"


def compare_data(studies: Sequence[tuple[str, pd.DataFrame]], metric: str, mode: str) -> Comparison:
    """``studies``: (name, trials table) pairs. Raises :class:`NotApplicable` when none has a value of ``metric``."""
    check_mode(mode)
    if not studies:
        raise NotApplicable("pick one or more studies to compare")
    got, missing = [], []
    for name, trials in studies:
        try:
            got.append(StudyResult(name, history_data(trials, metric, mode)))
        except NotApplicable as exc:
            missing.append((name, str(exc)))
    if not got:
        raise NotApplicable(f"no picked study has a value of {metric_label(metric)} ({metric}): "
                            + "; ".join(f"{n}: {why}" for n, why in missing))
    return Comparison(metric, mode, got, missing)


def missing_note(d: Comparison) -> str | None:
    if not d.missing:
        return None
    return f"Not shown, no value of {d.metric}: " + "; ".join(f"{n} ({why})" for n, why in d.missing)


def comparison_rows(d: Comparison) -> list[dict[str, Any]]:
    """One row per study: configurations with a value, the best mean ± s.d. over its seeds, its configuration."""
    rows = []
    s = METRIC_SCALE.get(d.metric, 1.0)
    for r in d.studies:
        std = r.best_std
        best = value_text(d.metric, r.best_mean) + (f" \u00b1 {std * s:.2g}" if np.isfinite(std) else "")
        rows.append({"study": r.name, "configurations": r.history.n_configs, "best mean \u00b1 s.d.": best,
                     "seeds": r.best_seeds, "config_id": r.best_config})
    return rows


def distribution_figure(d: Comparison) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    label = metric_label(d.metric)
    data = []
    for i, r in enumerate(d.studies):
        color = PALETTE[i % len(PALETTE)]
        data.append({"type": "box", "name": r.name, "y": r.means * s, "text": r.means_config,
                     "boxpoints": "all", "jitter": 0.3, "pointpos": -1.6, "marker": {"color": color, "size": 5,
                                                                                     "opacity": 0.6},
                     "line": {"color": color}, "fillcolor": "rgba(0,0,0,0)",
                     "hovertemplate": f"{r.name} %{{text}}<br>mean {label} %{{y:.4g}}<extra></extra>"})
    n = len(d.studies)
    sub = (f"one point per configuration (mean over its seeds); {n} stud{'y' if n == 1 else 'ies'}"
           + (f"; {len(d.missing)} without {d.metric} left out" if d.missing else ""))
    return figure(data, {"xaxis": axis("study", type="category"), "yaxis": axis(f"mean {label}"),
                         "showlegend": False}, f"configuration means: {label}", sub, height=420)


def best_so_far_figure(d: Comparison) -> go.Figure:
    s = METRIC_SCALE.get(d.metric, 1.0)
    label = metric_label(d.metric)
    data = []
    for i, r in enumerate(d.studies):
        h = r.history
        has = np.isfinite(h.best)
        data.append({"type": "scatter", "x": h.x[has], "y": h.best[has] * s, "name": r.name,
                     "mode": "lines+markers" if has.sum() <= 30 else "lines", "marker": {"size": 5},
                     "line": {"color": PALETTE[i % len(PALETTE)], "width": 2, "shape": "hv"},
                     "text": [c or "" for c, k in zip(h.best_config, has, strict=True) if k],
                     "hovertemplate": f"{r.name}<br>configuration %{{x}}<br>best so far %{{y:.4g}} "
                                      "(%{text})<extra></extra>"})
    better = "highest" if d.mode == "max" else "lowest"
    longest = max(len(r.history.x) for r in d.studies)
    layout = {"xaxis": axis("configurations tried (in sampling order)", tick0=1, dtick=max(1, math.ceil(longest / 12))),
              "yaxis": axis(f"best mean {label}")}
    return figure(data, layout, f"best so far: {label}", f"the {better} configuration mean up to each configuration",
                  height=420)
