"""Helpers shared by the workloads: seeded splits, standardisation, the usual option checks, batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hyperswitch.config.validate import number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Batches


def split_indices(n: int, val_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``n`` examples, fixed by ``split_seed`` (never by the trial seed)."""
    perm = np.random.default_rng(split_seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return perm[n_val:], perm[:n_val]


def standardise(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale every column by the training rows' mean and standard deviation (the others with the same)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    return tuple(((a - mean) / std).astype(np.float32) for a in (x_train, *others))


def fraction_of(n: int, fraction: float, split_seed: int) -> np.ndarray:
    """Indices of a seeded subset of ``round(fraction * n)`` (at least 1) of ``n`` training examples."""
    if fraction >= 1.0:
        return np.arange(n)
    k = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng(split_seed + 1).permutation(n)[:k])


def check_common(spec: dict[str, Any], key: str, *, val_fraction: tuple[float, float] | None = (0.05, 0.5)) -> None:
    """The options most workloads share: batch_size, dataset_fraction, split_seed and val_fraction."""
    if "batch_size" in spec:
        number(spec["batch_size"], f"{key}.batch_size", integer=True, low=1)
    if "dataset_fraction" in spec:
        number(spec["dataset_fraction"], f"{key}.dataset_fraction", low=0.0, low_open=True, high=1.0)
    if "split_seed" in spec:
        number(spec["split_seed"], f"{key}.split_seed", integer=True, low=0)
    if val_fraction is not None and "val_fraction" in spec:
        number(spec["val_fraction"], f"{key}.val_fraction", low=val_fraction[0], high=val_fraction[1])


def make_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, *, rank: int, world_size: int,
                 key: str = "workload") -> Batches:
    """``Batches`` over the training tensors; a batch larger than the training set is an error, not 0 steps."""
    if int(batch_size) > x.shape[0]:
        raise ConfigError(f"{key}.batch_size", f"must be <= the number of training examples ({x.shape[0]}; "
                          "raise dataset_fraction or lower batch_size)", batch_size)
    return Batches(x, y, int(batch_size), seed, rank=rank, world_size=world_size)
