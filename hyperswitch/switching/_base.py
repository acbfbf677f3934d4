"""The switching-policy interface: a Policy (validated spec) builds a Stepper for a model and a loss.

Each policy type is a ``PolicyType[S]`` whose ``validate`` turns a mapping into its own frozen spec ``S`` (a
``PolicySpec``, ``_spec.py``) once, at the boundary, and whose ``build`` takes that spec.

Observation (losses), decision (when to switch) and action (which optimizer steps) stay separate: a
Stepper owns the optimizers and asks its rule which one acts; the rule only sees losses and steps.
"""

from __future__ import annotations

import abc
import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from hyperswitch.optim._dist import global_mean
from hyperswitch.optim._preconditioned import tensors_bytes as tensor_bytes
from hyperswitch.optim.registry import build_optimizer
from hyperswitch.switching._spec import OptimizerSpec, PolicySpec

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Event:
    """Something a policy decided: a switch, an IOMT cycle, ... ``detail`` is JSON-serialisable."""

    step: int
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    def detail_json(self) -> str:
        return json.dumps(self.detail, sort_keys=True, default=str)


@dataclass
class StepReport:
    """What one ``Stepper.step`` did. ``step`` counts updates from 1."""

    step: int
    loss: float
    lr: float
    optimizer: str
    switched: bool = False
    events: list[Event] = field(default_factory=list)


def optimizer_step(
    opt: torch.optim.Optimizer, model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """One update by the registry's stepping protocol; returns the mini-batch loss before the update.

    Data parallel: the loss returned is the mean over workers (what one process on the global batch
    sees), so that every worker's policy takes the same decisions; gradients are averaged by DDP.
    """
    batch_step = getattr(opt, "batch_step", None)
    if batch_step is not None:
        loss = batch_step(inputs, targets)
        return loss if getattr(opt, "returns_global_loss", False) else global_mean(loss)
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    opt.step()
    return global_mean(loss.detach())


def current_lr(opt: torch.optim.Optimizer) -> float:
    lr = getattr(opt, "lr", None)
    if lr is None:
        lr = opt.param_groups[0].get("lr", float("nan"))
    return float(lr)


def optimizer_state_bytes(opt: torch.optim.Optimizer | None) -> int:
    if opt is None:
        return 0
    own = getattr(opt, "state_bytes", None)
    if callable(own):
        return int(own())
    return tensor_bytes(list(opt.state.values()))


class Stepper(abc.ABC):
    """Trains ``model`` one mini-batch at a time under a policy.

    ``spec`` is the validated policy spec it was built from. ``copy.deepcopy(stepper)`` copies
    the model and builds a stepper of the same spec on the copy, loaded from ``state_dict()``: it continues exactly
    as the original would, and shares no tensor with it (the loss function is shared: it holds no state). Optimizers
    are not copied attribute by attribute: torch's ``Optimizer`` pickles only its defaults, state and param groups,
    and K-FAC's hooks stay with the model they were registered on (a copied model gets no-ops in their place).
    """

    spec: PolicySpec

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.step_count = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> Stepper:
        from hyperswitch.switching._registry import get_policy_type

        model = copy.deepcopy(self.model, memo)
        twin = get_policy_type(self.spec.type).build(self.spec, model, self.loss_fn)
        memo[id(self)] = twin
        twin.load_state_dict(self.state_dict())
        return twin

    @abc.abstractmethod
    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport: ...

    def end_epoch(self, epoch: int, mean_loss: float) -> list[Event]:
        """Called by the training loop after each epoch; rules with ``unit: epoch`` act here."""
        return []

    @property
    @abc.abstractmethod
    def active_optimizer(self) -> torch.optim.Optimizer | None: ...

    @property
    @abc.abstractmethod
    def active_name(self) -> str: ...

    def state_bytes(self) -> int:
        """Bytes held by optimizer state (all optimizers this stepper still holds)."""
        return optimizer_state_bytes(self.active_optimizer)

    def switch_report(self) -> dict[str, Any] | None:
        """Whether this policy's switch rule fired and what it saw (JSON-serialisable), or None for a policy
        without one. Rule-specific keys; always ``fired`` (bool) and ``rule``; ``switch_step`` once switched."""
        return None

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def _build(self, spec: OptimizerSpec, key: str) -> torch.optim.Optimizer:
        return build_optimizer(spec.as_dict(), self.model, self.loss_fn, key=key)


S = TypeVar("S", bound=PolicySpec)


class PolicyType(abc.ABC, Generic[S]):
    """A kind of policy: validates a mapping into its spec ``S`` and builds its stepper from one. One subclass
    per module."""

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]

    @classmethod
    @abc.abstractmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> S:
        """Check ``spec`` (values included) into the type's spec, defaults filled in."""

    @classmethod
    @abc.abstractmethod
    def build(cls, spec: S, model: nn.Module, loss_fn: LossFn) -> Stepper: ...
