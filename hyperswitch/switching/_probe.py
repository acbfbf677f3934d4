"""Eager value checks: build an optimizer spec against a tiny model so bad values fail at load time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hyperswitch.optim.registry import build_optimizer, check_optimizer_spec


def probe_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))


def probe_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


def check_optimizer_values(spec: Any, key: str) -> dict[str, Any]:
    """Check the spec's name, keys and values (by constructing it); return it as a plain dict."""
    check_optimizer_spec(spec, key=key)
    build_optimizer(spec, probe_model(), probe_loss, key=key)
    return dict(spec)


def optimizer_label(spec: Mapping[str, Any]) -> str:
    return str(spec["name"])
