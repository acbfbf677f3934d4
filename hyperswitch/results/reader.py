"""Reading studies: ``open_study(path)`` returns its tables as pandas DataFrames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from hyperswitch.results.distributions import study_distributions
from hyperswitch.results.fs import ObjectPath, StudyPath, open_storage
from hyperswitch.results.schema import (
    EVENTS_SCHEMA,
    FINISHED_STATUSES,
    STEPS_SCHEMA,
    meta_metric,
    meta_mode,
)
from hyperswitch.results.store import StudyStore


class StudyNotFound(FileNotFoundError):
    pass


@dataclass
class Study:
    """One study's results. ``trials``: one row per finished trial; ``steps``; ``events``; ``meta``."""

    path: StudyPath
    meta: dict[str, Any]
    trials: pd.DataFrame
    steps: pd.DataFrame
    events: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def metric(self) -> str:
        return meta_metric(self.meta)

    @property
    def mode(self) -> str:
        return meta_mode(self.meta)

    @property
    def objectives(self) -> tuple[list[str], list[str]]:
        """(metrics, modes): one of each, or a multi-objective study's lists (``metric`` is the first)."""
        from hyperswitch.results.objectives import study_objectives

        return study_objectives(self.meta)

    @property
    def parameters(self) -> list[str]:
        return list(self.meta.get("parameter_names", []))

    @property
    def distributions(self) -> dict[str, dict[str, Any]]:
        """The space's parameter distributions, from study.json (:func:`study_distributions`)."""
        return study_distributions(self.meta)

    def finished(self) -> pd.DataFrame:
        return self.trials[self.trials["status"].isin(FINISHED_STATUSES)] if len(self.trials) else self.trials

    def best_trial(self) -> dict[str, Any] | None:
        """The finished trial with the best value of the study's metric (NaN never wins)."""
        t = self.finished()
        if not len(t) or self.metric not in t:
            return None
        t = t[t[self.metric].notna()]
        if not len(t):
            return None
        # by position (the first best row, as idxmax/idxmin would find it): a label from idxmax is typed Hashable,
        # which .loc does not take; the columns of a study's table are named by strings
        pos = t[self.metric].argmax() if self.mode == "max" else t[self.metric].argmin()
        return cast(dict[str, Any], t.iloc[int(pos)].to_dict())


def _frame(table: Any, schema: Any = None) -> pd.DataFrame:
    if table is None:
        return schema.empty_table().to_pandas() if schema is not None else pd.DataFrame()
    return table.to_pandas()


def open_study(path: str | Path | ObjectPath, include_running: bool = False) -> Study:
    """Open ``runs/<study>`` (a folder with study.json, or its URI: ``s3://bucket/runs/<study>``). Finished trials
    only unless ``include_running``."""
    store = StudyStore(path)
    if not store.meta_path.exists():
        raise StudyNotFound(f"{store.root}: not a study folder (no study.json)")
    tables = store.read_tables(include_running=include_running)
    trials = _frame(tables["trials"])
    if len(trials) and "config_id" in trials:
        trials = trials.sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
    return Study(path=store.root, meta=store.read_meta(), trials=trials,
                 steps=_frame(tables["steps"], STEPS_SCHEMA), events=_frame(tables["events"], EVENTS_SCHEMA))


def list_studies(storage: str | Path | ObjectPath) -> list[StudyPath]:
    """The study folders directly under ``storage`` (a folder or a storage URI), by name."""
    root = open_storage(storage)
    if isinstance(root, Path) and not root.is_dir():  # (a prefix with nothing under it lists nothing)
        return []
    found: list[StudyPath] = [p for p in root.iterdir() if (p / "study.json").is_file()]
    return sorted(found, key=str)
