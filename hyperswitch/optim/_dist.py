"""Data-parallel helpers: the same numbers on every worker.

Every decision a policy takes from a loss (Mixer's switcher, GeN's learning-rate fit, IOMT's scores) must
be the same on every worker, or the replicas drift apart. The losses that feed them are therefore the
global mean over workers (each worker holds an equal share of the global batch). Without an initialised
process group (one worker) these are no-ops.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over workers (one all-reduce); ``value`` itself with one worker."""
    n = world_size()
    if n == 1:
        return value
    buf = value.detach().reshape(1).to(torch.float64).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return (buf / n).reshape(()).to(value.dtype)


def global_mean_float(value: float, device: torch.device | str = "cpu") -> float:
    if world_size() == 1:
        return value
    return float(global_mean(torch.tensor(value, dtype=torch.float64, device=device)))
