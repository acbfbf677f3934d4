"""The hand-made sweep table shared by the figure tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.figures.figtables import trials_frame


@pytest.fixture()
def sweep_trials() -> pd.DataFrame:
    # 2 x 2 grid of (lr, momentum), 2 seeds each except (0.1, 0.9) with 3; one running and one error trial.
    acc = {("0.01", "0.5"): [0.5, 0.7], ("0.01", "0.9"): [0.6, 0.8], ("0.1", "0.5"): [0.8, 0.9],
           ("0.1", "0.9"): [0.8, 0.9, 1.0]}
    rows, k = [], 0
    for (lr, mom), values in acc.items():
        for seed, v in enumerate(values):
            rows.append({"trial_id": f"t{k}", "config_id": f"c{lr}-{mom}", "seed": seed, "lr": float(lr),
                         "momentum": float(mom), "val_accuracy": v, "wall_time_s": 10.0 + k,
                         "peak_memory_bytes": 2**20 * (1 + k % 2), "time_to_target_s": np.nan if k == 0 else 1.0 * k,
                         "switch_step": 11})
            k += 1
    rows.append({"trial_id": "run", "config_id": "cx", "seed": 0, "lr": 0.3, "momentum": 0.5, "val_accuracy": 0.99,
                 "status": "running"})
    rows.append({"trial_id": "err", "config_id": "cy", "seed": 0, "lr": 0.3, "momentum": 0.5,
                 "val_accuracy": np.nan, "status": "error"})
    return trials_frame(rows)
