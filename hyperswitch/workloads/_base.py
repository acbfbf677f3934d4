"""Workloads: a model, a loss and data, built from a validated spec and a seed. No downloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from hyperswitch.config.validate import check_keys, require_mapping
from hyperswitch.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Batches:
    """Shuffled mini-batches of in-memory tensors, one pass per epoch, seeded.

    Data parallel: every rank draws the same global permutation and takes its contiguous slice of each
    global batch, so the global batch size does not change with the number of workers.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, *, rank: int = 0,
                 world_size: int = 1, drop_last: bool = True) -> None:
        if batch_size % world_size:
            raise ConfigError("workload.batch_size", f"must be divisible by the number of workers {world_size}",
                              batch_size)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(self.x.shape[0], generator=self.generator)
        local = self.batch_size // self.world_size
        for b in range(len(self)):
            idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
            idx = idx[self.rank * local:(self.rank + 1) * local]
            yield self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])


@dataclass
class Workload:
    name: str
    model: nn.Module
    loss_fn: LossFn
    train: Batches
    val_x: torch.Tensor
    val_y: torch.Tensor
    task: str = "classification"  # or "regression"

    def to(self, device: torch.device) -> Workload:
        self.model.to(device)
        self.val_x, self.val_y = self.val_x.to(device), self.val_y.to(device)
        return self

    @torch.no_grad()
    def evaluate(self, batch_size: int = 1024) -> dict[str, float]:
        """Validation loss (mean over examples) and, for classification, accuracy: the fraction of targets
        whose class (the last dimension of the output) is predicted; a sequence model's output ``(N, T, C)``
        against targets ``(N, T)`` counts every position."""
        was_training = self.model.training
        self.model.eval()
        total, correct, targets, n = 0.0, 0, 0, self.val_x.shape[0]
        for i in range(0, n, batch_size):
            xb, yb = self.val_x[i:i + batch_size], self.val_y[i:i + batch_size]
            out = self.model(xb)
            total += float(self.loss_fn(out, yb)) * xb.shape[0]
            if self.task == "classification":
                correct += int((out.argmax(dim=-1) == yb).sum())
                targets += yb.numel()
        self.model.train(was_training)
        metrics = {"val_loss": total / n}
        if self.task == "classification":
            metrics["val_accuracy"] = correct / targets
        return metrics


@dataclass(frozen=True)
class WorkloadEntry:
    name: str
    factory: Callable[..., Workload]
    defaults: Mapping[str, Any]
    check: Callable[[dict[str, Any], str], None] | None
    doc: str
    task: str | None = "classification"  # "regression": no val_accuracy; None: known only once built (user's)
    metrics: tuple[str, ...] = ()  # what evaluate() adds of results.schema.WORKLOAD_METRICS


_WORKLOADS: dict[str, WorkloadEntry] = {}
FactoryT = TypeVar("FactoryT", bound=Callable[..., Workload])


def register_workload(name: str, *, defaults: Mapping[str, Any],
                      check: Callable[[dict[str, Any], str], None] | None = None, task: str = "classification",
                      metrics: tuple[str, ...] = ()) -> Callable[[FactoryT], FactoryT]:
    """Register ``factory(seed, *, rank, world_size, **options) -> Workload``; ``task`` is the task of the
    workloads it builds (``regression``: they report no accuracy); ``metrics`` the workload-specific metrics their
    ``evaluate()`` adds (of ``results.schema.WORKLOAD_METRICS``)."""

    def deco(factory: FactoryT) -> FactoryT:
        _WORKLOADS[name] = WorkloadEntry(name, factory, dict(defaults), check,
                                         (factory.__doc__ or "").strip().splitlines()[0], task, tuple(metrics))
        return factory

    return deco


def workload_names() -> list[str]:
    return sorted(_WORKLOADS)


def get_workload(name: Any, key: str = "workload.name") -> WorkloadEntry:
    """A registered workload, or a user's own named ``package.module:factory`` (see ``workloads.user``)."""
    if isinstance(name, str) and ":" in name:
        from hyperswitch.workloads.user import user_workload

        return user_workload(name, key)
    if not isinstance(name, str) or name not in _WORKLOADS:
        raise ConfigError(key, f"unknown workload; must be one of {', '.join(workload_names())} "
                          "or a user workload 'package.module:function'", name)
    return _WORKLOADS[name]


def check_workload_keys(spec: Any, key: str = "workload") -> WorkloadEntry:
    spec = require_mapping(spec, key)
    if "name" not in spec:
        raise ConfigError(f"{key}.name", "is required", show_value=False)
    entry = get_workload(spec["name"], f"{key}.name")
    check_keys(spec, ("name", *entry.defaults), key)
    return entry


def validate_workload(spec: Any, key: str = "workload") -> dict[str, Any]:
    """Check the spec, values included; return it with defaults filled in."""
    entry = check_workload_keys(spec, key)
    full = {"name": entry.name, **entry.defaults, **{k: v for k, v in spec.items() if k != "name"}}
    if entry.check is not None:
        entry.check(full, key)
    return full


def build_workload(spec: Mapping[str, Any], seed: int, *, rank: int = 0, world_size: int = 1) -> Workload:
    full = validate_workload(spec)
    entry = get_workload(full["name"])
    options = {k: v for k, v in full.items() if k != "name"}
    return entry.factory(seed, rank=rank, world_size=world_size, **options)
