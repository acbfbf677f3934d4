"""A user workload whose training code raises (a failure of the user's code, not Ray's) after 15 steps while
the file ``fail_file`` exists and ``hidden`` is 16: ``--resume --retry-errors`` runs such a trial again once
the cause is gone. Named by import path in test_retry_errors: ``tests.search.flaky_workload:flaky``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def flaky(seed: int, *, hidden: int = 8, fail_file: str = "", split_seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(split_seed)
    x = torch.randn(240, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    steps = [0]

    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if model.training:
            steps[0] += 1
            if steps[0] > 15 and hidden == 16 and fail_file and Path(fail_file).exists():
                raise RuntimeError(f"the user's code failed ({fail_file} exists)")
        return nn.functional.cross_entropy(outputs, targets)

    return {"model": model, "loss_fn": loss_fn, "train": (x[40:], y[40:]), "val": (x[:40], y[:40])}
