"""Phase 1 optimizer, then (optionally) a fusion period, then phase 2: the ``switch`` and ``mixer`` policies.

- ``switch``: ``at: N`` (fixed step or epoch), ``never``, or the adaptive ``theta``/``K`` rule
  (``switcher.py``); no corrector unless asked.
- ``mixer`` (000): the same stepper with the paper's defaults: K-FAC (``inverse: cholesky``) then SGD with
  momentum, adaptive switch ``theta 0.001, K 5``, corrector ``T1 10, mu 0.8``.

Steps count from 1. The rule observes update t's loss; if it fires, update t+1 is the first after the switch
and the ``switch`` event is recorded at t+1 (so ``at: N`` means updates 1..N in phase 1).

Corrector (gradient-vector correction, docs/algorithms.md#corrector): for ``T1`` updates after the switch the direction
is ``d = mu·g + (1 − mu)·d_second`` with ``g`` the mini-batch gradient and ``d_second`` the phase-1 optimizer's
preconditioned gradient from its cached preconditioner (``precondition_grads()``; the factors are frozen), applied
through a momentum buffer ``v ← beta·v + d``, ``w ← w − lr·v`` with ``lr`` phase 2's learning rate. Then the phase-1
state is released (``release()``: factors, caches and hooks freed, memory falls to the first-order level), phase 2 is
built, and when phase 2 is SGD with momentum its momentum buffer starts from ``v``. ``T1: 0`` switches directly (the
ablation without corrector). Events: ``switch`` (detail: from, to, rule, score = mean loss-change rate for the adaptive
rule) and ``fusion_end``. ``switch_report()`` says whether the rule fired and what it saw (for the adaptive rule the
lowest mean rate and where, also when it never fired); it is part of the stepper's state.

``lr_rule: {name: gen, phi, gamma, ...}`` wraps both phases' optimizers in GeN (the corrector's fused
updates use phase 2's base learning rate).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import check_keys
from hyperswitch.errors import ConfigError
from hyperswitch.optim._dist import global_mean
from hyperswitch.optim.registry import resolve_hparams
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
from hyperswitch.switching._probe import probe_optimizer
from hyperswitch.switching._registry import register_policy
from hyperswitch.switching._spec import (
    Corrector,
    LrRule,
    NeverSwitch,
    OptimizerSpec,
    PolicySpec,
    SwitchRule,
    wrap_spec,
)
from hyperswitch.switching.switcher import Switcher, validate_switch

CORRECTOR_OFF = Corrector(T1=0, mu=0.8, beta=0.9)
MIXER_CORRECTOR = Corrector(T1=10, mu=0.8, beta=0.9)


def validate_corrector(value: Any, key: str, defaults: Corrector) -> Corrector:
    return Corrector.from_mapping(value, key, defaults)


@dataclass(frozen=True, slots=True)
class SwitchSpec(PolicySpec):
    """A validated ``switch`` (or ``mixer``: ``type`` says which) policy."""

    type: str
    phase1: OptimizerSpec
    phase2: OptimizerSpec
    switch: SwitchRule
    corrector: Corrector
    lr_rule: LrRule | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "phase1": self.phase1.as_dict(), "phase2": self.phase2.as_dict(),
                               "switch": self.switch.as_value(), "corrector": self.corrector.as_dict()}
        if self.lr_rule is not None:
            out["lr_rule"] = self.lr_rule.as_dict()
        return out

    def optimizer_names(self) -> list[str]:
        return [self.phase1.name, self.phase2.name]

    def phase(self, i: int) -> OptimizerSpec:
        """Phase ``i``'s optimizer spec as built: wrapped in GeN under an ``lr_rule``."""
        return wrap_spec(self.phase1 if i == 1 else self.phase2, self.lr_rule)


def _preconditioner(opt: Any) -> Any:
    """The object with ``precondition_grads`` (K-FAC, Shampoo), looking through GeN's ``base``."""
    for candidate in (opt, getattr(opt, "base", None)):
        if candidate is not None and callable(getattr(candidate, "precondition_grads", None)):
            return candidate
    return None


class SwitchStepper(Stepper):
    spec: SwitchSpec

    def __init__(self, model: nn.Module, loss_fn: LossFn, spec: SwitchSpec) -> None:
        super().__init__(model, loss_fn)
        self.spec = spec
        self.names = (spec.phase1.name, spec.phase2.name)
        self.corrector = spec.corrector
        self.phase = "phase1"  # phase1 | fusion | phase2
        self.switch_step: int | None = None
        self.switcher = Switcher(spec.switch)
        self.opt1: torch.optim.Optimizer | None = self._build_phase(1)
        self.opt2: torch.optim.Optimizer | None = None
        self.fusion_left = 0
        self.velocity: list[torch.Tensor] | None = None
        self.fusion_lr = float(resolve_hparams(spec.phase2.as_dict()).get("lr", 0.01))

    def _build_phase(self, i: int) -> torch.optim.Optimizer:
        return self._build(self.spec.phase(i), f"policy.phase{i}")

    @property
    def active_optimizer(self) -> torch.optim.Optimizer | None:
        return self.opt2 if self.phase == "phase2" else self.opt1

    @property
    def active_name(self) -> str:
        return {"phase1": self.names[0], "fusion": "fusion", "phase2": self.names[1]}[self.phase]

    def state_bytes(self) -> int:
        v = sum(t.numel() * t.element_size() for t in self.velocity) if self.velocity else 0
        return optimizer_state_bytes(self.opt1) + optimizer_state_bytes(self.opt2) + v

    # --- transitions ----------------------------------------------------------------------------------
    def _start_switch(self, step: int) -> Event:
        self.switch_step = step
        detail: dict[str, Any] = {"from": self.names[0], "to": self.names[1], "rule": self.switcher.kind}
        if self.switcher.score is not None:
            detail["score"] = self.switcher.score
        if self.corrector.T1 > 0 and _preconditioner(self.opt1) is not None:
            self._freeze_phase1()
            self.phase, self.fusion_left = "fusion", int(self.corrector.T1)
            self.velocity = [torch.zeros_like(p) for p in self._params()]
            detail["fusion_steps"] = self.fusion_left
        else:
            self._enter_phase2()
        return Event(step=step, kind="switch", detail=detail)

    def _freeze_phase1(self) -> None:
        """Fusion: phase 1's preconditioner frozen; its momentum is not used again and is freed, so that the
        corrector's velocity takes its place and the fusion period holds no more than phase 1 did."""
        pre = _preconditioner(self.opt1)
        pre.freeze()
        for opt in (pre, self.opt1):
            release = getattr(opt, "release_momentum", None)
            if callable(release):
                release()

    def _enter_phase2(self) -> None:
        release = getattr(_preconditioner(self.opt1) or self.opt1, "release", None)
        if callable(release):
            release()
        self.opt1 = None
        self.opt2 = self._build_phase(2)
        if self.velocity is not None:
            target = getattr(self.opt2, "base", self.opt2)
            if isinstance(target, torch.optim.SGD) and target.param_groups[0].get("momentum", 0) > 0:
                for p, v in zip(self._params(), self.velocity, strict=True):
                    target.state[p]["momentum_buffer"] = v.clone()
        self.velocity = None
        self.phase = "phase2"

    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    # --- stepping -------------------------------------------------------------------------------------
    def _fused_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        params = self._params()
        for p in params:
            p.grad = None
        loss = self.loss_fn(self.model(inputs), targets)
        loss.backward()
        second = _preconditioner(self.opt1).precondition_grads()
        mu, beta = self.corrector.mu, self.corrector.beta
        assert self.velocity is not None
        with torch.no_grad():
            for p, v in zip(params, self.velocity, strict=True):
                if p.grad is None:
                    continue
                d = mu * p.grad + (1.0 - mu) * second.get(p, p.grad)
                v.mul_(beta).add_(d)
                p.add_(v, alpha=-self.fusion_lr)
        return global_mean(loss.detach())

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport:
        self.step_count += 1
        events: list[Event] = []
        if self.phase == "phase1" and self.switcher.due:
            events.append(self._start_switch(self.step_count))
        if self.phase == "fusion":
            lr = self.fusion_lr
            name = self.active_name
            loss = self._fused_step(inputs, targets)
            self.fusion_left -= 1
            if self.fusion_left == 0:
                self._enter_phase2()
                events.append(Event(step=self.step_count, kind="fusion_end",
                                    detail={"from": "fusion", "to": self.names[1]}))
        else:
            opt = self.active_optimizer
            assert opt is not None
            lr, name = current_lr(opt), self.active_name
            loss = optimizer_step(opt, self.model, self.loss_fn, inputs, targets)
            if self.phase == "phase1":
                self.switcher.observe_step(self.step_count, float(loss))
        return StepReport(step=self.step_count, loss=float(loss), lr=lr, optimizer=name,
                          switched=any(e.kind == "switch" for e in events), events=events)

    def end_epoch(self, epoch: int, mean_loss: float) -> list[Event]:
        if self.phase == "phase1":
            self.switcher.observe_epoch(epoch, mean_loss, step=self.step_count)
        return []

    def switch_report(self) -> dict[str, Any]:
        """The switch rule's report (``Switcher.report``) with ``from``/``to`` and, once it fired,
        ``switch_step``: the first update after the switch (the ``switch`` event's step), if it has come."""
        out = {**self.switcher.report(), "from": self.names[0], "to": self.names[1]}
        if self.switch_step is not None:
            out["switch_step"] = self.switch_step
        return out

    # --- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count, "phase": self.phase, "switch_step": self.switch_step,
            "switcher": self.switcher.state_dict(), "fusion_left": self.fusion_left,
            "velocity": [v.clone() for v in self.velocity] if self.velocity is not None else None,
            "opt1": self.opt1.state_dict() if self.opt1 is not None else None,
            "opt2": self.opt2.state_dict() if self.opt2 is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))  # never share buffers with the stepper it came from
        self.step_count = int(state["step_count"])
        self.switch_step = state["switch_step"]
        self.switcher.load_state_dict(state["switcher"])
        if state["phase"] == "phase2":
            if self.phase != "phase2":
                self._enter_phase2()
            assert self.opt2 is not None  # built by _enter_phase2
            self.opt2.load_state_dict(state["opt2"])
            return
        assert self.opt1 is not None  # a stepper not yet in phase 2 keeps its phase-1 optimizer
        self.opt1.load_state_dict(state["opt1"])
        if state["phase"] == "fusion":
            self._freeze_phase1()
            self.phase, self.fusion_left = "fusion", int(state["fusion_left"])
            self.velocity = list(state["velocity"])


@register_policy
class Switch(PolicyType[SwitchSpec]):
    """``type: switch``: ``phase1``, ``phase2``, ``switch`` (required), optional ``corrector``, ``lr_rule``."""

    name = "switch"
    keys = ("type", "phase1", "phase2", "switch", "corrector", "lr_rule")
    required: tuple[str, ...] = ("phase1", "phase2", "switch")
    defaults: dict[str, Any] = {}
    corrector_defaults: Corrector = CORRECTOR_OFF
    adaptive_defaults = False

    @classmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> SwitchSpec:
        check_keys(spec, cls.keys, key, required=cls.required)
        full = {**cls.defaults, **spec}
        phases = [OptimizerSpec.from_mapping(full[f"phase{i}"], f"{key}.phase{i}") for i in (1, 2)]
        out = SwitchSpec(
            type=cls.name, phase1=phases[0], phase2=phases[1],
            switch=validate_switch(full.get("switch"), f"{key}.switch", adaptive_defaults=cls.adaptive_defaults),
            corrector=Corrector.from_mapping(full.get("corrector"), f"{key}.corrector", cls.corrector_defaults),
            lr_rule=LrRule.from_mapping(full["lr_rule"], f"{key}.lr_rule") if full.get("lr_rule") is not None
            else None)
        if out.lr_rule is not None:
            for i in (1, 2):
                OptimizerSpec.from_mapping(out.phase(i), f"{key}.phase{i}")
        if out.corrector.T1 > 0 and not isinstance(out.switch, NeverSwitch):
            opt = probe_optimizer(out.phase1.as_dict(), f"{key}.phase1")
            if _preconditioner(opt) is None:
                raise ConfigError(f"{key}.corrector.T1", "the corrector needs a phase-1 optimizer with a cached "
                                  "preconditioner (kfac, foof, shampoo); use T1: 0", out.corrector.T1)
            release = getattr(opt, "release", None)
            if callable(release):
                release()
        return out

    @classmethod
    def build(cls, spec: SwitchSpec, model: nn.Module, loss_fn: LossFn) -> Stepper:
        return SwitchStepper(model, loss_fn, spec)
