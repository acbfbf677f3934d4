"""Small tabular classification sets bundled with scikit-learn: an MLP on standardised features.

``dataset``: ``breast_cancer`` (569 rows, 30 features, 2 classes) or ``wine`` (178 rows, 13 features,
3 classes). The validation rows are fixed by ``split_seed``; features are standardised with the training
rows' mean and standard deviation (before ``dataset_fraction`` subsamples the training rows, so the scaling
does not change with the fraction).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import choice, number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches, split_indices, standardise

DATASETS = ("breast_cancer", "wine")


@lru_cache(maxsize=8)
def tabular_split(dataset: str, val_fraction: float, split_seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val) of a bundled scikit-learn data set, standardised, split by split_seed."""
    from sklearn import datasets

    data = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[dataset]()
    x, y = data.data.astype(np.float64), data.target.astype(np.int64)
    tr, val = split_indices(len(y), val_fraction, split_seed)
    xtr, xval = standardise(x[tr], x[val])
    return xtr, y[tr], xval, y[val]


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    choice(spec["dataset"], DATASETS, f"{key}.dataset")
    number(spec["hidden"], f"{key}.hidden", integer=True, low=1)
    number(spec["depth"], f"{key}.depth", integer=True, low=0, high=8)


@register_workload(
    "tabular",
    defaults={"dataset": "breast_cancer", "batch_size": 32, "hidden": 64, "depth": 1, "val_fraction": 0.25,
              "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
)
def tabular(seed: int, *, rank: int = 0, world_size: int = 1, dataset: str, batch_size: int, hidden: int,
            depth: int, val_fraction: float, dataset_fraction: float, split_seed: int) -> Workload:
    """MLP on scikit-learn's breast_cancer or wine table (standardised features); split fixed by split_seed."""
    xtr, ytr, xval, yval = tabular_split(dataset, float(val_fraction), int(split_seed))
    n_classes = int(max(ytr.max(), yval.max())) + 1  # of the whole set, whatever the fraction keeps
    keep = fraction_of(len(ytr), float(dataset_fraction), int(split_seed))
    xtr, ytr = xtr[keep], ytr[keep]
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = xtr.shape[1]
    for _ in range(int(depth)):
        layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
        width = int(hidden)
    layers.append(nn.Linear(width, n_classes))
    return Workload(
        name="tabular",
        model=nn.Sequential(*layers),
        loss_fn=nn.functional.cross_entropy,
        train=make_batches(torch.from_numpy(xtr), torch.from_numpy(ytr), batch_size, seed, rank=rank,
                           world_size=world_size),
        val_x=torch.from_numpy(xval),
        val_y=torch.from_numpy(yval),
    )
