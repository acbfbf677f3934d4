"""The wide MLP of paper 004 on a generated teacher task (nothing downloaded).

Data: Gaussian inputs ``x ~ N(0, I)`` of dimension ``input_dim``; the label of each is the arg-max over
``classes`` of a fixed random *teacher* network (``input_dim -> teacher_width x teacher_depth -> classes``,
tanh units, Gaussian weights scaled by 1/sqrt(fan-in), per-class offsets that balance the classes on a
reference sample), and a ``label_noise`` fraction of the labels is replaced by a uniformly drawn class. The
teacher, the ``n_train`` training and the ``n_val`` validation examples are all drawn from ``split_seed``
(never from the trial seed), the validation set the same way as the training set. A deeper, narrow teacher
makes a boundary that a student learns slowly: the task does not saturate in a few hundred steps (the
default reached 39.6 % validation accuracy after 300 steps of SGD with momentum, lr 0.05; a logistic
regression on 20,000 of its examples, 47 %).
``dataset_fraction`` keeps a seeded subset of the training examples (004's data-size axis, with ``n_train``).

Model (the student): ``input_dim -> width x depth -> classes`` with ReLU, ``nn.Linear`` layers (K-FAC
preconditions every one), cross-entropy loss, ``val_accuracy`` the fraction of validation labels predicted.

Defaults: width 2048, depth 2 (004's 2 hidden layers of 2048), input_dim 128, classes 10, n_train 50,000,
n_val 10,000, batch_size 64 (about 50 ms a step on one thread of 2 busy CPU cores, so under a minute per
1,000 steps; batch 128 took about 75 ms, over the minute; 004's batch-size axis goes up to 4096 on CPU, at
about 1.4 s a step).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches


def _teacher_logits(x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    h = x
    for w in weights[:-1]:
        h = np.tanh(h @ w)
    return h @ weights[-1]


@lru_cache(maxsize=4)
def teacher_data(input_dim: int, classes: int, n_train: int, n_val: int, teacher_width: int, teacher_depth: int,
                 label_noise: float, split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) of the teacher task, all drawn from ``split_seed``."""
    rng = np.random.default_rng([split_seed, 4])  # 004
    dims = [input_dim] + [teacher_width] * teacher_depth + [classes]
    # Gain 2 per hidden layer: tanh units in their non-linear range, so the boundary is far from linear.
    weights = [rng.standard_normal((a, b)) * ((2.0 if i < teacher_depth else 1.0) / np.sqrt(a))
               for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))]
    reference = _teacher_logits(rng.standard_normal((20_000, input_dim)), weights)
    # Offsets so that each class is the arg-max on about the same share of inputs (a few fixed-point steps).
    offset = np.zeros(classes)
    for _ in range(50):
        share = np.bincount((reference - offset).argmax(axis=1), minlength=classes) / len(reference)
        offset += 0.5 * np.log(np.maximum(share, 1e-3) * classes) * reference.std()

    def draw(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        # Own streams for inputs and noise: the inputs do not change with label_noise or with the other split.
        x = np.random.default_rng([split_seed, 4, stream]).standard_normal((n, input_dim))
        y = (_teacher_logits(x, weights) - offset).argmax(axis=1)
        noise = np.random.default_rng([split_seed, 4, stream, 1])
        noisy = noise.random(n) < label_noise
        y[noisy] = noise.integers(0, classes, int(noisy.sum()))
        return x.astype(np.float32), y.astype(np.int64)

    x_train, y_train = draw(n_train, 1)
    x_val, y_val = draw(n_val, 2)
    return x_train, y_train, x_val, y_val


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    number(spec["batch_size"], f"{key}.batch_size", integer=True, low=1, high=65_536)
    number(spec["width"], f"{key}.width", integer=True, low=1, high=65_536)
    number(spec["depth"], f"{key}.depth", integer=True, low=1, high=16)
    number(spec["input_dim"], f"{key}.input_dim", integer=True, low=1, high=65_536)
    number(spec["classes"], f"{key}.classes", integer=True, low=2, high=1000)
    number(spec["n_train"], f"{key}.n_train", integer=True, low=1, high=10_000_000)
    number(spec["n_val"], f"{key}.n_val", integer=True, low=1, high=1_000_000)
    number(spec["teacher_width"], f"{key}.teacher_width", integer=True, low=1, high=4096)
    number(spec["teacher_depth"], f"{key}.teacher_depth", integer=True, low=1, high=16)
    number(spec["label_noise"], f"{key}.label_noise", low=0.0, high=1.0)


DEFAULTS = {"width": 2048, "depth": 2, "input_dim": 128, "classes": 10, "n_train": 50_000, "n_val": 10_000,
            "batch_size": 64, "teacher_width": 64, "teacher_depth": 4, "label_noise": 0.0,
            "dataset_fraction": 1.0, "split_seed": 0}


@register_workload("mlp_wide", defaults=DEFAULTS, check=_check)
def mlp_wide(seed: int, *, rank: int = 0, world_size: int = 1, width: int, depth: int, input_dim: int, classes: int,
             n_train: int, n_val: int, batch_size: int, teacher_width: int, teacher_depth: int, label_noise: float,
             dataset_fraction: float, split_seed: int) -> Workload:
    """Wide MLP (input_dim -> width x depth -> classes, ReLU) on labels of a fixed random teacher network (004)."""
    xtr, ytr, xval, yval = teacher_data(int(input_dim), int(classes), int(n_train), int(n_val), int(teacher_width),
                                        int(teacher_depth), float(label_noise), int(split_seed))
    keep = fraction_of(len(ytr), float(dataset_fraction), int(split_seed))
    xtr, ytr = xtr[keep], ytr[keep]
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    fan_in = int(input_dim)
    for _ in range(int(depth)):
        layers += [nn.Linear(fan_in, int(width)), nn.ReLU()]
        fan_in = int(width)
    layers.append(nn.Linear(fan_in, int(classes)))
    return Workload(
        name="mlp_wide",
        model=nn.Sequential(*layers),
        loss_fn=nn.functional.cross_entropy,
        train=make_batches(torch.from_numpy(xtr), torch.from_numpy(ytr), int(batch_size), seed, rank=rank,
                           world_size=world_size),
        val_x=torch.from_numpy(xval),
        val_y=torch.from_numpy(yval),
    )
