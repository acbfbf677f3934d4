"""``resnet_small``: a CIFAR-style ResNet (``_vision.ResNetSmall``, BatchNorm) on generated 32x32 colour images.

The images (``shapes_data``) are drawn procedurally, vectorised in numpy, seeded by ``split_seed`` and cached
per ``(n, seed)``: 10 classes = 5 shapes (disc, square, triangle, ring, cross) x 2 stripe orientations of the
shape's fill (near-horizontal or near-vertical, each within ±30°: 30° apart at the closest). Everything else
is a nuisance the net must see through: the position (centre anywhere the shape fits), scale (radius 6 to
11 pixels), rotation of the shape, stripe frequency (0.15 to 0.3 cycles per pixel) and phase, the two fill
colours and the background colour (uniform random RGB, the background with a random linear gradient), and
Gaussian pixel noise (σ 0.08). The classes are balanced. Train and test sets are independent draws
(``split_seed`` fixes both; the trial seed fixes only the initialisation and the batch order). Pixels are
normalised per channel with the training set's mean and standard deviation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of
from hyperswitch.workloads._vision import ResNetSmall, channel_stats, check_model_options, image_batches, normalise

SIZE = 32
N_CLASSES = 10
SHAPES = ("disc", "square", "triangle", "ring", "cross")
_CHUNK = 2048


def _draw(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """uint8 images ``(n, 3, 32, 32)`` of the classes ``y``."""
    n = len(y)
    shape, orient = y % len(SHAPES), y // len(SHAPES)
    def f32(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)

    r64 = rng.uniform(6.0, 11.0, n)
    r = f32(r64)
    cx = f32(rng.uniform(r64 - 1.0, SIZE - r64, n))
    cy = f32(rng.uniform(r64 - 1.0, SIZE - r64, n))
    rot = f32(rng.uniform(0.0, 2 * np.pi, n))
    phi = f32(orient * (np.pi / 2) + rng.uniform(-np.pi / 6, np.pi / 6, n))  # stripe direction
    freq = f32(rng.uniform(0.15, 0.3, n))
    phase = f32(rng.uniform(0.0, 2 * np.pi, n))
    fg1, fg2, bg = (f32(rng.uniform(0.0, 1.0, (n, 3))) for _ in range(3))
    grad = f32(rng.uniform(-0.3, 0.3, (n, 2)))
    noise = rng.standard_normal((n, 3, SIZE, SIZE), dtype=np.float32) * np.float32(0.08)

    coords = np.arange(SIZE, dtype=np.float32) + np.float32(0.5)
    px, py = coords[None, None, :], coords[None, :, None]  # (1, 1, W), (1, H, 1)
    dx, dy = px - cx[:, None, None], py - cy[:, None, None]  # (n, H, W)
    c, s = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    rr = r[:, None, None]
    u, v = (c * dx + s * dy) / rr, (-s * dx + c * dy) / rr
    rad = np.hypot(u, v)
    tri = np.ones_like(u, dtype=bool)
    for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):  # edge normals of a triangle
        tri &= np.cos(a) * u + np.sin(a) * v <= 0.5
    masks = np.stack([
        rad <= 1.0,
        np.maximum(np.abs(u), np.abs(v)) <= 0.8,
        tri,
        (rad <= 1.0) & (rad >= 0.55),
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0)),
    ])  # (5, n, H, W)
    mask = masks[shape, np.arange(n)][:, None]  # (n, 1, H, W)

    # stripes run along phi: the intensity varies along the normal (-sin phi, cos phi)
    t = -np.sin(phi)[:, None, None] * px + np.cos(phi)[:, None, None] * py
    stripes = (np.sin(2 * np.pi * freq[:, None, None] * t + phase[:, None, None]) > 0)[:, None]
    fill = np.where(stripes, fg1[:, :, None, None], fg2[:, :, None, None])
    ramp = (grad[:, 0, None, None] * (px - 16) + grad[:, 1, None, None] * (py - 16)) / 16  # (n, H, W)
    back = np.clip(bg[:, :, None, None] + ramp[:, None], 0.0, 1.0)
    img = np.where(mask, fill, back) + noise
    return np.clip(np.rint(img * np.float32(255.0)), 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def shapes_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` generated images (uint8 ``(n, 3, 32, 32)``) and their labels (balanced, shuffled), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % N_CLASSES).astype(np.int64)
    x = np.concatenate([_draw(rng, y[i:i + _CHUNK]) for i in range(0, n, _CHUNK)]) if n else \
        np.zeros((0, 3, SIZE, SIZE), np.uint8)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    return x_t, y_t


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key, val_fraction=None)
    check_model_options(spec, key)
    number(spec["n_train"], f"{key}.n_train", integer=True, low=10, high=1_000_000)
    number(spec["n_test"], f"{key}.n_test", integer=True, low=10, high=1_000_000)


@register_workload(
    "resnet_small",
    defaults={"batch_size": 16, "depth": 8, "width": 16, "n_train": 10_000, "n_test": 2_000, "augment": False,
              "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
)
def resnet_small(seed: int, *, rank: int = 0, world_size: int = 1, batch_size: int, depth: int, width: int,
                 n_train: int, n_test: int, augment: bool, dataset_fraction: float, split_seed: int) -> Workload:
    """ResNet-(6n+2) with BatchNorm on generated 32x32 colour shapes/stripes (10 classes); split_seed fixes data."""
    split_seed = int(split_seed)
    xtr, ytr = shapes_data(int(n_train), 2 * split_seed)
    xte, yte = shapes_data(int(n_test), 2 * split_seed + 1)
    mean, std = channel_stats(xtr)
    keep = torch.from_numpy(fraction_of(len(ytr), float(dataset_fraction), split_seed))
    xtr, ytr = xtr[keep], ytr[keep]
    torch.manual_seed(seed)
    model: nn.Module = ResNetSmall(int(depth), int(width), N_CLASSES)
    return Workload(
        name="resnet_small",
        model=model,
        loss_fn=nn.functional.cross_entropy,
        train=image_batches(xtr, ytr, int(batch_size), seed, mean, std, bool(augment), rank, world_size),
        val_x=normalise(xte, mean, std),
        val_y=yte,
    )

