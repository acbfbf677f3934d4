"""One optimizer throughout: the first- and second-order baselines.

SWATS (pytorch-optimizer) switches itself from its Adam phase to SGD; the stepper watches its param groups and
records that as a ``switch`` event at the first SGD update (detail: from, to, rule ``swats``, lr: the SGD rate
SWATS chose) and in ``switch_report()``, which also says so when SWATS never switched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import check_keys
from hyperswitch.switching._base import Event, LossFn, PolicyType, Stepper, StepReport, current_lr, optimizer_step
from hyperswitch.switching._registry import register_policy
from hyperswitch.switching._spec import LrRule, OptimizerSpec, PolicySpec, wrap_spec


@dataclass(frozen=True, slots=True)
class SingleSpec(PolicySpec):
    """``{type: single, optimizer: {name, ...}, lr_rule: ...}``."""

    optimizer: OptimizerSpec
    lr_rule: LrRule | None = None
    type: str = "single"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "optimizer": self.optimizer.as_dict()}
        if self.lr_rule is not None:
            out["lr_rule"] = self.lr_rule.as_dict()
        return out

    def optimizer_names(self) -> list[str]:
        return [self.optimizer.name]


class SingleStepper(Stepper):
    spec: SingleSpec

    def __init__(self, model: nn.Module, loss_fn: LossFn, spec: SingleSpec) -> None:
        super().__init__(model, loss_fn)
        self.spec = spec
        self.name = spec.optimizer.name
        self.optimizer = self._build(wrap_spec(spec.optimizer, spec.lr_rule), "policy.optimizer")
        self.swats = _swats(self.optimizer)
        self.swats_at: int | None = None  # the update after which SWATS entered its SGD phase
        self.swats_lr: float | None = None
        self.swats_announced = False

    @property
    def active_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizer

    @property
    def active_name(self) -> str:
        return self.name

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport:
        self.step_count += 1
        events = []
        if self.swats_at is not None and not self.swats_announced:
            self.swats_announced = True
            events.append(Event(step=self.step_count, kind="switch", detail={
                "from": f"{self.name} (adam phase)", "to": f"{self.name} (sgd phase)", "rule": "swats",
                "lr": self.swats_lr}))
        lr = current_lr(self.optimizer)
        loss = optimizer_step(self.optimizer, self.model, self.loss_fn, inputs, targets)
        if self.swats is not None and self.swats_at is None:
            group = next((g for g in self.swats.param_groups if g.get("phase") == "sgd"), None)
            if group is not None:
                self.swats_at, self.swats_lr = self.step_count, float(group["lr"])
        return StepReport(step=self.step_count, loss=float(loss), lr=lr, optimizer=self.name,
                          switched=bool(events), events=events)

    def switch_report(self) -> dict[str, Any] | None:
        if self.swats is None:
            return None
        out: dict[str, Any] = {"fired": self.swats_at is not None, "rule": "swats",
                               "threshold": float(self.swats.param_groups[0]["eps"]), "steps": self.step_count,
                               "from": f"{self.name} (adam phase)", "to": f"{self.name} (sgd phase)"}
        if self.swats_at is not None:
            out.update(at_step=self.swats_at, lr=self.swats_lr)
            if self.swats_announced:
                out["switch_step"] = self.swats_at + 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "optimizer": self.optimizer.state_dict(),
                "swats": {"at": self.swats_at, "lr": self.swats_lr, "announced": self.swats_announced}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))  # never share buffers with the stepper it came from
        self.step_count = int(state["step_count"])
        self.optimizer.load_state_dict(state["optimizer"])
        swats = state.get("swats") or {}
        self.swats_at, self.swats_lr = swats.get("at"), swats.get("lr")
        self.swats_announced = bool(swats.get("announced", False))


def _swats(opt: torch.optim.Optimizer) -> torch.optim.Optimizer | None:
    """The SWATS optimizer itself (also inside GeN's ``base``), or None."""
    for candidate in (opt, getattr(opt, "base", None)):
        if (candidate is not None and type(candidate).__name__ == "SWATS"
                and all("phase" in g for g in candidate.param_groups)):
            return candidate
    return None


@register_policy
class Single(PolicyType[SingleSpec]):
    """``type: single``: ``optimizer: {name: ..., hyperparameters}``."""

    name = "single"
    keys = ("type", "optimizer", "lr_rule")

    @classmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> SingleSpec:
        check_keys(spec, cls.keys, key, required=("optimizer",))
        optimizer = OptimizerSpec.from_mapping(spec["optimizer"], f"{key}.optimizer")
        lr_rule = None
        if spec.get("lr_rule") is not None:
            lr_rule = LrRule.from_mapping(spec["lr_rule"], f"{key}.lr_rule")
            OptimizerSpec.from_mapping(lr_rule.wrap(optimizer), f"{key}.optimizer")
        return SingleSpec(optimizer=optimizer, lr_rule=lr_rule)

    @classmethod
    def build(cls, spec: SingleSpec, model: nn.Module, loss_fn: LossFn) -> Stepper:
        return SingleStepper(model, loss_fn, spec)
