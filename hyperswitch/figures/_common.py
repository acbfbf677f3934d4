"""Labels, the look shared by every figure, and the figure that says why there is nothing to draw."""

from __future__ import annotations

import plotly.graph_objects as go

# Metrics the parameter views offer, with axis labels. Names are the results schema's.
METRIC_LABELS = {
    "val_accuracy": "final validation accuracy",
    "best_val_accuracy": "best validation accuracy",
    "time_to_target_s": "time to target (s)",
    "steps_to_target": "steps to target",
    "switch_step": "switch step",
    "peak_memory_bytes": "peak memory (MiB)",
    "wall_time_s": "wall time (s)",
    "val_loss": "final validation loss",
    "train_loss": "final training loss",
}
# Scale applied before drawing (bytes are shown in MiB).
METRIC_SCALE = {"peak_memory_bytes": 1 / 2**20, "memory_bytes": 1 / 2**20}

STEP_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "lr": "learning rate",
    "memory_bytes": "memory (MiB)",
    "step": "step",
    "epoch": "epoch",
    "elapsed_s": "wall time (s)",
}

# Above this many points a scatter is drawn with WebGL (scattergl).
WEBGL_POINTS = 1000

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def metric_label(name: str) -> str:
    """The label of a per-trial metric (``val_accuracy``: the final validation accuracy)."""
    return METRIC_LABELS.get(name, STEP_LABELS.get(name, name))


def step_label(name: str) -> str:
    """The label of a per-step column (``val_accuracy``: the validation accuracy at that step)."""
    return STEP_LABELS.get(name, METRIC_LABELS.get(name, name))


def rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    return f"rgba({r},{g},{b},{alpha})"


# A small white template, expanded here (figures are built as plain dicts, unvalidated: fast at scale).
_AXIS = {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "automargin": True,
         "ticks": "", "title": {"standoff": 12}}
TEMPLATE = {"layout": {
    "colorway": PALETTE, "font": {"color": "#2a3f5f"}, "paper_bgcolor": "white", "plot_bgcolor": "white",
    "xaxis": _AXIS, "yaxis": _AXIS, "hovermode": "closest", "hoverlabel": {"align": "left"},
    "coloraxis": {"colorbar": {"outlinewidth": 0}},
}}


def figure(data: list[dict], layout: dict, title: str, subtitle: str | None = None, height: int = 460) -> go.Figure:
    """A figure from plain trace and layout dicts, with the shared look. Not validated by plotly.py (that costs
    far more than computing the figure at 10,000 trials); the tests validate every figure function's output."""
    title_spec: dict = {"text": title, "x": 0.01, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle}
    lay = {"template": TEMPLATE, "title": title_spec, "height": height,
           "margin": {"l": 60, "r": 20, "t": 84 if subtitle else 60, "b": 55}, "uirevision": "keep"}
    lay.update(layout)
    return go.Figure({"data": data, "layout": lay}, _validate=False)


def axis(title: str, **kw: object) -> dict:
    return {"title": {"text": title}, **kw}


def error_array(upper_minus: object, scale: float = 1.0) -> object:
    import numpy as np

    return np.nan_to_num(np.asarray(upper_minus, dtype=float)) * scale


def message_figure(text: str, title: str = "") -> go.Figure:
    """An empty figure that states, in plain words, why there is nothing to draw."""
    return figure([], {"xaxis": {"visible": False}, "yaxis": {"visible": False}, "meta": {"message": text},
                       "annotations": [{"text": text, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                                        "showarrow": False, "font": {"size": 15, "color": "#555"}}]},
                  title, height=300)
