"""The toy problem and the helpers the contract tests share: a Linear 8→16→4 network on 48 points of 4 Gaussian
classes in 3 mini-batches of 16 (one epoch), the registry's stepping protocol, checkpoints as the training driver
writes them, and the tensors an object keeps reachable (to check that they are freed)."""

from __future__ import annotations

import collections
import functools
import io
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IN, HIDDEN, OUT = 8, 16, 4
BATCHES_PER_EPOCH = 3
BATCH = 16


def toy_model(seed: int = 0) -> nn.Module:
    """The same initial weights for a seed, drawn from a private generator (the caller's is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT))


def toy_batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch: BATCHES_PER_EPOCH mini-batches (x, y), new tensors on every call."""
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(OUT, IN, generator=g)
    y = torch.arange(BATCH * BATCHES_PER_EPOCH) % OUT
    x = centers[y] + torch.randn(len(y), IN, generator=g)
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)]


def optimizer_step(opt: torch.optim.Optimizer, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One update by the registry's stepping protocol (``batch_step`` if it has one); the loss before it."""
    batch_step = getattr(opt, "batch_step", None)
    if batch_step is not None:
        return float(batch_step(x, y))
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def checkpoint(state: Any) -> Any:
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``, as train.driver saves and reads it."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)


def reachable_tensors(*roots: Any) -> list[torch.Tensor]:
    """Every tensor reachable from ``roots`` through attributes, containers, bound methods, partials and closures
    (not through classes, modules or a function's globals), parameters' ``.grad`` included."""
    seen: set[int] = set()
    found: dict[int, torch.Tensor] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found[id(obj)] = obj
            if obj.grad is not None:
                stack.append(obj.grad)
        elif isinstance(obj, str | bytes | int | float | complex | bool | type | types.ModuleType) or obj is None:
            continue
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | collections.deque):
            stack.extend(obj)
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        elif isinstance(obj, functools.partial):
            stack.extend((obj.func, obj.args, obj.keywords))
        elif isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in obj.__closure__ or () if _filled(c))
        else:
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if isinstance(slot, str) and hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
    return list(found.values())


def _filled(cell: types.CellType) -> bool:
    try:
        _ = cell.cell_contents  # an empty cell raises
    except ValueError:
        return False
    return True
