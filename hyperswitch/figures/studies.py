"""The overview of every study under a storage folder: status, progress, best metric, search-space summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hyperswitch.results.cache import StudyReadError, study_info
from hyperswitch.results.fs import ObjectPath, StudyPath
from hyperswitch.results.reader import list_studies


class StudyRow(NamedTuple):
    name: str  # the study's folder name (what the dashboard's URLs and the CLI use)
    path: StudyPath
    status: str
    done: int  # finished trials
    running: int
    total: int | None
    metric: str
    mode: str
    best: float | None
    best_trial: str | None
    search: str  # algorithm, configurations x seeds
    parameters: list[str]
    workload: str
    policy_type: str
    updated: str
    error: str | None  # the study could not be read: why


def study_row(path: StudyPath) -> StudyRow:
    try:
        info = study_info(path)
    except StudyReadError as exc:
        return StudyRow(path.name, path, "unreadable", 0, 0, None, "", "", None, None, "", [], "", "", "", str(exc))
    meta, t = info.meta, info.trials
    fin = info.finished()
    running = int((t["status"] == "running").sum()) if len(t) and "status" in t else 0
    best = best_trial = None
    if len(fin) and info.metric in fin:
        v = fin[info.metric].to_numpy(dtype=float, na_value=np.nan)
        if np.isfinite(v).any():
            i = int(np.nanargmax(v) if info.mode == "max" else np.nanargmin(v))
            best, best_trial = float(v[i]), str(fin["trial_id"].iloc[i])
    summary = meta.get("summary") or {}
    seeds = summary.get("seeds")
    search = f"{summary.get('algorithm', '?')}, {summary.get('samples', '?')} configurations"
    if isinstance(seeds, list):
        search += f" \u00d7 {len(seeds)} seeds"
    return StudyRow(info.path.name, info.path, info.status, len(fin), running, info.n_total(), info.metric, info.mode,
                    best, best_trial, search, list(meta.get("sampled_names", meta.get("parameter_names", []))),
                    str(summary.get("workload", "")), str(summary.get("policy_type", "")),
                    str(meta.get("updated", "")), None)


def studies_overview(storage: str | Path | ObjectPath) -> list[StudyRow]:
    return [study_row(p) for p in list_studies(storage)]


def progress_text(row: StudyRow) -> str:
    total = row.total if row.total else "?"
    text = f"{row.done}/{total}"
    if row.running:
        text += f" ({row.running} running)"
    return text


def best_text(row: StudyRow) -> str:
    if row.best is None or (isinstance(row.best, float) and math.isnan(row.best)):
        return "-"
    return f"{row.best:.4g} ({row.best_trial})"


def as_dict(row: StudyRow) -> dict[str, Any]:
    return {"study": row.name, "status": row.status, "progress": progress_text(row),
            "metric": f"{row.metric} ({row.mode})" if row.metric else "", "best": best_text(row),
            "search": row.search, "parameters": ", ".join(row.parameters), "workload": row.workload,
            "policy": row.policy_type, "updated": row.updated[:19], "error": row.error or ""}
