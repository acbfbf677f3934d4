"""One optimizer throughout: the first- and second-order baselines."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import check_keys
from hyperswitch.switching._base import LossFn, PolicyType, Stepper, StepReport, current_lr, optimizer_step
from hyperswitch.switching._probe import check_optimizer_values
from hyperswitch.switching._registry import register_policy
from hyperswitch.switching.lr_rule import validate_lr_rule, wrap_spec


class SingleStepper(Stepper):
    def __init__(self, model: nn.Module, loss_fn: LossFn, spec: Mapping[str, Any]) -> None:
        super().__init__(model, loss_fn)
        self.name = str(spec["optimizer"]["name"])
        self.optimizer = self._build(wrap_spec(spec["optimizer"], spec.get("lr_rule")), "policy.optimizer")

    @property
    def active_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizer

    @property
    def active_name(self) -> str:
        return self.name

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport:
        self.step_count += 1
        lr = current_lr(self.optimizer)
        loss = optimizer_step(self.optimizer, self.model, self.loss_fn, inputs, targets)
        return StepReport(step=self.step_count, loss=float(loss), lr=lr, optimizer=self.name)

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))  # never share buffers with the stepper it came from
        self.step_count = int(state["step_count"])
        self.optimizer.load_state_dict(state["optimizer"])


@register_policy
class Single(PolicyType):
    """``type: single``: ``optimizer: {name: ..., hyperparameters}``."""

    name = "single"
    keys = ("type", "optimizer", "lr_rule")

    @classmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> dict[str, Any]:
        check_keys(spec, cls.keys, key, required=("optimizer",))
        out = {"type": cls.name, "optimizer": check_optimizer_values(spec["optimizer"], f"{key}.optimizer")}
        if spec.get("lr_rule") is not None:
            out["lr_rule"] = validate_lr_rule(spec["lr_rule"], f"{key}.lr_rule")
            check_optimizer_values(wrap_spec(out["optimizer"], out["lr_rule"]), f"{key}.optimizer")
        return out

    @classmethod
    def build(cls, spec: Mapping[str, Any], model: nn.Module, loss_fn: LossFn) -> Stepper:
        return SingleStepper(model, loss_fn, spec)

    @classmethod
    def optimizer_names(cls, spec: Mapping[str, Any]) -> list[str]:
        return [str(spec["optimizer"]["name"])]
