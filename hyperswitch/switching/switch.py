"""Phase 1 optimizer, then phase 2, switching at a fixed step or epoch (``switch: {at: N}``) or never.

This is the fixed-step baseline of the Mixer ablations; the adaptive switcher and corrector extend it.
Semantics of ``at: N`` with ``unit: step``: updates 1..N use phase 1, update N+1 onwards phase 2; the
``switch`` event is recorded at step N+1, the first update of phase 2. With ``unit: epoch`` the switch
happens after epoch N ends (epochs count from 1).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import check_keys, choice, number
from hyperswitch.errors import ConfigError
from hyperswitch.switching._base import (
    Event,
    LossFn,
    PolicyType,
    Stepper,
    StepReport,
    current_lr,
    optimizer_state_bytes,
    optimizer_step,
)
from hyperswitch.switching._probe import check_optimizer_values
from hyperswitch.switching._registry import register_policy


def validate_fixed_switch(value: Any, key: str) -> dict[str, Any] | str:
    if value == "never":
        return "never"
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be 'never' or a mapping like {at: N, unit: step}", value)
    check_keys(value, ("at", "unit"), key, required=("at",))
    return {
        "at": number(value["at"], f"{key}.at", integer=True, low=0),
        "unit": choice(value.get("unit", "step"), ("step", "epoch"), f"{key}.unit"),
    }


class SwitchStepper(Stepper):
    def __init__(self, model: nn.Module, loss_fn: LossFn, spec: Mapping[str, Any]) -> None:
        super().__init__(model, loss_fn)
        self.spec = spec
        self.names = (str(spec["phase1"]["name"]), str(spec["phase2"]["name"]))
        self.phase = 1
        self.switch_step: int | None = None
        self.opt1: torch.optim.Optimizer | None = self._build(spec["phase1"], "policy.phase1")
        self.opt2: torch.optim.Optimizer | None = None
        self._pending_epoch_switch = False
        sw = spec["switch"]
        if sw != "never" and sw["unit"] == "step" and sw["at"] == 0:
            self._switch(step=1)

    @property
    def active_optimizer(self) -> torch.optim.Optimizer | None:
        return self.opt1 if self.phase == 1 else self.opt2

    @property
    def active_name(self) -> str:
        return self.names[self.phase - 1]

    def state_bytes(self) -> int:
        return optimizer_state_bytes(self.opt1) + optimizer_state_bytes(self.opt2)

    def _switch(self, step: int) -> Event:
        self.opt2 = self._build(self.spec["phase2"], "policy.phase2")
        release = getattr(self.opt1, "release", None)
        if callable(release):
            release()
        self.opt1 = None
        self.phase = 2
        self.switch_step = step
        return Event(step=step, kind="switch", detail={"from": self.names[0], "to": self.names[1],
                                                       "rule": "fixed"})

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport:
        self.step_count += 1
        events: list[Event] = []
        sw = self.spec["switch"]
        if self.phase == 1 and sw != "never":
            due = (sw["unit"] == "step" and self.step_count > sw["at"]) or self._pending_epoch_switch
            if due:
                events.append(self._switch(self.step_count))
        opt = self.active_optimizer
        assert opt is not None
        lr = current_lr(opt)
        loss = optimizer_step(opt, self.model, self.loss_fn, inputs, targets)
        return StepReport(step=self.step_count, loss=float(loss), lr=lr, optimizer=self.active_name,
                          switched=bool(events), events=events)

    def end_epoch(self, epoch: int, mean_loss: float) -> list[Event]:
        sw = self.spec["switch"]
        if self.phase == 1 and sw != "never" and sw["unit"] == "epoch" and epoch >= sw["at"]:
            self._pending_epoch_switch = True
        return []

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "phase": self.phase,
            "switch_step": self.switch_step,
            "pending_epoch_switch": self._pending_epoch_switch,
            "opt1": self.opt1.state_dict() if self.opt1 is not None else None,
            "opt2": self.opt2.state_dict() if self.opt2 is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))  # never share buffers with the stepper it came from
        self.step_count = int(state["step_count"])
        self._pending_epoch_switch = bool(state["pending_epoch_switch"])
        if state["phase"] == 2 and self.phase == 1:
            self._switch(int(state["switch_step"]))
        self.switch_step = state["switch_step"]
        if self.opt1 is not None and state["opt1"] is not None:
            self.opt1.load_state_dict(state["opt1"])
        if self.opt2 is not None and state["opt2"] is not None:
            self.opt2.load_state_dict(state["opt2"])


@register_policy
class Switch(PolicyType):
    """``type: switch``: ``phase1``, ``phase2`` optimizer specs and ``switch: {at: N, unit} | never``."""

    name = "switch"
    keys = ("type", "phase1", "phase2", "switch")

    @classmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> dict[str, Any]:
        check_keys(spec, cls.keys, key, required=("phase1", "phase2", "switch"))
        return {
            "type": cls.name,
            "phase1": check_optimizer_values(spec["phase1"], f"{key}.phase1"),
            "phase2": check_optimizer_values(spec["phase2"], f"{key}.phase2"),
            "switch": validate_fixed_switch(spec["switch"], f"{key}.switch"),
        }

    @classmethod
    def build(cls, spec: Mapping[str, Any], model: nn.Module, loss_fn: LossFn) -> Stepper:
        return SwitchStepper(model, loss_fn, spec)

    @classmethod
    def optimizer_names(cls, spec: Mapping[str, Any]) -> list[str]:
        return [str(spec["phase1"]["name"]), str(spec["phase2"]["name"])]
