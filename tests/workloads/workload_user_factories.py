"""User-workload factories for tests/workloads/test_user_workload.py (imported by name, as users' are)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hyperswitch.errors import ConfigError


def blobs(seed, *, n=200, hidden=16, split_seed=0, form="dict", loader=False):
    """Three Gaussian blobs in 2-D, split by split_seed; form dict | tuple, train as a DataLoader or tensors."""
    rng = np.random.default_rng(split_seed)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, n)
    x = centres[y] + rng.standard_normal((n, 2))  # float64 arrays: converted by hyperswitch
    n_val = n // 4
    train = (x[n_val:], y[n_val:])
    if loader:
        train = DataLoader(TensorDataset(torch.tensor(x[n_val:]), torch.tensor(y[n_val:])), batch_size=7)
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 3))
    val = (x[:n_val], y[:n_val])
    if form == "tuple":
        return model, nn.functional.cross_entropy, train, val
    return {"model": model, "loss": nn.functional.cross_entropy, "train": train, "val": val}


def line(seed, *, n=120):
    """Regression y = 2x - 1 + noise, fixed data (no split_seed parameter: not passed)."""
    x = torch.linspace(-1, 1, n).unsqueeze(1)
    y = (2 * x - 1).squeeze(1) + 0.05 * torch.sin(37 * x).squeeze(1)
    model = nn.Sequential(nn.Linear(1, 1), nn.Flatten(0))
    return {"model": model, "loss_fn": nn.functional.mse_loss, "train": (x[20:], y[20:]), "val": (x[:20], y[:20]),
            "task": "regression"}


def checked(seed, *, k=1):
    if k != 1:
        raise ConfigError("workload.k", "must be 1", k)
    return line(seed)


def needs_value(seed, *, a):
    return line(seed)


def takes_kwargs(seed, **options):
    return line(seed)


def returns_three(seed):
    return 1, 2, 3


def returns_bad_model(seed):
    return {"model": "mlp", "loss_fn": nn.functional.mse_loss, "train": (torch.zeros(4, 1), torch.zeros(4)),
            "val": (torch.zeros(2, 1), torch.zeros(2))}


NOT_CALLABLE = 3
