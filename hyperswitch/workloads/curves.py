"""CURVES (Hinton & Salakhutdinov 2006) generated here, and its deep autoencoder (the K-FAC papers' benchmark).

Data, fixed by ``split_seed`` (never by the trial seed; train and test are two independent streams of it):
each 28×28 grey image is one smooth curve through 3 random points ``P0, P1, P2`` drawn uniformly in
``[0.15, 0.85]²`` of the unit square. The curve is the quadratic that passes through them (Lagrange
interpolation at ``t = 0, ½, 1``: ``B(t) = P0·(2t−1)(t−1) + P1·4t(1−t) + P2·t(2t−1)``, ``t ∈ [0, 1]``), sampled
at 64 points (under one pixel apart), scaled to pixel units (pixel centres at ``i + ½``). It is rendered as an
anti-aliased stroke: a pixel's intensity is ``clip(w + ½ − d, 0, 1)``, ``d`` its centre's distance in pixels to
the nearest sample and ``w = 1`` the stroke's half-width, so the core is 1 and the edges ramp down over one
pixel; intensities are in ``[0, 1]`` (on average 8.5 % of the pixels are nonzero, 1-18 % per image: short
curves where the points fall close together). Rendering is vectorised in torch (``render_curves``: one
scatter of 3×3 splats per sample; 1.5 s for 20,000 images on 2 busy cores); the data are cached per
``(n, seed)`` (``curves_images``). 20,000 training and 10,000 test images by default (``n_train``,
``n_test``); the test set is the validation set.

Model: the deep autoencoder 784-400-200-100-50-25-6-25-50-100-200-400-784 of the paper, logistic (sigmoid)
hidden units, a linear 6-unit code layer, a sigmoid output. The model returns the output *logits*; the
sigmoid is applied inside the loss (``binary_cross_entropy_with_logits``, numerically stable), so every layer
is a plain ``nn.Linear`` that K-FAC's hooks precondition. PyTorch's default initialisation, seeded by the
trial seed (no pre-training, no sparse init). Loss: the cross-entropy of the reconstruction summed over the 784
pixels and averaged over the images of the batch (as in the K-FAC papers; about 784·ln 2 ≈ 543 at the start,
about 134 on the plateau of the mean image where SGD sits for hundreds of steps, above 0 at best: the edges are
grey), so ``train_loss`` and ``val_loss`` are per image; a sensible scale for lrs of 0.01-0.1. ``evaluate`` also reports
``val_recon_error``: the squared error per image (summed over pixels, mean over the test images), the number
the K-FAC papers report: a results column of its own (``val_recon_error`` in steps.parquet at evaluations and
in trials.parquet, null for other workloads) and a metric a search may optimise (``metric: val_recon_error``,
mode ``min``). The task is ``regression``, so ``val_accuracy`` is null.

Options (defaults): ``n_train`` 20000, ``n_test`` 10000, ``batch_size`` 256, ``dataset_fraction`` 1.0,
``split_seed`` 0. One step at batch 256 takes about 50 ms on one thread of the 2 shared cores (about a minute
per 1,000 steps; an evaluation on the 10,000 test images 1.3 s); two threads per process on those busy cores
were 20x slower. The same code runs on a GPU: the loop moves the model and data to the workload's device.
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

SIDE = 28
POINTS = 3
SAMPLES = 64
HALF_WIDTH = 1.0
LAYERS = (784, 400, 200, 100, 50, 25, 6)


def render_curves(points: np.ndarray) -> np.ndarray:
    """Images ``(n, 784)`` float32 in [0, 1] of the quadratic curves through ``points`` ``(n, 3, 2)`` (unit
    square coordinates, x then y).

    Each curve sample splats ``clip(w + ½ − d, 0, 1)`` onto the 3×3 pixels around it (the only ones whose
    centres can lie within ``w + ½ = 1.5`` pixels of it) and a pixel keeps the largest value: exactly the
    intensity of its nearest sample, computed with one ``scatter_reduce`` (``amax``: order-free, deterministic).
    """
    n = len(points)
    t = torch.linspace(0.0, 1.0, SAMPLES, dtype=torch.float64)
    basis = torch.stack([(2 * t - 1) * (t - 1), 4 * t * (1 - t), t * (2 * t - 1)])  # (3, S)
    pts = torch.from_numpy(np.asarray(points, dtype=np.float64))
    curve = (torch.einsum("kS,nkd->nSd", basis, pts) * SIDE).float()  # (n, S, 2) in pixel units
    cx, cy = curve[..., 0, None, None], curve[..., 1, None, None]  # (n, S, 1, 1)
    off = torch.arange(-1, 2, dtype=torch.float32)
    px = cx.floor() + off[None, None, None, :]  # (n, S, 1, 3): columns
    py = cy.floor() + off[None, None, :, None]  # (n, S, 3, 1): rows
    d = ((px + 0.5 - cx) ** 2 + (py + 0.5 - cy) ** 2).sqrt()  # (n, S, 3, 3)
    value = (HALF_WIDTH + 0.5 - d).clamp(0.0, 1.0)
    inside = (px >= 0) & (px < SIDE) & (py >= 0) & (py < SIDE)
    image = torch.arange(n)[:, None, None, None] * (SIDE * SIDE)
    index = torch.where(inside, image + (py * SIDE + px).long(), n * SIDE * SIDE)  # outside: one spare slot
    value = torch.where(inside, value, 0.0)
    out = torch.zeros(n * SIDE * SIDE + 1, dtype=torch.float32)
    out.scatter_reduce_(0, index.reshape(-1), value.reshape(-1), reduce="amax")
    return out[:-1].reshape(n, SIDE * SIDE).numpy()


@lru_cache(maxsize=8)
def curves_images(n: int, seed: int, stream: int = 0) -> np.ndarray:
    """``n`` CURVES images ``(n, 784)`` float32, fixed by ``(seed, stream)`` (stream 0: train, 1: test)."""
    rng = np.random.default_rng([seed, stream])
    points = rng.uniform(0.15, 0.85, size=(n, POINTS, 2))
    images = render_curves(points)
    images.setflags(write=False)
    return images


def autoencoder() -> nn.Sequential:
    """784-400-200-100-50-25-6 (linear code) and the mirrored decoder; sigmoid units; returns logits."""
    layers: list[nn.Module] = []
    widths = LAYERS + LAYERS[-2::-1]
    code = len(LAYERS) - 1  # index of the code layer in widths
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i + 1 != code and i + 1 != len(widths) - 1:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the reconstruction, summed over pixels, averaged over the images."""
    return nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


class CurvesWorkload(Workload):
    """A ``Workload`` whose evaluation adds ``val_recon_error`` (squared error per image)."""

    @torch.no_grad()
    def evaluate(self, batch_size: int = 1024) -> dict[str, float]:
        metrics = super().evaluate(batch_size)
        was_training = self.model.training
        self.model.eval()
        total, n = 0.0, self.val_x.shape[0]
        for i in range(0, n, batch_size):
            xb = self.val_x[i:i + batch_size]
            total += float(((torch.sigmoid(self.model(xb)) - xb) ** 2).sum())
        self.model.train(was_training)
        metrics["val_recon_error"] = total / n
        return metrics


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key, val_fraction=None)
    number(spec["n_train"], f"{key}.n_train", integer=True, low=1, high=1_000_000)
    number(spec["n_test"], f"{key}.n_test", integer=True, low=1, high=1_000_000)


@register_workload(
    "curves_autoencoder",
    defaults={"n_train": 20000, "n_test": 10000, "batch_size": 256, "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
    task="regression",
    metrics=("val_recon_error",),
)
def curves_autoencoder(seed: int, *, rank: int = 0, world_size: int = 1, n_train: int, n_test: int,
                       batch_size: int, dataset_fraction: float, split_seed: int) -> Workload:
    """Deep autoencoder 784-400-200-100-50-25-6 (mirrored) on generated CURVES; options n_train, n_test."""
    xtr = curves_images(int(n_train), int(split_seed), 0)
    xval = curves_images(int(n_test), int(split_seed), 1)
    keep = fraction_of(len(xtr), float(dataset_fraction), int(split_seed))
    x = torch.from_numpy(xtr[keep].copy())
    torch.manual_seed(seed)
    return CurvesWorkload(
        name="curves_autoencoder",
        model=autoencoder(),
        loss_fn=reconstruction_loss,
        train=make_batches(x, x, batch_size, seed, rank=rank, world_size=world_size),
        val_x=torch.from_numpy(xval.copy()),
        val_y=torch.from_numpy(xval.copy()),
        task="regression",
    )
