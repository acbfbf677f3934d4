"""A user workload that records which process built it: each call writes an empty file named after its process
id into ``pid_dir`` (one file per call). test_worker_group reads them to see which worker processes trained the
trials of a sweep. Named by import path: ``tests.train.pid_workload:pid_digits``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch
from torch import nn


def pid_digits(seed: int, *, hidden: int = 16, pid_dir: str = "", split_seed: int = 0) -> dict:
    if pid_dir:
        (Path(pid_dir) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    g = torch.Generator().manual_seed(split_seed)
    x = torch.randn(704, 8, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2]) > 0).long() + (x[:, 3] > 1).long()
    model = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    return {"model": model, "loss_fn": nn.functional.cross_entropy, "train": (x[128:], y[128:]),
            "val": (x[:128], y[:128])}
