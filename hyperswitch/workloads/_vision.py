"""Shared by the image workloads: the small ResNet, models by name (torchvision's where it is installed), and
batches of uint8 images that are normalised, and optionally augmented, as they are drawn.

``resnet_small(depth, width)``: the CIFAR ResNet of He et al. (2016, section 4.2): a 3x3 stem conv to
``width`` channels, 3 stages of ``n = (depth - 2) / 6`` basic blocks (two 3x3 convs with BatchNorm) at
``width``, ``2·width`` and ``4·width`` channels, the 2nd and 3rd stages starting with stride 2 and a 1x1
strided projection shortcut (option B), then global average pooling and a Linear classifier. Convs have no
bias (BatchNorm follows each); K-FAC preconditions every Conv2d and the Linear, and gives BatchNorm's
weight and bias its SGD update (``optim._kfac_layers.make_layer`` handles Linear and Conv2d only).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.config.validate import boolean, number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Batches

RESNET_DEPTHS = tuple(6 * n + 2 for n in range(1, 10))  # 8, 14, 20, ..., 56
VISION_EXTRA = ("pip install 'hyperswitch[vision]' (torchvision built for the installed torch: "
                "torchvision 0.28 with torch 2.13)")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """CIFAR-style ResNet-(6n+2) for ``in_channels`` x H x W images (any H, W >= 4)."""

    def __init__(self, depth: int = 8, width: int = 16, n_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"depth must be 6n+2, one of {RESNET_DEPTHS}, but got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        blocks: list[nn.Module] = []
        c = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(c, c_out, stride))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(out.mean(dim=(2, 3)))


def check_model_options(spec: dict[str, Any], key: str) -> None:
    """``model`` (resnet_small or a torchvision model name), ``depth`` and ``width`` (resnet_small's)."""
    if "depth" in spec:
        number(spec["depth"], f"{key}.depth", integer=True)
        if int(spec["depth"]) not in RESNET_DEPTHS:
            raise ConfigError(f"{key}.depth", "must be 6n+2 for n = 1..9 (8, 14, 20, 26, 32, 38, 44, 50, 56)",
                              spec["depth"])
    if "width" in spec:
        number(spec["width"], f"{key}.width", integer=True, low=1, high=512)
    if "augment" in spec:
        boolean(spec["augment"], f"{key}.augment")
    if "model" in spec:
        name = spec["model"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.model", "must be resnet_small or a torchvision model name", name)
        if name != "resnet_small":
            torchvision_model(name, 10, f"{key}.model", build=False)


def torchvision_model(name: str, n_classes: int, key: str = "workload.model", *, build: bool = True) -> Any:
    """torchvision's ``models.<name>(weights=None, num_classes=n_classes)``; a ConfigError without torchvision
    or for an unknown name."""
    try:
        models = importlib.import_module("torchvision.models")
    except ImportError:
        raise ConfigError(key, f"is not resnet_small and torchvision is not installed; {VISION_EXTRA}",
                          name) from None
    names = set(models.list_models(module=models)) if hasattr(models, "list_models") else set()
    if name not in names:
        raise ConfigError(key, "must be resnet_small or a torchvision classification model name "
                          "(torchvision.models.list_models())", name)
    if not build:
        return None
    return models.get_model(name, weights=None, num_classes=n_classes)


def build_model(model: str, depth: int, width: int, n_classes: int, in_channels: int = 3) -> nn.Module:
    if model == "resnet_small":
        return ResNetSmall(int(depth), int(width), n_classes, in_channels)
    return torchvision_model(model, n_classes)


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 (or [0, 1] float) images ``(N, C, H, W)``, in [0, 1]
    units, computed in chunks in float64."""
    c = x.shape[1]
    s, s2, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    for i in range(0, x.shape[0], 4096):
        chunk = x[i:i + 4096].to(torch.float64) / scale
        s += chunk.sum(dim=(0, 2, 3))
        s2 += (chunk * chunk).sum(dim=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s / count
    std = (s2 / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32, ``(x / 255 - mean) / std`` per channel."""
    out = x.to(torch.float32).div_(255.0)
    return out.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Random-crop (zero padding ``pad`` on each side, crop at ``offsets[i] = (dy, dx)`` in ``[0, 2·pad]``)
    and horizontally flip where ``flips``, for a batch ``(N, C, H, W)`` of any dtype."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    rows = offsets[:, 0, None] + torch.arange(h)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(w)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    idx = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class ImageBatches(Batches):
    """``Batches`` over uint8 images ``(N, C, H, W)``, normalised per channel as they are drawn.

    With ``augment``: random crops (zero padding ``pad``, 4 for 32x32 images) and horizontal flips. Their
    offsets and flips are drawn for the whole epoch, right after its permutation, from the same seeded
    generator (the trial's), so a resumed epoch replays them and every data-parallel rank applies the same
    augmentation to its slice of the global batch.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, *, mean: torch.Tensor,
                 std: torch.Tensor, augment: bool, pad: int = 4, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(x, y, batch_size, seed, rank=rank, world_size=world_size)
        self.mean, self.std, self.augment, self.pad = mean, std, bool(augment), int(pad)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        perm = torch.randperm(n, generator=self.generator)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=self.generator)
            flips = torch.rand(n, generator=self.generator) < 0.5
        local = self.batch_size // self.world_size
        for b in range(len(self)):
            sl = slice(b * self.batch_size + self.rank * local, b * self.batch_size + (self.rank + 1) * local)
            idx = perm[sl]
            xb = self.x[idx]
            if self.augment:
                xb = crop_flip(xb, offsets[sl], flips[sl], self.pad)
            yield normalise(xb, self.mean, self.std), self.y[idx]


def image_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, mean: torch.Tensor,
                  std: torch.Tensor, augment: bool, rank: int, world_size: int, *,
                  key: str = "workload") -> ImageBatches:
    """``ImageBatches`` (padding 1/8 of the image side); a batch larger than the training set is an error."""
    if batch_size > x.shape[0]:
        raise ConfigError(f"{key}.batch_size", f"must be <= the number of training examples ({x.shape[0]}; "
                          "raise dataset_fraction or lower batch_size)", batch_size)
    return ImageBatches(x, y, batch_size, seed, mean=mean, std=std, augment=augment, pad=max(1, x.shape[-1] // 8),
                        rank=rank, world_size=world_size)


def seeded_subset(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``k`` of ``n`` items (all of them when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])
