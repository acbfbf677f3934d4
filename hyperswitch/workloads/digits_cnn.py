"""A small CNN on scikit-learn's bundled 8x8 digits, so that K-FAC and Shampoo see ``nn.Conv2d`` layers.

Same data and split as ``digits_mlp`` (``digits.digits_split``: standardised pixels, validation rows fixed by
``split_seed``), reshaped to 1x8x8 images. Model: ``Conv2d(1, c, 3, pad 1) - ReLU - Conv2d(c, 2c, 3, pad 1) -
ReLU - MaxPool 2 - Linear(2c·16, 10)`` with ``c = channels``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, make_batches
from hyperswitch.workloads.digits import digits_split, subset


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    number(spec["channels"], f"{key}.channels", integer=True, low=1, high=256)


def cnn(channels: int, n_classes: int = 10) -> nn.Sequential:
    c = int(channels)
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2 * c * 16, n_classes),
    )


@register_workload(
    "digits_cnn",
    defaults={"batch_size": 64, "channels": 8, "val_fraction": 0.2, "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
)
def digits_cnn(seed: int, *, rank: int = 0, world_size: int = 1, batch_size: int, channels: int,
               val_fraction: float, dataset_fraction: float, split_seed: int) -> Workload:
    """Two-conv CNN on scikit-learn's 8x8 digits (Conv2d layers for K-FAC); split fixed by split_seed."""
    xtr, ytr, xval, yval = digits_split(float(val_fraction), int(split_seed))
    xtr, ytr = subset(xtr, ytr, float(dataset_fraction), int(split_seed))
    torch.manual_seed(seed)
    model = cnn(channels)
    return Workload(
        name="digits_cnn",
        model=model,
        loss_fn=nn.functional.cross_entropy,
        train=make_batches(torch.from_numpy(xtr).reshape(-1, 1, 8, 8), torch.from_numpy(ytr), batch_size, seed,
                           rank=rank, world_size=world_size),
        val_x=torch.from_numpy(xval).reshape(-1, 1, 8, 8),
        val_y=torch.from_numpy(yval),
    )
