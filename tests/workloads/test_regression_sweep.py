"""A regression workload (no accuracy) through a real sweep: val_loss as the metric, null accuracy columns,
a diverged trial recorded as such (synthetic_2d on a real local Ray, real Optuna grid, real Parquet)."""

from __future__ import annotations

import math

import pytest

from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space

pytestmark = pytest.mark.slow

SPACE = """\
name: rosen
workload: {name: synthetic_2d, function: rosenbrock}
policy:
  type: single
  optimizer: {name: sgd, lr: $lr}
train: {steps: 60, eval_every: 20}
parameters:
  lr: {type: categorical, choices: [0.001, 1.0]}
search: {algorithm: grid, samples: 2, seed: 0}
seeds: 1
max_concurrent: 2
metric: val_loss
mode: min
"""


def test_synthetic_sweep_on_val_loss_with_a_diverged_trial(local_ray, space_file, tmp_path):
    study = run_sweep(load_space(space_file(SPACE)), storage=tmp_path / "runs", out=lambda s: None)
    t = study.trials.set_index("lr")
    assert sorted(t.index) == [0.001, 1.0]
    ok, bad = t.loc[0.001], t.loc[1.0]
    assert ok.status == "completed" and ok.steps_done == 60 and ok.val_loss < 24.2  # f(-1.2, 1) = 24.2
    assert bad.status == "diverged" and bad.steps_done < 60
    for col in ("val_accuracy", "best_val_accuracy", "time_to_target_s"):
        assert t[col].isna().all(), col
    steps = study.steps
    assert steps.val_accuracy.isna().all() and steps.val_loss.notna().sum() >= 3
    assert study.best_trial()["lr"] == 0.001 and math.isfinite(study.best_trial()["val_loss"])
    ev = study.events
    assert (ev.kind == "diverged").sum() == 1
