"""A sweep from Python (a notebook cell or a script): the space as a mapping with a YAML file's keys, the study
back as pandas. Run from the project folder::

    python examples/python_api.py            # writes runs/api_demo (about 20 s on 2 CPU cores)

Each call starts an embedded local Ray and shuts it down at the end; ``address="ray://..."`` or ``"auto"``
sends the trials to a cluster instead. Interrupted (Ctrl-C), it keeps every finished trial, and the same call
with ``resume=True`` continues it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hyperswitch as hs

SPACE = {
    "name": "api_demo",
    "workload": {"name": "digits_mlp", "batch_size": 64},
    "policy": {"type": "switch", "phase1": {"name": "adam", "lr": 0.001},
               "phase2": {"name": "sgdm", "lr": "$lr", "momentum": 0.9}, "switch": {"at": "$switch_at"}},
    "train": {"steps": 100, "eval_every": 20},
    "parameters": {"lr": {"type": "categorical", "choices": [0.03, 0.1]},
                   "switch_at": {"type": "categorical", "choices": [0, 50]}},
    "search": "grid",
    "seeds": 2,
}


def main(storage: str | Path = "runs") -> hs.Study:
    study = hs.sweep(SPACE, storage=storage, progress=False)
    table = study.trials.groupby(["lr", "switch_at"])[study.metric].agg(["mean", "std", "count"])
    print(table.round(4).to_string())
    best = study.best_trial()
    print(f"best trial {best['trial_id']}: {study.metric} {best[study.metric]:.4f}" if best else "no finished trial")
    # every study in the storage folder, finished or still running, reads the same way
    curves = hs.open_study(Path(storage) / "api_demo").steps
    print(f"{len(curves)} step rows; last loss per trial:")
    print(curves.groupby("trial_id")["loss"].last().round(4).to_string())
    return study


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs")
