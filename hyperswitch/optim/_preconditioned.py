"""Shared torch.optim plumbing of the preconditioned SGD optimizers (``kfac``: K-FAC, FOOF; ``shampoo``).

``PreconditionedSGD`` holds what they have in common: per-group SGD settings ``lr`` (a schedule),
``momentum`` and ``weight_decay`` validated by ``check_group``; the ``lr`` property; the step counters
(``steps``, ``last_inverse_step``, ``inverse_updates``) and the ``frozen`` / ``released`` flags; ``step()``
(preconditioned directions, then ``sgd_update``); ``freeze()``, ``release()``, ``state_bytes()``; and the
checkpoint framing: ``state_dict()`` adds the subclass's extra state under ``STATE_KEY``, ``load_state_dict()``
deep-copies its argument, restores the extra state and re-validates the groups.

Subclasses override the short hooks ``_step_directions``, ``_release_state``, ``_extra_bytes``,
``_extra_state``, ``_check_extra_state`` and ``_load_extra_state``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from hyperswitch.optim import _schedule
from hyperswitch.optim._schedule import Spec

SGD_SPECS = {
    "lr": Spec("lr", "must be >= 0", lambda v: v >= 0),
    "momentum": Spec("momentum", "must be in [0, 1)", lambda v: 0 <= v < 1),
    "weight_decay": Spec("weight_decay", "must be >= 0", lambda v: v >= 0),
}
KL_CLIP_SPEC = Spec("kl_clip", "must be null or > 0", lambda v: v > 0)


def check_kl_clip(value: Any) -> float | None:
    """``kl_clip``: ``None`` (off) or a number > 0."""
    return None if value is None else float(KL_CLIP_SPEC.check_value(value))


def kl_clip_factor(terms: Iterable[tuple[float, torch.Tensor, torch.Tensor]], kappa: float) -> float:
    """KL clipping (docs/algorithms.md#k-fac-and-foof): ``ν = min(1, sqrt(κ / |Σ lr²·gᵀd|))`` over the
    ``(lr, g, d)`` of the preconditioned parameters (gradient ``g``, direction ``d``); 1 when the sum is 0 or
    not finite (nothing to measure; a diverged run is the training loop's to report)."""
    total = 0.0
    for lr, g, d in terms:  # exact float64 products in one float64 copy (not two), summed as before
        total += lr * lr * float(g.to(torch.float64, copy=True).mul_(d).sum())
    if total == 0.0 or not math.isfinite(total):
        return 1.0
    return min(1.0, math.sqrt(kappa / abs(total)))


def grad_of(p: torch.Tensor) -> torch.Tensor:
    """``p.grad``, which the optimizers' ``_params()`` guarantee is there."""
    g = p.grad
    assert g is not None, "a parameter without a gradient reached the preconditioner"
    return g


def check_choice(value: Any, name: str, options: Iterable[str]) -> str:
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}, but got {value!r}")
    return value


def check_group(group: dict[str, Any]) -> None:
    """Validate the per-group SGD settings (lr may be a schedule)."""
    group["lr"] = _schedule.check(group["lr"], SGD_SPECS["lr"])
    group["momentum"] = SGD_SPECS["momentum"].check_value(group["momentum"])
    group["weight_decay"] = SGD_SPECS["weight_decay"].check_value(group["weight_decay"])


def sgd_update(opt: torch.optim.Optimizer, directions: dict[nn.Parameter, torch.Tensor], step: int) -> None:
    """``w ← w − lr·buf`` with ``buf ← momentum·buf + (d + weight_decay·w)`` for every parameter with a grad;
    ``d`` is ``directions[p]`` or ``p.grad``. Each group's parameters at once (``torch._foreach_*``: the same
    elementwise operations as a loop of ``add`` / ``mul_`` / ``add_``, one call per operation)."""
    for group in opt.param_groups:
        lr = _schedule.value_at(group["lr"], step, SGD_SPECS["lr"])
        wd, mom = group["weight_decay"], group["momentum"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        ds = [directions.get(p, p.grad) for p in params]
        if wd != 0:
            ds = list(torch._foreach_add(ds, params, alpha=wd))
        if mom != 0:
            bufs: list[torch.Tensor] = []
            adds: list[torch.Tensor] = []
            for i, (p, d) in enumerate(zip(params, ds, strict=True)):
                st = opt.state[p]
                buf = st.get("momentum_buffer")
                if buf is None:
                    st["momentum_buffer"] = d.detach().clone()
                else:
                    bufs.append(buf)
                    adds.append(d)
                ds[i] = st["momentum_buffer"]
            if bufs:
                torch._foreach_mul_(bufs, mom)
                torch._foreach_add_(bufs, adds)
        torch._foreach_add_(params, ds, alpha=-lr)


def tensors_bytes(obj: Any) -> int:
    """Bytes of every tensor reachable in ``obj`` (nested mappings, lists, tuples): optimizer state."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensors_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensors_bytes(v) for v in obj)
    return 0


class PreconditionedSGD(torch.optim.Optimizer):
    """SGD(momentum, weight decay) on preconditioned directions; see the module doc for the hooks."""

    STATE_KEY = ""  # key of the subclass's extra state in ``state_dict()``
    SPECS: dict[str, Spec] = SGD_SPECS  # specs of the schedulable settings read by ``_value``
    kl_clip: float | None = None  # KL clip bound κ of the preconditioned directions (None: off)
    kl_scale = 1.0  # the last step's KL clip factor ν (1 when off or not clipping)

    def __init__(self, params: Iterable[Any], lr: Any, momentum: float, weight_decay: float) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.steps = 0
        self.last_inverse_step: int | None = None
        self.inverse_updates = 0
        self.frozen = False
        self.released = False

    # -- torch.optim plumbing ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        check_group(self.param_groups[-1])

    @property
    def lr(self) -> float:
        """The current learning rate of the first group (what ``current_lr`` reports)."""
        return float(_schedule.value_at(self.param_groups[0]["lr"], self.steps, SGD_SPECS["lr"]))

    @lr.setter
    def lr(self, value: Any) -> None:
        value = _schedule.check(value, SGD_SPECS["lr"])
        for g in self.param_groups:
            g["lr"] = value

    def _value(self, name: str, step: int) -> Any:
        return _schedule.value_at(getattr(self, name), step, self.SPECS[name])

    def _due(self, last: int | None, name: str, step: int) -> bool:
        return last is None or step - last >= self._value(name, step)

    def _params(self) -> list[nn.Parameter]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def _lr_of(self, step: int) -> dict[nn.Parameter, float]:
        """Every parameter's learning rate at ``step`` (its group's)."""
        out: dict[nn.Parameter, float] = {}
        for group in self.param_groups:
            lr = float(_schedule.value_at(group["lr"], step, SGD_SPECS["lr"]))
            out.update((p, lr) for p in group["params"])
        return out

    def _clip(self, directions: dict[nn.Parameter, torch.Tensor], step: int) -> None:
        """Scale the preconditioned ``directions`` (the dict, in place) by the KL clip factor ``ν`` when
        ``kl_clip`` is set; parameters without a direction (their raw gradient) are neither summed nor scaled."""
        self.kl_scale = 1.0
        if self.kl_clip is None or not directions:
            return
        lrs = self._lr_of(step)
        nu = kl_clip_factor(((lrs[p], grad_of(p), d) for p, d in directions.items()), self.kl_clip)
        self.kl_scale = nu
        if nu < 1.0:
            for p, d in directions.items():
                directions[p] = d * nu

    # -- step ----------------------------------------------------------------------------------------
    def _step_directions(self, step: int) -> dict[nn.Parameter, torch.Tensor]:
        """Update the preconditioner (unless frozen) and return the directions of step ``step``; called
        only when not released (parameters without a direction get their gradient)."""
        return {}

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        k = self.steps
        directions = {} if self.released else self._step_directions(k)
        self._clip(directions, k)
        sgd_update(self, directions, k)
        self.steps += 1
        return loss

    # -- switching API -------------------------------------------------------------------------------
    def freeze(self) -> None:
        """Stop updating the preconditioner; the cached one keeps being used."""
        self.frozen = True

    def release_momentum(self) -> None:
        """Free the momentum buffers (a frozen preconditioner whose directions are blended by another rule, as in
        Mixer's fusion period, never steps again: its momentum would only hold memory). A later ``step`` starts
        them afresh."""
        for st in self.state.values():
            st.pop("momentum_buffer", None)

    def _release_state(self) -> None:
        """Free the preconditioner's state (called by ``release``)."""

    def release(self) -> None:
        """Free the preconditioner's state; later steps are plain SGD(momentum)."""
        self._release_state()
        self.released = True

    def _extra_bytes(self) -> int:
        return 0

    def state_bytes(self) -> int:
        """Bytes of the optimizer's state tensors."""
        return tensors_bytes(list(self.state.values())) + self._extra_bytes()

    # -- checkpointing -------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """Counters, flags and global settings stored under ``STATE_KEY``."""
        return {}

    def _check_extra_state(self, extra: dict[str, Any]) -> None:
        """Prepare for / validate a checkpoint's extra state before torch.optim loads the rest."""

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        for k, v in extra.items():
            setattr(self, k, v)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd[self.STATE_KEY] = self._extra_state()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a checkpoint (deep-copied: unlike torch.optim, no tensor is shared with ``state_dict``)."""
        state_dict = copy.deepcopy(dict(state_dict))
        extra = state_dict.pop(self.STATE_KEY)
        self._check_extra_state(extra)
        super().load_state_dict(state_dict)
        self._load_extra_state(extra)
        for group in self.param_groups:
            check_group(group)
