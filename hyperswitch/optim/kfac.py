"""K-FAC and FOOF (docs/algorithms.md#k-fac-and-foof): Kronecker-factored preconditioning of Linear and Conv2d.

For each supported layer (bookkeeping in ``_kfac_layers``), forward hooks record ``A = E[a aᵀ]`` over the
layer inputs (ones column when the bias is preconditioned; Conv2d by unfolded patches) and tensor hooks on
the layer output record ``G = E[δ δᵀ]``, ``δ`` the output gradient times the batch size (the per-sample
gradient for a mean-reduced loss; see ``_kfac_layers``). Every ``factor_interval`` steps the factors become
running averages ``F ← factor_decay·F + (1 − factor_decay)·F_batch`` (the first batch initialises them).
Every ``inverse_interval`` steps the damped factors ``A + √damping·I``, ``G + √damping·I`` are decomposed
(``inverse``: eigen | cholesky | triangular, math in ``_kfac_inverse``) and cached; each step uses the cache:

- ``kfac``: ``(G + √λI)⁻¹ M (A + √λI)⁻¹`` (``triangular``: ``X⁻¹ M Y⁻ᵀ``), ``M = [∇W | ∇b]``;
- ``foof`` (``G = I``): ``M (A + √λI)⁻¹`` (``triangular``: ``M Y⁻ᵀ``), damping on ``A`` only.

The update is SGD's on the preconditioned gradient ``d``: ``d ← d + weight_decay·w``, ``buf ← momentum·buf
+ d`` (``buf = d`` at first), ``w ← w − lr·buf``. Parameters outside a supported layer (and layers whose
factors do not exist yet) get the same update with ``d = ∇w``. Conv2d with ``groups != 1`` is skipped with a
warning (SGD update); a layer whose bias is not among the optimizer's parameters is treated as bias-free.

Defaults (pinned; registry entry ``kfac``; ``foof`` is the same without ``variant``):

| name             | default    | rule                          | schedule? |
|------------------|------------|-------------------------------|-----------|
| lr               | 0.01       | >= 0                          | yes       |
| momentum         | 0.9        | in [0, 1)                     | no        |
| weight_decay     | 0.0        | >= 0                          | no        |
| damping          | 0.1        | > 0                           | yes       |
| factor_decay     | 0.95       | in [0, 1)                     | yes       |
| factor_interval  | 1          | integer >= 1                  | yes       |
| inverse_interval | 10         | integer >= 1                  | yes       |
| inverse          | "cholesky" | eigen, cholesky, triangular   | no        |
| variant          | "kfac"     | kfac, foof                    | no        |

"schedule" values are a constant, a callable of the step or a mapping (``_schedule``). Factors are refreshed
at a step ``k`` (0-based) when none were refreshed yet or ``k − last >= factor_interval(k)``; inverses alike.
A decomposition that fails (non-finite factors after a divergence) keeps the layer's previous cache (raw
gradient if none) with a ``RuntimeWarning``, so that the training loop, not the optimizer, reports the
divergence. Factors are captured only in training mode with autograd on (no-grad probe forwards are
ignored); several forward/backward passes before one ``step()`` (gradient accumulation) are averaged.

Distributed: when ``torch.distributed`` is initialised with world size > 1, the batch factors are averaged
across workers by one all-reduce per factor refresh, before the running average and inversion, so every
worker preconditions with identical matrices. Gradients are assumed already averaged (DDP or the caller).

Switching API: ``precondition_grads()`` (direction at lr 1 from the cached preconditioner, no factor update,
no weight decay or momentum), ``freeze()`` (no more factor/inverse updates), ``release()`` (frees factors and
caches, removes hooks; then plain SGD(momentum)), ``state_bytes()``. The SGD update, group checks, ``lr``
property and checkpoint framing are shared with Shampoo (``_preconditioned.PreconditionedSGD``).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hyperswitch.optim import _schedule
from hyperswitch.optim._kfac_inverse import INVERSE_METHODS
from hyperswitch.optim._kfac_layers import KFACLayer, make_layer
from hyperswitch.optim._preconditioned import (  # the helpers are re-exported (they used to live here)
    SGD_SPECS,
    PreconditionedSGD,
    check_choice,
    grad_of,
)
from hyperswitch.optim._preconditioned import check_group as check_group
from hyperswitch.optim._preconditioned import sgd_update as sgd_update
from hyperswitch.optim._preconditioned import tensors_bytes as tensors_bytes
from hyperswitch.optim._schedule import Spec
from hyperswitch.optim.registry import register_optimizer

KFAC_DEFAULTS: dict[str, Any] = {
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "damping": 0.1,
    "factor_decay": 0.95,
    "factor_interval": 1,
    "inverse_interval": 10,
    "inverse": "cholesky",
    "variant": "kfac",
}

SPECS = {
    **SGD_SPECS,
    "damping": Spec("damping", "must be > 0", lambda v: v > 0),
    "factor_decay": Spec("factor_decay", "must be in [0, 1)", lambda v: 0 <= v < 1),
    "factor_interval": Spec("factor_interval", "must be an integer >= 1", lambda v: v >= 1, integer=True),
    "inverse_interval": Spec("inverse_interval", "must be an integer >= 1", lambda v: v >= 1, integer=True),
}
VARIANTS = ("kfac", "foof")
_CACHE_KEYS = ("QA", "invdA", "QG", "invdG", "LA", "LG")
_FACTOR_KEYS = ("A", "G")
_GLOBAL = ("damping", "factor_decay", "factor_interval", "inverse_interval", "inverse", "variant")


def _no_hook(*args: Any) -> None:
    return None


class _ForwardHook:
    """Forward hook holding the optimizer weakly. A deep copy of the model gets a no-op in its place: the
    copy is not this optimizer's to precondition (``copy.deepcopy(model)`` must work, e.g. for EMA models)."""

    def __init__(self, ref: weakref.ref, layer: KFACLayer) -> None:
        self.ref, self.layer = ref, layer

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        opt = self.ref()
        if opt is not None:
            opt._on_forward(self.layer, module, args, output)

    def __deepcopy__(self, memo: dict) -> Any:
        return _no_hook


def _grad_hook(ref: weakref.ref, layer: KFACLayer, grad: torch.Tensor) -> None:
    opt = ref()
    if opt is not None:
        opt._on_output_grad(layer, grad)


class KFAC(PreconditionedSGD):
    """K-FAC (or FOOF) preconditioned SGD for the Linear/Conv2d layers of ``model``; see the module doc."""

    STATE_KEY = "kfac"
    SPECS = SPECS

    def __init__(
        self,
        params: Iterable[Any],
        model: nn.Module,
        *,
        lr: Any = KFAC_DEFAULTS["lr"],
        momentum: float = KFAC_DEFAULTS["momentum"],
        weight_decay: float = KFAC_DEFAULTS["weight_decay"],
        damping: Any = KFAC_DEFAULTS["damping"],
        factor_decay: Any = KFAC_DEFAULTS["factor_decay"],
        factor_interval: Any = KFAC_DEFAULTS["factor_interval"],
        inverse_interval: Any = KFAC_DEFAULTS["inverse_interval"],
        inverse: str = KFAC_DEFAULTS["inverse"],
        variant: str = KFAC_DEFAULTS["variant"],
        process_group: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, but got {type(model).__name__}")
        self.damping = _schedule.check(damping, SPECS["damping"])
        self.factor_decay = _schedule.check(factor_decay, SPECS["factor_decay"])
        self.factor_interval = _schedule.check(factor_interval, SPECS["factor_interval"])
        self.inverse_interval = _schedule.check(inverse_interval, SPECS["inverse_interval"])
        self.inverse = check_choice(inverse, "inverse", INVERSE_METHODS)
        self.variant = check_choice(variant, "variant", VARIANTS)
        super().__init__(params, lr, momentum, weight_decay)
        self.process_group = process_group
        self.last_factor_step: int | None = None
        self.factor_updates = 0
        self.layers: list[KFACLayer] = []
        self.skipped: list[str] = []
        self._hooks: list[Any] = []
        ids = {id(p) for g in self.param_groups for p in g["params"]}
        seen: set[int] = set()
        for name, module in model.named_modules():
            layer, reason = make_layer(name, module, ids)
            if layer is not None and id(layer.weight) in seen:
                layer, reason = None, f"{name!r} shares its weight with another layer (SGD used)"
            if reason:
                self.skipped.append(reason)
                warnings.warn(f"K-FAC: {reason}", stacklevel=2)
            if layer is None:
                continue
            seen.add(id(layer.weight))
            self.layers.append(layer)
            # The hook holds the optimizer weakly: a dropped optimizer does not live on in the model.
            self._hooks.append(module.register_forward_hook(_ForwardHook(weakref.ref(self), layer)))

    # -- hooks ---------------------------------------------------------------------------------------
    def _capturing(self, module: nn.Module) -> bool:
        return (not self.frozen and not self.released and module.training and torch.is_grad_enabled()
                and self._due(self.last_factor_step, "factor_interval", self.steps))

    def _on_forward(self, layer: KFACLayer, module: nn.Module, args: Any, output: Any) -> None:
        if not self._capturing(module):
            return
        with torch.no_grad():
            layer.add_input(args[0])
        if self.variant == "kfac" and isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(partial(_grad_hook, weakref.ref(self), layer))

    def _on_output_grad(self, layer: KFACLayer, grad: torch.Tensor) -> None:
        if not self.frozen and not self.released:
            with torch.no_grad():
                layer.add_output_grad(grad)

    # -- factors and inverses ------------------------------------------------------------------------
    def _pending(self) -> list[tuple[KFACLayer, torch.Tensor | None, torch.Tensor | None]]:
        pend = [(layer, *layer.take_pending()) for layer in self.layers]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(self.process_group) > 1:
            pend = self._allreduce(pend)
        return pend

    def _allreduce(self, pend: list[Any]) -> list[Any]:
        """Average the batch factors over the workers that have them: one all-reduce of one flat buffer."""
        pieces: list[torch.Tensor] = []
        for layer, a, g in pend:
            for f, n in ((a, layer.in_dim), (g, layer.out_dim)):
                w = layer.weight
                pieces.append(f.reshape(-1) if f is not None else w.new_zeros(n * n))
                pieces.append(w.new_ones(1) if f is not None else w.new_zeros(1))
        buf = torch.cat(pieces)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=self.process_group)
        out, i = [], 0
        for layer, _, _ in pend:
            got = []
            for n in (layer.in_dim, layer.out_dim):
                f, cnt = buf[i:i + n * n].reshape(n, n), float(buf[i + n * n])
                i += n * n + 1
                got.append(f / cnt if cnt > 0 else None)
            out.append((layer, got[0], got[1]))
        return out

    def _update_factors(self, step: int) -> bool:
        decay = self._value("factor_decay", step)
        updated = False
        for layer, a, g in self._pending():
            st = self.state[layer.weight]
            for key, f in (("A", a), ("G", g if self.variant == "kfac" else None)):
                if f is None:
                    continue
                if key in st:
                    st[key].mul_(decay).add_(f, alpha=1.0 - decay)
                else:
                    st[key] = f.clone()
                updated = True
        if updated:
            self.last_factor_step = step
            self.factor_updates += 1
        return updated

    def _ready(self, st: dict[str, Any]) -> bool:
        return "A" in st and (self.variant == "foof" or "G" in st)

    def _update_inverses(self, step: int) -> None:
        due = self._due(self.last_inverse_step, "inverse_interval", step)
        method = INVERSE_METHODS[self.inverse]
        damping = None
        built = False
        for layer in self.layers:
            st = self.state[layer.weight]
            if not self._ready(st) or not (due or not any(k in st for k in _CACHE_KEYS)):
                continue
            if damping is None:
                damping = float(self._value("damping", step))
            try:
                cache = method.build(st["A"], st.get("G") if self.variant == "kfac" else None, damping)
            except RuntimeError as exc:  # non-finite factors (a diverged run) or a failed decomposition
                warnings.warn(f"K-FAC: {self.inverse} update of layer {layer.name!r} failed at step {step}; "
                              f"keeping its previous preconditioner ({exc})", RuntimeWarning, stacklevel=4)
                continue
            for k in _CACHE_KEYS:
                st.pop(k, None)
            st.update(cache)
            built = True
        if due and built:
            self.last_inverse_step = step
            self.inverse_updates += 1

    def _directions(self) -> dict[nn.Parameter, torch.Tensor]:
        method = INVERSE_METHODS[self.inverse]
        out: dict[nn.Parameter, torch.Tensor] = {}
        for layer in self.layers:
            st = self.state[layer.weight]
            if not any(k in st for k in _CACHE_KEYS):
                continue
            m = layer.grad_matrix()
            if m is None:
                continue
            out.update(layer.split(method.apply(st, m, self.variant == "kfac")))
        return out

    def _step_directions(self, step: int) -> dict[nn.Parameter, torch.Tensor]:
        if not self.frozen:
            if self._due(self.last_factor_step, "factor_interval", step):
                self._update_factors(step)
            self._update_inverses(step)
        return self._directions()

    # -- switching API -------------------------------------------------------------------------------
    @torch.no_grad()
    def precondition_grads(self) -> dict[nn.Parameter, torch.Tensor]:
        """Direction at lr 1 for every parameter with a grad, from the cached preconditioner (raw gradient
        where there is none); updates nothing, applies neither weight decay nor momentum."""
        dirs = self._directions()
        return {p: dirs[p] if p in dirs else grad_of(p).detach().clone() for p in self._params()}

    def freeze(self) -> None:
        """Stop factor and inverse updates; the cached preconditioner keeps being used."""
        super().freeze()
        for layer in self.layers:
            layer.clear_pending()

    def _release_state(self) -> None:
        """Free factors and caches and remove the hooks (``release``: later steps are plain SGD(momentum))."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for layer in self.layers:
            layer.clear_pending()
            st = self.state.get(layer.weight, {})
            for k in _FACTOR_KEYS + _CACHE_KEYS:
                st.pop(k, None)
        self.layers = []

    def _extra_bytes(self) -> int:
        """Pending batch factors (``state_bytes`` adds factors, caches and momentum)."""
        return sum(la.pending_bytes() for la in self.layers)

    # -- checkpointing -------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "steps": self.steps, "last_factor_step": self.last_factor_step,
            "last_inverse_step": self.last_inverse_step, "factor_updates": self.factor_updates,
            "inverse_updates": self.inverse_updates, "frozen": self.frozen, "released": self.released,
            "layers": [la.name for la in self.layers], **{k: getattr(self, k) for k in _GLOBAL},
        }

    def _check_extra_state(self, extra: dict[str, Any]) -> None:
        if extra["released"] and not self.released:
            self.release()
        names = [la.name for la in self.layers]
        if not extra["released"] and extra["layers"] != names:
            raise ValueError(f"K-FAC layers must match the checkpoint's {extra['layers']}, but got {names}")

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        for k in ("steps", "last_factor_step", "last_inverse_step", "factor_updates", "inverse_updates",
                  "frozen", *_GLOBAL):
            setattr(self, k, extra[k])


class FOOF(KFAC):
    """K-FAC with ``G = I`` (``variant: foof``): ``M (A + √λI)⁻¹``."""

    def __init__(self, params: Iterable[Any], model: nn.Module, **kwargs: Any) -> None:
        if "variant" in kwargs:
            raise ValueError(f"FOOF fixes variant to 'foof', but got variant={kwargs['variant']!r}")
        super().__init__(params, model, variant="foof", **kwargs)


@register_optimizer("kfac", defaults=KFAC_DEFAULTS, order="second", needs_model=True)
def _kfac(params: Iterable[Any], *, model: nn.Module, **hparams: Any) -> KFAC:
    """K-FAC (Martens & Grosse) for Linear/Conv2d layers; inverse eigen | cholesky | triangular."""
    return KFAC(params, model, **hparams)


@register_optimizer("foof", defaults={k: v for k, v in KFAC_DEFAULTS.items() if k != "variant"},
                    order="second", needs_model=True)
def _foof(params: Iterable[Any], *, model: nn.Module, **hparams: Any) -> FOOF:
    """FOOF: K-FAC with the input factor only (G = I)."""
    return FOOF(params, model, **hparams)
