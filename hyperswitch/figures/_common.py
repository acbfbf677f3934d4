"""Labels, the look shared by every figure, and the figure that says why there is nothing to draw."""

from __future__ import annotations

import plotly.graph_objects as go

# Metrics the parameter views offer, with axis labels. Names are the results schema's.
METRIC_LABELS = {
    "val_accuracy": "final validation accuracy",
    "best_val_accuracy": "best validation accuracy",
    "time_to_target_s": "time to target accuracy (s)",
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
WEBGL_POINTS = 2000

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, STEP_LABELS.get(name, name))


def rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    return f"rgba({r},{g},{b},{alpha})"


def styled(fig: go.Figure, title: str, subtitle: str | None = None, height: int = 460) -> go.Figure:
    title_spec: dict = {"text": title, "x": 0.01, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle}
    fig.update_layout(title=title_spec, template="plotly_white", height=height,
                      margin={"l": 60, "r": 20, "t": 80 if subtitle else 60, "b": 55},
                      legend={"orientation": "v"}, uirevision="keep")
    return fig


def message_figure(text: str, title: str = "") -> go.Figure:
    """An empty figure that states, in plain words, why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 15, "color": "#555"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(meta={"message": text})
    return styled(fig, title, height=300)
