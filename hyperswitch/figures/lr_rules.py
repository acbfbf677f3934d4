"""Learning-rate rules: GeN's learning-rate trajectories (from ``steps.lr``) and damping-to-learning-rate
heatmaps per batch size with the best ratio of each batch size marked (004: the best lr and damping grow with the
batch size, their ratio stays roughly constant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hyperswitch.figures._common import METRIC_SCALE, metric_label, styled
from hyperswitch.figures._stats import fmt
from hyperswitch.figures.data import NotApplicable
from hyperswitch.figures.parameter import Heatmap, config_means, heatmap_data, metric_rows
from hyperswitch.results.schema import METRICS

NONE = "none"


def lr_varies(steps: pd.DataFrame) -> bool:
    """Whether any run's learning rate changes during training (GeN, a schedule, a switch)."""
    if not len(steps):
        return False
    lr = steps[["trial_id", "lr"]].dropna()
    if not len(lr):
        return False
    g = lr.groupby("trial_id", observed=True)["lr"]
    return bool(((g.max() - g.min()) > 1e-12 * g.max().abs().clip(lower=1e-30)).any())


def guess_columns(parameters: Sequence[str]) -> tuple[str | None, str | None, str | None]:
    """(damping, learning rate, batch size) parameter names, guessed from the study's parameter names."""
    params = list(parameters)
    damping = next((p for p in params if "damping" in p.lower()), None)
    lr = "lr" if "lr" in params else next((p for p in params if p.lower().endswith("lr") and p != damping), None)
    batch = next((p for p in params if "batch" in p.lower()), None)
    return damping, lr, batch


class RatioHeatmaps(NamedTuple):
    x_param: str  # damping
    y_param: str  # learning rate
    facet: str  # batch size column, or "none"
    facets: list[str]
    maps: list[Heatmap]
    best_ratio: list[float | None]  # y/x of the best configuration (mean over seeds) of each facet
    best_point: list[tuple[float, float] | None]  # its (x, y)


def ratio_heatmaps_data(trials: pd.DataFrame, x_param: str, y_param: str, facet: str, metric: str,
                        mode: str | None = None, max_bins: int = 10) -> RatioHeatmaps:
    for p in (x_param, y_param) + ((facet,) if facet != NONE else ()):
        if p not in trials.columns:
            raise NotApplicable(f"this study has no parameter {p!r} (the damping-to-learning-rate view needs "
                                "damping and learning-rate parameters)")
    mode = mode or METRICS.get(metric, "max")
    rows, _ = metric_rows(trials, metric)
    if facet == NONE:
        groups = [("all", rows)]
    else:
        groups = [(fmt(v) if not isinstance(v, str) else v, g) for v, g in rows.groupby(facet, sort=True)]
    facets, maps, ratios, points = [], [], [], []
    for name, g in groups:
        maps.append(heatmap_data(g, x_param, y_param, metric, mode, max_bins))
        conf = config_means(g, [x_param, y_param], metric)
        conf = conf[np.isfinite(conf[metric].to_numpy(float))]
        i = conf[metric].idxmax() if mode == "max" else conf[metric].idxmin()
        bx, by = float(conf.loc[i, x_param]), float(conf.loc[i, y_param])
        ratios.append(by / bx if bx else None)
        points.append((bx, by))
        facets.append(str(name))
    return RatioHeatmaps(x_param, y_param, facet, facets, maps, ratios, points)


def ratio_heatmaps_figure(d: RatioHeatmaps, metric: str) -> go.Figure:
    n = len(d.maps)
    titles = [(f"{d.facet} = {f}" if d.facet != NONE else "all runs")
              + (f": best {d.y_param}/{d.x_param} = {r:.3g}" if r is not None else "")
              for f, r in zip(d.facets, d.best_ratio, strict=True)]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.06)
    s = METRIC_SCALE.get(metric, 1.0)
    zmin = min(np.nanmin(m.z) for m in d.maps) * s
    zmax = max(np.nanmax(m.z) for m in d.maps) * s
    for k, m in enumerate(d.maps, start=1):
        fig.add_trace(go.Heatmap(z=m.z * s, x=m.x_labels, y=m.y_labels, customdata=m.count, coloraxis="coloraxis",
                                 texttemplate="%{z:.3g}", hoverongaps=False,
                                 hovertemplate=(f"{d.x_param} %{{x}}<br>{d.y_param} %{{y}}<br>mean %{{z:.4g}}"
                                                "<br>seeds (runs) %{customdata}<extra></extra>")), 1, k)
        if m.best is not None:
            r, c = m.best
            fig.add_trace(go.Scatter(x=[m.x_labels[c]], y=[m.y_labels[r]], mode="markers", showlegend=k == 1,
                                     name="best cell", hoverinfo="skip",
                                     marker={"symbol": "star", "size": 16, "color": "white",
                                             "line": {"color": "black", "width": 1}}), 1, k)
        fig.update_xaxes(title_text=d.x_param + (" (binned)" if m.binned[0] else ""), type="category", row=1, col=k)
        fig.update_yaxes(title_text=d.y_param + (" (binned)" if m.binned[1] else "") if k == 1 else "",
                         type="category", row=1, col=k)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": zmin, "cmax": zmax,
                                 "colorbar": {"title": {"text": metric_label(metric)}}})
    return styled(fig, f"{metric_label(metric)}: {d.y_param} \u00d7 {d.x_param}"
                  + (f" per {d.facet}" if d.facet != NONE else ""),
                  "mean over seeds per cell; \u2605 best cell; titles: the lr/damping ratio of the best configuration",
                  height=480)
