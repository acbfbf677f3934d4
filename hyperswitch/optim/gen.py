"""GeN: the generalized-Newton learning rate for any base optimizer (docs/algorithms.md#gen; 001, Algorithm 1).

One registry entry, ``gen``, wraps any other registered optimizer named by ``base`` and built from
``base_params`` (a mapping of that optimizer's hyperparameters, merged over its registry defaults), e.g.
``{name: gen, base: adamw, base_params: {weight_decay: 0.01}, phi: 4}``. One entry instead of ``gen_sgd``,
``gen_adamw``, ...: every optimizer registered now or later (K-FAC, Shampoo, iEF, ...) is wrappable without a
new entry, and the base's hyperparameters keep their own names and checks.

Every ``phi`` steps (steps counted from 1; a fit at ``t mod phi == 0``), on the same mini-batch as the
training step's ``L0 = L(w_t)`` and ``g = ∇L(w_t)`` (GeN runs that step itself), with ``η = lr_{t−1}`` and
``d_t`` the base's direction at learning rate 1, the loss along ``d_t`` is fitted by a parabola in ``η``:

- ``fit: one_sided`` (default): one extra forward without autograd, ``L₋ = L(w_t − η·d_t)``, and the slope
  ``gᵀd``: ``lr* = η²·gᵀd / (2(L₋ − L0 + η·gᵀd))``;
- ``fit: symmetric`` (001's Algorithm 1): two, ``L± = L(w_t ± η·d_t)``:
  ``lr* = (η/2)·(L₊ − L₋)/(L₊ − 2L₀ + L₋)``;

both exactly ``gᵀd / dᵀHd`` on a quadratic; then ``lr_t = gamma·lr_{t−1} + (1 − gamma)·lr*``.

**choice** (docs/algorithms.md#gen): when the denominator is not positive or ``lr*`` is not finite,
``lr_t = lr_{t−1}``; a one-sided fit also keeps ``lr_{t−1}`` when the step is below the loss's round-off
(``L₋ = L0``, or ``|η·gᵀd| <= 16·eps·max(|L0|, |L₋|)``).
Likewise without ``clip`` a non-positive ``lr*`` (the base direction ascends on this batch)
also keeps ``lr_{t−1}``, so the learning rate never changes sign; with ``clip`` (a number >= 1, off by
default), ``lr*`` is clipped to ``[lr_{t−1}/clip, clip·lr_{t−1}]`` (the authors' package uses ``clip: 2``).
Between fits ``lr_t = lr_{t−1}``.

How ``d_t`` is obtained for any base (the base's update must be linear in its ``lr``): set every base param
group's ``lr`` to ``η`` and run the base's update once (so its state — moments, step counts, factors —
advances exactly once per GeN step), giving ``w' = w − η·d``. For ``torch.optim.SGD`` itself (no weight
decay, Nesterov, maximize or fused kernel) ``d`` is then read from SGD (``p.grad`` or its momentum buffer)
and no copy of ``w`` is made; for any other base ``w`` is snapshotted before the update and ``d`` is known
as ``w − w'``. The fit's forwards and the final ``w ← w − lr_t·d`` move the parameters in place (one fused
pass per move; within ``2ε·k·(|w| + 3(η + lr_t)|d|)`` of ``w − lr_t·d``, ``k = 1`` from SGD's ``d``,
``k = 1 + lr_t/η`` from a snapshot; a one-sided fit that keeps ``lr`` makes no move, so the parameters are
then bitwise the base's step). Linear in ``lr``:
SGD (momentum), Adam, AdamW (decoupled decay scales with lr), RMSprop, Adagrad, LAMB, Lion, PAdam, AdaBound
(its bounds scale with ``lr``), K-FAC/FOOF/Shampoo/EF/iEF/SF (``w ← w − lr·buf``). Rejected: ``prodigy`` and
``dadapt_adam`` (they adapt their own step size from the history of lr-weighted updates, so neither the
linearity nor the meaning of ``lr`` holds) and ``gen`` itself. SWATS is accepted, with a caveat: at its
switch to SGD it writes its estimated SGD rate into its param groups, which GeN overwrites with its own
``lr`` at the next step (GeN's rate then governs the SGD phase too). A base with a learning-rate
schedule in its param groups has it replaced by GeN's scalar ``lr`` (the same in every group).

Stepping: ``batch_step(inputs, targets)``. If the base has ``batch_step`` (EF/iEF/SF) it does the forward,
gradients and update (and leaves ``∇L`` in ``p.grad``); else GeN does ``zero_grad``, forward, backward,
``base.step()``. On fit steps, if the main forward drew random numbers (the CPU/CUDA generator states before
and after it differ: dropout), GeN restores the random state of the main forward before each extra forward
(same dropout masks when the base used a plain forward) and sets it back to where the base left it
afterwards, so wrapping a base in GeN does not change its random stream; a forward that drew nothing needs
neither. GeN restores the model's buffers afterwards (BatchNorm running statistics see one forward per
step). The losses and ``gᵀd`` of a fit are read back with one host synchronisation. With a ``batch_step``
base, ``L0`` is recomputed by a batched no-grad forward on fit steps (its per-sample loss differs from a
batched forward at round-off, which the fit's curvature term would amplify): one extra forward more.

``lr0``: a number > 0; ``"search"``: at the first step, ``w − η·d`` is evaluated for ``η`` in the grid
``{1, 2, 5}·10^k``, ``k = −6 … 1``, plus ``100`` (25 forward passes, once) and the ``η`` of smallest loss
becomes ``lr_0`` (and is used at that step; no fit at the first step then); ``None``: the base's own ``lr``.

Defaults (pinned, registry entry ``gen``; ``needs_model``, ``needs_loss``; ``order: first`` whatever the
base, since a registry entry's order is static):

| name        | default | rule                                          |
|-------------|---------|-----------------------------------------------|
| base        | "sgd"   | a registered optimizer, not gen/prodigy/dadapt_adam |
| base_params | {}      | mapping of the base's hyperparameters         |
| lr0         | None    | > 0, "search" or None (the base's lr)         |
| gamma       | 0.9     | in [0, 1)                                     |
| phi         | 8       | integer >= 1                                  |
| clip        | None    | None or >= 1                                  |
| fit         | one_sided | "one_sided" or "symmetric" (001)            |

Observability: ``lr`` (current, also in ``param_groups[i]["lr"]`` of GeN and of the base), ``lr_trace``
(``lr`` after every step; not in ``state_dict``), ``last_fit`` (``step, fit, loss0, loss_minus, loss_plus
(None one-sided), g_dot_d (None symmetric), lr_star, accepted``), counters ``extra_forwards``, ``fits``,
``fits_rejected``. ``state_dict`` holds the base's state dict and GeN's (``lr``, step, counters, pending
search).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim._dist import global_mean
from hyperswitch.optim.registry import build_optimizer, optimizer_names, register_optimizer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NOT_LINEAR_IN_LR = {
    "gen": "GeN cannot wrap itself",
    "prodigy": "prodigy adapts its own step size, so its update is not linear in lr",
    "dadapt_adam": "dadapt_adam adapts its own step size, so its update is not linear in lr",
}
FITS = ("one_sided", "symmetric")
RESOLUTION = 16  # ulps of the loss below which a one-sided fit is not taken (fitted_lr_one_sided)
EPS32 = torch.finfo(torch.float32).eps
SEARCH_GRID = tuple(m * 10.0**k for k in range(-6, 2) for m in (1.0, 2.0, 5.0)) + (100.0,)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, but got {value!r}")
    return float(value)


def check_gen(lr0: Any, gamma: Any, phi: Any, clip: Any, fit: Any = "one_sided") -> None:
    """Validate GeN's own hyperparameters; ``ValueError`` states the rule and the value."""
    if isinstance(lr0, str) and lr0 != "search":
        raise ValueError(f"lr0 must be > 0, 'search' or None, but got {lr0!r}")
    if lr0 is not None and lr0 != "search" and not (_number("lr0", lr0) > 0 and math.isfinite(lr0)):
        raise ValueError(f"lr0 must be > 0, 'search' or None, but got {lr0!r}")
    if not 0 <= _number("gamma", gamma) < 1:
        raise ValueError(f"gamma must be in [0, 1), but got {gamma!r}")
    if isinstance(phi, bool) or not isinstance(phi, int) or phi < 1:
        raise ValueError(f"phi must be an integer >= 1, but got {phi!r}")
    if clip is not None and not _number("clip", clip) >= 1:
        raise ValueError(f"clip must be None or >= 1, but got {clip!r}")
    if not isinstance(fit, str) or fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, but got {fit!r}")


def _rng_state() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda_on = torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda_on else None


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def _same_rng(a: tuple[torch.Tensor, list[torch.Tensor] | None],
              b: tuple[torch.Tensor, list[torch.Tensor] | None]) -> bool:
    """Whether no random number was drawn between two ``_rng_state()`` (CPU and every CUDA generator)."""
    if not torch.equal(a[0], b[0]) or (a[1] is None) != (b[1] is None):
        return False
    return a[1] is None or b[1] is None or all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))


def _to_host(values: list[torch.Tensor]) -> list[float]:
    """Scalar tensors as Python floats with one device-to-host copy (stacked in float64 if dtypes differ)."""
    if len({v.dtype for v in values}) > 1:
        values = [v.double() for v in values]
    return [float(v) for v in torch.stack(values).tolist()]


def _save_buffers(model: nn.Module) -> list[torch.Tensor] | None:
    """Copies of the model's buffers (BatchNorm statistics), None when it has none."""
    return [b.detach().clone() for b in model.buffers()] or None


def _sgd_direction_known(base: torch.optim.Optimizer) -> bool:
    """Whether ``d`` can be read from the base after its step: ``torch.optim.SGD`` (exactly) without weight
    decay, Nesterov, ``maximize`` or the fused kernel, whose step is ``w ← w − lr·d`` with ``d = p.grad``
    (momentum 0) or ``d = momentum_buffer``."""
    return type(base) is torch.optim.SGD and all(
        g.get("weight_decay", 0) == 0 and not g.get("nesterov") and not g.get("maximize") and not g.get("fused")
        and not isinstance(g.get("lr"), torch.Tensor)
        for g in base.param_groups
    )


def _sgd_direction(base: torch.optim.Optimizer, params: list[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                                                      list[torch.Tensor]]:
    """``(moved parameters, their d)`` after a step of a base for which ``_sgd_direction_known``; parameters
    without a gradient did not move and are left out."""
    d: dict[int, torch.Tensor] = {}
    for g in base.param_groups:
        for p in g["params"]:
            if p.grad is not None:
                d[id(p)] = p.grad if g.get("momentum", 0) == 0 else base.state[p]["momentum_buffer"]
    moved = [p for p in params if id(p) in d]
    return moved, [d[id(p)] for p in moved]


class GeN(torch.optim.Optimizer):
    """GeN around an existing ``base`` optimizer of the same parameters; see the module doc."""

    returns_global_loss = True  # its losses are means over workers already (see _dist)

    def __init__(
        self,
        params: Iterable[Any],
        *,
        model: nn.Module,
        loss_fn: LossFn,
        base: torch.optim.Optimizer,
        lr0: float | str | None = None,
        gamma: float = 0.9,
        phi: int = 8,
        clip: float | None = None,
        fit: str = "one_sided",
    ) -> None:
        check_gen(lr0, gamma, phi, clip, fit)
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, but got {type(model).__name__}")
        if not callable(loss_fn):
            raise ValueError(f"loss_fn must be callable, but got {loss_fn!r}")
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(f"base must be a torch.optim.Optimizer, but got {type(base).__name__}")
        base_lr = getattr(base, "lr", None)
        if base_lr is None:
            base_lr = base.param_groups[0].get("lr")
        if lr0 is None or lr0 == "search":  # start from the base's own lr
            if not (isinstance(base_lr, int | float) and base_lr > 0):
                raise ValueError(f"lr0 must be given when the base's lr is not a number > 0, but got {base_lr!r}")
            start = float(base_lr)
        else:
            start = float(lr0)
        super().__init__(params, {"lr": start, "gamma": float(gamma), "phi": phi, "clip": clip, "lr0": lr0,
                                          "fit": fit})
        mine = {id(p) for g in self.param_groups for p in g["params"]}
        theirs = {id(p) for g in base.param_groups for p in g["params"]}
        if mine != theirs:
            raise ValueError("base must optimize exactly GeN's parameters, but got a different parameter set")
        self.base = base
        self.model = model
        self.loss_fn = loss_fn
        self.steps = 0
        self.search_pending = lr0 == "search"
        self.extra_forwards = 0
        self.fits = 0
        self.fits_rejected = 0
        self.last_fit: dict[str, Any] = {}
        self.lr_trace: list[float] = []
        self._set_base_lr(start)

    # -- learning rate ----------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for g in self.param_groups:
            g["lr"] = float(value)

    def _set_base_lr(self, value: float) -> None:
        for g in self.base.param_groups:
            g["lr"] = float(value)

    def fitted_lr(self, lr_prev: float, loss0: float, loss_minus: float, loss_plus: float) -> float | None:
        """``fit: symmetric``: ``lr*`` of the parabola through ``(−lr, L₋), (0, L0), (lr, L₊)`` in the step
        ``η`` along ``d`` (clipped), or None to keep lr."""
        denom = loss_plus - 2.0 * loss0 + loss_minus
        if not denom > 0:
            return None
        return self._accept(0.5 * lr_prev * (loss_plus - loss_minus) / denom, lr_prev)

    def fitted_lr_one_sided(self, lr_prev: float, loss0: float, loss_minus: float, g_dot_d: float,
                            eps: float = EPS32) -> float | None:
        """``fit: one_sided``: ``lr* = gᵀd / dᵀHd`` with ``dᵀHd = 2(L₋ − L0 + lr·gᵀd)/lr²`` from the parabola
        through ``(0, L0)`` with slope ``−gᵀd`` and ``(lr, L₋)`` (clipped), or None to keep lr.

        **choice** (docs/algorithms.md#gen): also None when the step is below the loss's resolution (``eps``
        the loss dtype's machine epsilon): ``L₋ = L0`` exactly, or ``|lr·gᵀd| <= RESOLUTION·eps·max(|L0|,
        |L₋|)``. There ``L₋ − L0`` is round-off, and with ``L₋ = L0`` the formula returns ``lr/2`` whatever
        the loss, which would halve lr at every fit."""
        if loss_minus == loss0 or not abs(lr_prev * g_dot_d) > RESOLUTION * eps * max(abs(loss0), abs(loss_minus)):
            return None
        half_curvature = loss_minus - loss0 + lr_prev * g_dot_d  # ½·lr²·dᵀHd
        if not half_curvature > 0:
            return None
        return self._accept(0.5 * lr_prev * (lr_prev * g_dot_d) / half_curvature, lr_prev)

    def _accept(self, lr_star: float, lr_prev: float) -> float | None:
        """``lr*`` clipped to ``[lr/clip, clip·lr]``; None (keep lr) when not finite, or not positive without clip."""
        if not math.isfinite(lr_star):
            return None
        clip = self.param_groups[0]["clip"]
        if clip is not None:
            return min(max(lr_star, lr_prev / clip), clip * lr_prev)
        return lr_star if lr_star > 0 else None

    # -- stepping ---------------------------------------------------------------------------------------
    def step(self, closure: Any = None) -> Any:
        raise RuntimeError(
            "GeN needs the mini-batch for its extra forward passes: call batch_step(inputs, targets) instead "
            "of step() (the registry's stepping protocol)"
        )

    @torch.no_grad()
    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor, rng: Any) -> torch.Tensor:
        """The mean loss at the current parameters (a tensor: read back once per fit, not per forward)."""
        if rng is not None:
            _set_rng_state(rng)
        self.extra_forwards += 1
        return global_mean(self.loss_fn(self.model(inputs), targets).detach())  # the same fit on every worker

    def _base_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        batch_step = getattr(self.base, "batch_step", None)
        if batch_step is not None:
            loss = batch_step(inputs, targets)
            return loss if getattr(self.base, "returns_global_loss", False) else global_mean(loss)
        self.base.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self.loss_fn(self.model(inputs), targets)
            loss.backward()
        self.base.step()
        return global_mean(loss.detach())

    def batch_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One GeN step on the mini-batch; returns the mean loss before the update (the base's ``L0``)."""
        self.steps += 1
        lr_prev = self.lr
        searching = self.search_pending
        group = self.param_groups[0]
        if not (searching or self.steps % group["phi"] == 0):
            self._set_base_lr(lr_prev)
            loss0 = self._base_update(inputs, targets)
            self.lr_trace.append(lr_prev)
            return loss0

        params = [p for g in self.param_groups for p in g["params"]]
        rng_before = _rng_state()
        loss0_fit = None
        if not searching and hasattr(self.base, "batch_step"):
            # L0 by the same batched no-grad forward as the fit's (the base's per-sample mean differs at
            # round-off, which the fit's second difference would amplify); the model state is left untouched
            buffers = _save_buffers(self.model)
            loss0_fit = self._loss(inputs, targets, rng_before)
            self._restore(buffers, rng_before)
        # d known from the base's own state after its step (plain torch SGD): no snapshot of w
        known = not searching and _sgd_direction_known(self.base)
        w = None if known else [p.detach().clone() for p in params]
        self._set_base_lr(lr_prev)
        loss0 = self._base_update(inputs, targets)  # parameters are now w' = w − lr_prev·d
        rng_after = _rng_state()
        # a training forward that drew no random numbers (no dropout): nothing to restore around the extra ones
        rng = None if _same_rng(rng_before, rng_after) else rng_before
        buffers = _save_buffers(self.model)
        with torch.no_grad():
            if searching:
                assert w is not None
                lr_new = self._search(inputs, targets, rng, params, w, lr_prev)
            else:
                moved, d = (params, w) if w is not None else _sgd_direction(self.base, params)
                fit_fn = self._fit_one_sided if group["fit"] == "one_sided" else self._fit_symmetric
                lr_new = fit_fn(inputs, targets, rng, moved, d, w is not None, lr_prev,
                                loss0 if loss0_fit is None else loss0_fit)
        self._restore(buffers, None if rng is None else rng_after)
        self.lr = lr_new
        self._set_base_lr(lr_new)
        self.lr_trace.append(lr_new)
        return loss0

    @torch.no_grad()
    def _restore(self, buffers: list[torch.Tensor] | None, rng: Any) -> None:
        if buffers is not None:
            for b, saved in zip(self.model.buffers(), buffers, strict=True):
                b.copy_(saved)
        if rng is not None:
            _set_rng_state(rng)

    def _record(self, lr_prev: float, lr_star: float | None, **losses: float | None) -> float:
        """Count the fit, keep it in ``last_fit`` and return ``lr_t`` (``lr_{t−1}`` when rejected)."""
        self.fits += 1
        self.fits_rejected += int(lr_star is None)
        gamma = self.param_groups[0]["gamma"]
        lr_new = lr_prev if lr_star is None else gamma * lr_prev + (1.0 - gamma) * lr_star
        self.last_fit = {"step": self.steps, "fit": self.param_groups[0]["fit"], **losses, "lr_star": lr_star,
                         "accepted": lr_star is not None}
        return lr_new

    def _fit_one_sided(self, inputs: torch.Tensor, targets: torch.Tensor, rng: Any, params: list[torch.Tensor],
                       d: list[torch.Tensor], snapshot: bool, lr_prev: float, loss0: torch.Tensor) -> float:
        """One forward at ``w' = w − lr_prev·d`` (where the base left the parameters) and ``gᵀd``.

        ``snapshot``: ``d`` holds the copy of ``w``, turned here in place into ``w − w' = lr_prev·d``; else
        ``d`` is the base's direction itself. Final move from ``w'``: ``w' − (lr_t − lr_prev)·d``, none when
        ``lr_t = lr_{t−1}`` (then the parameters are bitwise the base's own step)."""
        if snapshot:
            torch._foreach_sub_(d, params)
        pairs = [(p.grad, v) for p, v in zip(params, d, strict=True) if p.grad is not None]
        squares = bool(pairs) and all(g is v for g, v in pairs)  # d = g (SGD without momentum): gᵀd = Σ‖g‖²
        parts = list(torch._foreach_norm([g for g, _ in pairs])) if squares else \
            [torch.dot(g.reshape(-1), v.reshape(-1)) for g, v in pairs]  # one fused read, or one dot a tensor
        loss_minus = self._loss(inputs, targets, rng)
        values = _to_host([loss0, loss_minus, *parts])  # one sync
        loss0_v, loss_minus_v = values[0], values[1]
        gd_v = math.fsum(v * v for v in values[2:]) if squares else math.fsum(values[2:])
        if snapshot:
            gd_v /= lr_prev
        lr_star = self.fitted_lr_one_sided(lr_prev, loss0_v, loss_minus_v, gd_v, torch.finfo(loss0.dtype).eps)
        lr_new = self._record(lr_prev, lr_star, loss0=loss0_v, loss_minus=loss_minus_v, loss_plus=None,
                              g_dot_d=gd_v)
        if lr_new != lr_prev:
            # snapshot: w' + (1 − c)(w − w') = w − c(w − w'), c = lr_t/lr_{t−1}; else w' − (lr_t − lr_{t−1})·d
            alpha = 1.0 - lr_new / lr_prev if snapshot else lr_prev - lr_new
            torch._foreach_add_(params, d, alpha=alpha)
        return lr_new

    def _fit_symmetric(self, inputs: torch.Tensor, targets: torch.Tensor, rng: Any, params: list[torch.Tensor],
                       d: list[torch.Tensor], snapshot: bool, lr_prev: float, loss0: torch.Tensor) -> float:
        """Forwards at ``w' = w − lr_prev·d`` and ``w + lr_prev·d``, then the final move; one fused pass per
        move (``snapshot``: ``d`` holds the copy of ``w`` and the moves are lerps towards it)."""
        loss_minus = self._loss(inputs, targets, rng)  # at w'
        if snapshot:
            torch._foreach_lerp_(params, d, 2.0)  # w' + 2(w − w') = w + lr_prev·d
        else:
            torch._foreach_add_(params, d, alpha=2.0 * lr_prev)
        loss_plus = self._loss(inputs, targets, rng)
        loss0_v, loss_minus_v, loss_plus_v = _to_host([loss0, loss_minus, loss_plus])  # one sync
        lr_star = self.fitted_lr(lr_prev, loss0_v, loss_minus_v, loss_plus_v)
        lr_new = self._record(lr_prev, lr_star, loss0=loss0_v, loss_minus=loss_minus_v, loss_plus=loss_plus_v,
                              g_dot_d=None)
        if snapshot:
            # from p = 2w − w': lerp(p, w, 1 + c) = (1 + c)w − c(2w − w') = w − c(w − w'), c = lr_t/lr_{t−1}
            torch._foreach_lerp_(params, d, 1.0 + lr_new / lr_prev)
        else:  # from w + lr_{t−1}·d to w − lr_t·d
            torch._foreach_add_(params, d, alpha=-(lr_prev + lr_new))
        return lr_new

    def _search(self, inputs: torch.Tensor, targets: torch.Tensor, rng: Any, params: list[torch.Tensor],
                w: list[torch.Tensor], lr_prev: float) -> float:
        """lr0 = "search": the grid point of smallest loss along the base's direction."""
        w_prime = [p.detach().clone() for p in params]

        def move(c: float) -> None:  # p = w − c(w − w') = lerp(w', w, 1 − c)
            for p, a, b in zip(params, w_prime, w, strict=True):
                p.copy_(a).lerp_(b, 1.0 - c)

        best, best_loss = lr_prev, math.inf
        for eta in SEARCH_GRID:
            move(eta / lr_prev)
            loss = float(self._loss(inputs, targets, rng))
            if loss < best_loss:  # NaN never wins
                best, best_loss = eta, loss
        move(best / lr_prev)
        self.search_pending = False
        self.last_fit = {"step": self.steps, "search": True, "lr_star": best, "loss": best_loss,
                         "accepted": True}
        return best

    # -- checkpointing and bookkeeping ---------------------------------------------------------------------
    def state_bytes(self) -> int:
        own = getattr(self.base, "state_bytes", None)
        if callable(own):
            return int(own())
        return sum(t.numel() * t.element_size() for st in self.base.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor))

    def state_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.state_dict(),
            "gen": {"lr": self.lr, "steps": self.steps, "search_pending": self.search_pending,
                    "extra_forwards": self.extra_forwards, "fits": self.fits,
                    "fits_rejected": self.fits_rejected, "last_fit": dict(self.last_fit)},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"base", "gen"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else state_dict
            raise ValueError(f"a GeN state dict must have the keys base and gen, but got {keys!r}")
        self.base.load_state_dict(state_dict["base"])
        gen = copy.deepcopy(dict(state_dict["gen"]))
        self.lr = gen["lr"]
        self._set_base_lr(gen["lr"])
        self.steps = gen["steps"]
        self.search_pending = gen["search_pending"]
        self.extra_forwards = gen["extra_forwards"]
        self.fits, self.fits_rejected = gen["fits"], gen["fits_rejected"]
        self.last_fit = gen["last_fit"]


@register_optimizer(
    "gen",
    defaults={"base": "sgd", "base_params": {}, "lr0": None, "gamma": 0.9, "phi": 8, "clip": None,
              "fit": "one_sided"},
    needs_model=True,
    needs_loss=True,
)
def _gen(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn, base: Any, base_params: Any, lr0: Any, gamma: Any,
         phi: Any, clip: Any, fit: Any) -> GeN:  # the values are checked here (check_gen and below)
    """GeN: generalized-Newton learning rate (one or two extra forwards every phi steps) around any optimizer."""
    check_gen(lr0, gamma, phi, clip, fit)
    if not isinstance(base, str):
        raise ValueError(f"base must be the name of a registered optimizer, but got {base!r}")
    if base not in optimizer_names():
        raise ValueError(f"base must be one of {', '.join(optimizer_names())}, but got {base!r}")
    if base in NOT_LINEAR_IN_LR:
        raise ValueError(f"base must be an optimizer whose update is linear in lr "
                         f"({NOT_LINEAR_IN_LR[base]}), but got {base!r}")
    if not isinstance(base_params, Mapping) or "name" in base_params:
        raise ValueError(f"base_params must be a mapping of the base's hyperparameters, "
                         f"but got {base_params!r}")
    params = list(params)
    try:
        spec = {"name": base, **base_params}
        inner = build_optimizer(spec, model, loss_fn, params=params, key="base_params")
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc
    return GeN(params, model=model, loss_fn=loss_fn, base=inner, lr0=lr0, gamma=gamma, phi=phi, clip=clip,
               fit=fit)
