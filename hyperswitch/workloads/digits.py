"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): an MLP. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import make_batches


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 64), labels)``: the file scikit-learn's ``load_digits`` reads (``digits.csv.gz``, bundled
    with it), read with numpy. Importing ``sklearn.datasets`` costs about 0.7 s, paid again by every new trial
    process of a sweep; reading the file takes about 15 ms. Falls back to ``load_digits`` where the file is not
    where scikit-learn has kept it."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


@lru_cache(maxsize=4)
def digits_split(val_fraction: float, split_seed: int) -> tuple[np.ndarray, ...]:
    """Standardised digits with a train/validation split fixed by ``split_seed`` (not the trial seed)."""
    images, labels = digits_arrays()
    x = images.astype(np.float32) / 16.0
    y = labels.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    perm = rng.permutation(len(y))
    n_val = int(round(val_fraction * len(y)))
    val, tr = perm[:n_val], perm[n_val:]
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-6
    x = (x - mean) / std
    return x[tr], y[tr], x[val], y[val]


def subset(x: np.ndarray, y: np.ndarray, fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction >= 1.0:
        return x, y
    n = max(1, int(round(fraction * len(y))))
    idx = np.random.default_rng(split_seed + 1).permutation(len(y))[:n]
    return x[idx], y[idx]


def _check(spec: dict[str, Any], key: str) -> None:
    number(spec["batch_size"], f"{key}.batch_size", integer=True, low=1)
    number(spec["hidden"], f"{key}.hidden", integer=True, low=1)
    number(spec["depth"], f"{key}.depth", integer=True, low=1, high=8)
    number(spec["val_fraction"], f"{key}.val_fraction", low=0.05, high=0.5)
    number(spec["dataset_fraction"], f"{key}.dataset_fraction", low=0.0, low_open=True, high=1.0)
    number(spec["split_seed"], f"{key}.split_seed", integer=True, low=0)


@register_workload(
    "digits_mlp",
    defaults={"batch_size": 64, "hidden": 128, "depth": 1, "val_fraction": 0.2, "dataset_fraction": 1.0,
              "split_seed": 0},
    check=_check,
)
def digits_mlp(seed: int, *, rank: int = 0, world_size: int = 1, batch_size: int, hidden: int, depth: int,
               val_fraction: float, dataset_fraction: float, split_seed: int) -> Workload:
    """MLP (64 -> hidden x depth -> 10, ReLU) on scikit-learn's digits; split fixed by split_seed."""
    xtr, ytr, xval, yval = digits_split(float(val_fraction), int(split_seed))
    xtr, ytr = subset(xtr, ytr, float(dataset_fraction), int(split_seed))
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    return Workload(
        name="digits_mlp",
        model=model,
        loss_fn=nn.functional.cross_entropy,
        train=make_batches(torch.from_numpy(xtr), torch.from_numpy(ytr), int(batch_size), seed,
                           rank=rank, world_size=world_size),  # a batch larger than the set: an error, not 0 steps
        val_x=torch.from_numpy(xval),
        val_y=torch.from_numpy(yval),
    )
