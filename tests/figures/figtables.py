"""Helpers that build small hand-made study tables (numbers chosen so that the expected values are easy to compute
by hand) and validate figures."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go


def trials_frame(rows: list[dict]) -> pd.DataFrame:
    base = {"status": "completed", "workload": "digits_mlp", "policy_type": "switch", "optimizers": "adam,sgdm"}
    return pd.DataFrame([{**base, **r} for r in rows])


def steps_frame(runs: dict[str, list[tuple]], columns=("step", "epoch", "loss")) -> pd.DataFrame:
    rows = [{"trial_id": tid, **dict(zip(columns, r, strict=True))} for tid, rs in runs.items() for r in rs]
    df = pd.DataFrame(rows)
    df["trial_id"] = df["trial_id"].astype("category")
    return df


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": t, "step": s, "kind": k, "detail": json.dumps(d)} for t, s, k, d in rows])


def valid(fig: go.Figure) -> go.Figure:
    """Validate a figure built without validation (raises on an invalid property)."""
    return go.Figure(fig.to_dict())


