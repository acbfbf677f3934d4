"""Eager value checks: build an optimizer spec against a tiny model so bad values fail at load time.

The probe has a random generator of its own: the caller's (torch's global CPU generator, which a training run
seeds for its model and data) is the same after a check as before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from hyperswitch.optim.registry import build_optimizer, check_optimizer_spec


@contextmanager
def private_rng() -> Iterator[None]:
    """Run the block on torch's CPU generator seeded 0, then give the caller's state back (``fork_rng``).

    Only the CPU generator: the probe never touches a GPU, and ``torch.manual_seed`` would also reseed CUDA's.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        yield


def probe_model() -> nn.Module:
    """The same small model every time, drawn from a private generator (the caller's is left as it was)."""
    with private_rng():
        return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))


def probe_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets)


def probe_optimizer(spec: Mapping[str, Any], key: str) -> torch.optim.Optimizer:
    """Build ``spec`` on the probe model (its constructor checks the values); the caller's generator is untouched."""
    with private_rng():
        return build_optimizer(spec, probe_model(), probe_loss, key=key)


def check_optimizer_values(spec: Any, key: str) -> dict[str, Any]:
    """Check the spec's name, keys and values (by constructing it); return it as a plain dict."""
    check_optimizer_spec(spec, key=key)
    probe_optimizer(spec, key)
    return dict(spec)
