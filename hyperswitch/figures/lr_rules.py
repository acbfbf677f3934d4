"""Learning-rate rules: GeN's learning-rate trajectories (from ``steps.lr``) and damping-to-learning-rate
heatmaps per batch size with the best ratio of each batch size marked (004: the best lr and damping grow with the
batch size, their ratio stays roughly constant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures._common import METRIC_SCALE, axis, figure, metric_label
from hyperswitch.figures._stats import fmt, keyed_reduce
from hyperswitch.figures.data import NotApplicable
from hyperswitch.figures.parameter import (
    Heatmap,
    best_cell_shape,
    config_means,
    heatmap_data,
    heatmap_trace,
    metric_rows,
)
from hyperswitch.results.schema import METRICS

NONE = "none"


def lr_varies(steps: pd.DataFrame) -> bool:
    """Whether any run's learning rate changes during training (GeN, a schedule, a switch)."""
    if not len(steps):
        return False
    lr = steps["lr"].to_numpy(dtype=float, na_value=np.nan)
    tid = steps["trial_id"]
    codes = (tid.cat.codes if isinstance(tid.dtype, pd.CategoricalDtype) else tid.astype("category").cat.codes)
    ok = np.isfinite(lr)
    if not ok.any():
        return False
    codes = codes.to_numpy()[ok]
    _, hi = keyed_reduce(codes, lr[ok], np.maximum)
    _, lo = keyed_reduce(codes, lr[ok], np.minimum)
    return bool(((hi - lo) > 1e-12 * np.maximum(np.abs(hi), 1e-30)).any())


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
        # the facet (a batch-size column) holds numbers or strings; pandas types a group key as any scalar
        groups = [(fmt(cast(float, v)) if not isinstance(v, str) else v, g)
                  for v, g in rows.groupby(facet, sort=True)]
    facets: list[str] = []
    maps: list[Heatmap] = []
    ratios: list[float | None] = []
    points: list[tuple[float, float] | None] = []
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
    """One heatmap per facet side by side (shared colour scale), the best cell starred, the best ratio in each
    panel's title."""
    n = len(d.maps)
    gap = 0.06 if n > 1 else 0.0
    width = (1.0 - gap * (n - 1)) / n
    s = METRIC_SCALE.get(metric, 1.0)
    zmin = min(float(np.nanmin(m.z)) for m in d.maps) * s
    zmax = max(float(np.nanmax(m.z)) for m in d.maps) * s
    data: list[dict] = []
    layout: dict = {"coloraxis": {"colorscale": "Viridis", "cmin": zmin, "cmax": zmax,
                                  "colorbar": {"title": {"text": metric_label(metric)}}}, "annotations": [],
                    "shapes": []}
    for k, (m, f, r) in enumerate(zip(d.maps, d.facets, d.best_ratio, strict=True), start=1):
        xa, ya = ("x", "y") if k == 1 else (f"x{k}", f"y{k}")
        data.extend(heatmap_trace(m, s, coloraxis="coloraxis", xaxis=xa, yaxis=ya))
        layout["shapes"].extend(best_cell_shape(m, xa, ya))
        x0 = (k - 1) * (width + gap)
        layout["xaxis" if k == 1 else f"xaxis{k}"] = axis(d.x_param + (" (binned)" if m.binned[0] else ""),
                                                          type="category", domain=[x0, x0 + width], anchor=ya)
        layout["yaxis" if k == 1 else f"yaxis{k}"] = axis(
            (d.y_param + (" (binned)" if m.binned[1] else "")) if k == 1 else "", type="category", anchor=xa)
        label = (f"{d.facet} = {f}" if d.facet != NONE else "all runs") + (
            f": best {d.y_param}/{d.x_param} = {r:.3g}" if r is not None else "")
        layout["annotations"].append({"text": label, "x": x0 + width / 2, "y": 1.0, "xref": "paper",
                                      "yref": "paper", "showarrow": False, "yanchor": "bottom",
                                      "font": {"size": 13}})
    title = f"{metric_label(metric)}: {d.y_param} \u00d7 {d.x_param}" + (f" per {d.facet}" if d.facet != NONE else "")
    return figure(data, layout, title, "mean over seeds per cell; framed: best cell; panel titles: the lr/damping "
                  "ratio of the best configuration", height=500)
