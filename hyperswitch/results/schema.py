"""The results schema (DESIGN.md): one study = one folder with study.json and three Parquet tables.

- ``trials.parquet``: one row per trial: identity columns, every sampled/derived/fixed parameter under its
  own name, then the final metrics below.
- ``steps.parquet``: one row per training step of every trial.
- ``events.parquet``: switches, IOMT cycles, divergence: ``trial_id, step, kind, detail`` (detail is JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

STEPS_SCHEMA = pa.schema([
    ("trial_id", pa.string()),
    ("step", pa.int64()),
    ("epoch", pa.int64()),
    ("loss", pa.float64()),
    ("val_loss", pa.float64()),
    ("val_accuracy", pa.float64()),
    ("val_recon_error", pa.float64()),
    ("lr", pa.float64()),
    ("optimizer", pa.string()),
    ("elapsed_s", pa.float64()),
    ("memory_bytes", pa.int64()),
])

EVENTS_SCHEMA = pa.schema([
    ("trial_id", pa.string()),
    ("step", pa.int64()),
    ("kind", pa.string()),
    ("detail", pa.string()),
])

# Columns every trials.parquet row has, besides the parameters.
TRIAL_ID_COLUMNS = ["trial_id", "config_id", "seed", "status", "workload", "policy_type", "optimizers"]
TRIAL_METRIC_COLUMNS: dict[str, pa.DataType] = {
    "train_loss": pa.float64(),
    "val_loss": pa.float64(),
    "val_accuracy": pa.float64(),
    "best_val_accuracy": pa.float64(),
    "val_recon_error": pa.float64(),
    "steps_done": pa.int64(),
    "epochs_done": pa.int64(),
    "switch_step": pa.int64(),
    "time_to_target_s": pa.float64(),
    "steps_to_target": pa.int64(),
    "peak_memory_bytes": pa.int64(),
    "memory_source": pa.string(),
    "peak_rss_bytes": pa.int64(),
    "wall_time_s": pa.float64(),
    "samples_per_s": pa.float64(),
    "workers": pa.int64(),
    "restarts": pa.int64(),
    "error": pa.string(),
}

# Metrics only some workloads report (their registration lists them; null for the others): the curves
# autoencoder's reconstruction error, the squared error per image that the K-FAC papers report.
WORKLOAD_METRICS = ("val_recon_error",)

# Trial status values.
COMPLETED, DIVERGED, STOPPED, ERROR, RUNNING = "completed", "diverged", "stopped", "error", "running"
FINISHED_STATUSES = (COMPLETED, DIVERGED, STOPPED, ERROR)

# Metrics a search space may optimise, with the direction that is better.
METRICS: dict[str, str] = {
    "val_accuracy": "max",
    "best_val_accuracy": "max",
    "val_loss": "min",
    "val_recon_error": "min",
    "train_loss": "min",
    "time_to_target_s": "min",
    "steps_to_target": "min",
    "wall_time_s": "min",
    "peak_memory_bytes": "min",
    "switch_step": "min",
}


def meta_metric(meta: Mapping[str, Any]) -> str:
    """A study's metric from its study.json (``val_accuracy`` where an old study has none); a multi-objective
    study's first objective (:func:`hyperswitch.results.objectives.study_objectives` gives them all)."""
    metric = meta.get("metric", "val_accuracy")
    return str(metric[0] if isinstance(metric, list) and metric else metric)


def meta_mode(meta: Mapping[str, Any]) -> str:
    """A study's mode from its study.json (else the metric's own direction, else ``max``); a multi-objective
    study's first objective's."""
    mode = meta.get("mode", METRICS.get(meta_metric(meta), "max"))
    return str(mode[0] if isinstance(mode, list) and mode else mode)
