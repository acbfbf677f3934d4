"""A small real study without Ray: the sweep's own ``prepare_study`` writes study.json from a real search space,
the real results store writes each trial's Parquet parts and compacts them into the three tables. Cheap (no
training), and every command reads it as it reads a study a sweep wrote: export, report, studies, sweep --resume
(which finds nothing left to run). Run as a script, ``python studyfab.py FOLDER`` makes the study under
FOLDER/runs/fab and writes FOLDER/fab.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

SPACE = """\
name: fab
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: single
  optimizer: {name: sgdm, lr: $lr, momentum: 0.9}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.01, 0.1]}
search: {algorithm: grid, seed: 0}
seeds: 2
max_concurrent: 2
"""


def make_study(folder: Path, name: str | None = None, storage: Any = None) -> tuple[Path, Any]:
    """Write ``folder/fab.yaml`` and a finished study of it (2 configurations x 2 seeds) under ``folder/runs``
    (or ``storage``: another folder or a storage URI); return (space file, study folder)."""
    from hyperswitch.search.runner import prepare_study
    from hyperswitch.search.space import load_space

    space_path = folder / "fab.yaml"
    space_path.write_text(SPACE)
    space = load_space(space_path)
    store = prepare_study(space, folder / "runs" if storage is None else storage, name, resume=False)
    for c, lr in enumerate((0.01, 0.1)):
        for seed in (0, 1):
            tid = f"c{c:04d}-s{seed}"
            row = {"trial_id": tid, "config_id": f"c{c:04d}", "seed": seed, "status": "completed",
                   "workload": "digits_mlp", "policy_type": "single", "optimizers": "sgdm", "lr": lr,
                   "val_accuracy": 0.5 + 0.2 * c + 0.01 * seed, "best_val_accuracy": 0.5 + 0.2 * c,
                   "wall_time_s": 1.0 + c, "steps_done": 20}
            steps = [{"step": s, "epoch": 1, "loss": 1.0 / s, "lr": lr, "optimizer": "sgdm", "elapsed_s": 0.01 * s,
                      "memory_bytes": 100} for s in range(1, 21)]
            store.write_trial_parts(row, steps, [])
    store.compact()
    store.update_meta(status="completed")
    return space_path, store.root


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``folder``: its bytes, mtime (ns) and mode."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (p.read_bytes(), st.st_mtime_ns, st.st_mode)
    return out


def hyperswitch(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real command line, ``python -m hyperswitch ARGS``, in a new process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    return subprocess.run([sys.executable, "-m", "hyperswitch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


if __name__ == "__main__":
    make_study(Path(sys.argv[1]))
