"""Least-squares linear regression on seeded synthetic data (003's analysis setting, its Appendix 2).

Data, fixed by ``split_seed`` (never by the trial seed): ``n`` rows ``x ~ N(0, diag(s)²)`` in ``d`` dimensions,
the scales ``s`` log-spaced from 1 down to ``1/condition`` (so ``condition`` is the ratio of the largest to the
smallest feature scale; the Hessian's condition number is its square), true weights ``w* ~ N(0, I)`` and bias
``b* ~ N(0, 1)``, targets ``y = x·w* + b* + noise·ε``, ``ε ~ N(0, 1)``. A ``val_fraction`` of the rows is held out.
Model: ``nn.Linear(d, 1)`` (output flattened to one value per row; the Linear layer itself is plain, so
K-FAC's hooks see it as usual) initialised by the trial seed. Loss: the mean squared error ``mean((z − y)²)``; the
best achievable validation loss is about ``noise²``. There is no accuracy: the task is ``regression``
(``val_accuracy`` is null in the results); search on ``val_loss`` (the validation MSE).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches, split_indices


@lru_cache(maxsize=8)
def regression_data(n: int, d: int, noise: float, condition: float, split_seed: int,
                    val_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(x_train, y_train, x_val, y_val, w_true, b_true), float32 data, all fixed by ``split_seed``."""
    rng = np.random.default_rng(split_seed)
    scales = np.logspace(0.0, -np.log10(condition), d) if d > 1 else np.ones(1)
    x = rng.standard_normal((n, d)) * scales
    w, b = rng.standard_normal(d), float(rng.standard_normal())
    y = x @ w + b + noise * rng.standard_normal(n)
    tr, val = split_indices(n, val_fraction, split_seed)
    f32 = np.float32
    return x[tr].astype(f32), y[tr].astype(f32), x[val].astype(f32), y[val].astype(f32), w, b


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    number(spec["n"], f"{key}.n", integer=True, low=4)
    number(spec["d"], f"{key}.d", integer=True, low=1)
    number(spec["noise"], f"{key}.noise", low=0.0)
    number(spec["condition"], f"{key}.condition", low=1.0)


@register_workload(
    "least_squares",
    defaults={"n": 1024, "d": 20, "noise": 0.1, "condition": 10.0, "batch_size": 64, "val_fraction": 0.2,
              "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
    task="regression",
)
def least_squares(seed: int, *, rank: int = 0, world_size: int = 1, n: int, d: int, noise: float,
                  condition: float, batch_size: int, val_fraction: float, dataset_fraction: float,
                  split_seed: int) -> Workload:
    """Linear regression (MSE) on seeded synthetic data with options n, d, noise, condition (003's setting)."""
    xtr, ytr, xval, yval, _, _ = regression_data(int(n), int(d), float(noise), float(condition), int(split_seed),
                                                 float(val_fraction))
    keep = fraction_of(len(ytr), float(dataset_fraction), int(split_seed))
    torch.manual_seed(seed)
    return Workload(
        name="least_squares",
        model=nn.Sequential(nn.Linear(int(d), 1), nn.Flatten(0)),  # one output per row
        loss_fn=nn.functional.mse_loss,
        train=make_batches(torch.from_numpy(xtr[keep]), torch.from_numpy(ytr[keep]), batch_size, seed, rank=rank,
                           world_size=world_size),
        val_x=torch.from_numpy(xval),
        val_y=torch.from_numpy(yval),
        task="regression",
    )
