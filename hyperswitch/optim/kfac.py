"""K-FAC and FOOF (docs/algorithms.md#k-fac-and-foof): Kronecker-factored preconditioning of Linear and Conv2d.

For each supported layer (bookkeeping in ``_kfac_layers``), forward hooks record ``A = E[a aᵀ]`` over the
layer inputs (ones column when the bias is preconditioned; Conv2d by unfolded patches) and tensor hooks on
the layer output record ``G = E[δ δᵀ]``, ``δ`` the output gradient times the batch size (the per-sample
gradient for a mean-reduced loss; see ``_kfac_layers``). Every ``factor_interval`` steps the factors become
running averages ``F ← factor_decay·F + (1 − factor_decay)·F_batch`` (the first batch initialises them).
Every ``inverse_interval`` steps the damped factors ``A + π√λ·I``, ``G + (√λ/π)·I`` (``λ = damping``; ``π = 1``,
or Martens & Grosse's trace ratio with ``pi_correction``) are decomposed (``inverse``: eigen | cholesky |
triangular, math in ``_kfac_inverse``) and cached; each step uses the cache:

- ``kfac``: ``(G + √λI/π)⁻¹ M (A + π√λI)⁻¹`` (``triangular``: ``X⁻¹ M Y⁻ᵀ``), ``M = [∇W | ∇b]``;
- ``foof`` (``G = I``): ``M (A + √λI)⁻¹`` (``triangular``: ``M Y⁻ᵀ``), damping on ``A`` only.

The update is SGD's on the preconditioned gradient ``d``: ``d ← d + weight_decay·w``, ``buf ← momentum·buf
+ d`` (``buf = d`` at first), ``w ← w − lr·buf``. Parameters outside a supported layer (and layers whose
factors do not exist yet) get the same update with ``d = ∇w``. Conv2d with ``groups != 1`` is skipped with a
warning (SGD update); a layer whose bias is not among the optimizer's parameters is treated as bias-free.

``fisher``: ``empirical`` takes ``G`` from the loss gradient at the data's targets (kfac-pytorch); the papers'
true Fisher takes it from targets drawn from the model (``categorical``: softmax over the class dimension, 1 for
cross-entropy, the last for sequence losses, :func:`class_dim`; ``bernoulli``: sigmoid, for binary cross-entropy
with logits): one extra backward pass (``torch.autograd.grad`` on the kept layer outputs) at the factor refreshes
(:func:`sample_targets`).

Step control (Martens & Grosse 2015; all off by default, each an option):

- ``kl_clip: κ`` (kfac-pytorch / KAISA): the preconditioned directions are scaled by
  ``ν = min(1, sqrt(κ / |Σ lr²·gᵀd|))`` (sum over the preconditioned layers' parameters) before momentum.
- ``rescale`` (§7): the update is ``δ = lr·(αΔ + μδ₀)``, ``Δ = −(d + weight_decay·w)`` and ``δ₀`` the previous
  update, with ``(α, μ)`` minimising the quadratic model ``½ xᵀ C x + bᵀx``, ``C_ij = v_iᵀ(F + (λ + wd)I)v_j``,
  ``b_i = ∇hᵀv_i`` over ``v = (Δ, δ₀)``; ``F`` is the exact GGN of the mini-batch (= the Fisher for
  cross-entropy, logistic and squared losses), its products ``Jv`` by forward-mode AD (``torch.func.jvp``) and
  the loss's output-space Hessian by a double backward (:func:`ggn_gram`). ``μ = 0`` (``α`` alone, §6.4) at the
  first step and where ``momentum`` is 0; the SGD momentum buffer is not used. ``lr`` multiplies the step
  (``lr = 1`` is the papers' step).
- ``adaptive_damping`` (§6.5): every ``damping_interval`` (``T₁``) steps, ``ρ = (h(θ+δ) − h(θ)) / (M(δ) − M(0))``
  on the step's mini-batch, ``M(δ) − M(0) = ½δᵀ(F + wd·I)δ + ∇hᵀδ`` (undamped model), ``h`` the loss plus
  ``½·wd·‖w‖²``; then ``λ ← ω₁λ`` if ``ρ > 3/4``, ``λ ← λ/ω₁`` if ``ρ < 1/4``, ``ω₁ = (19/20)^T₁``
  (:func:`lm_damping`); the preconditioner takes the new ``λ`` at its next inverse update, the quadratic model
  at once.

``rescale``, ``adaptive_damping`` and a sampled ``fisher`` need the mini-batch: the optimizer then has
``batch_step(inputs, targets)`` (the registry's stepping protocol; it does the forward/backward itself) and
needs ``loss_fn``; ``step()`` raises. Their extra passes (JVPs, the loss after the update) capture no factors
and leave the model's buffers as they were.

Defaults (pinned; registry entry ``kfac``; ``foof`` is the same without ``variant``):

| name             | default    | rule                          | schedule? |
|------------------|------------|-------------------------------|-----------|
| lr               | 0.01       | >= 0                          | yes       |
| momentum         | 0.9        | in [0, 1)                     | no        |
| weight_decay     | 0.0        | >= 0                          | no        |
| damping          | 0.1        | > 0                           | yes (no with adaptive_damping) |
| factor_decay     | 0.95       | in [0, 1)                     | yes       |
| factor_interval  | 1          | integer >= 1                  | yes       |
| inverse_interval | 10         | integer >= 1                  | yes       |
| inverse          | "cholesky" | eigen, cholesky, triangular   | no        |
| variant          | "kfac"     | kfac, foof                    | no        |
| pi_correction    | False      | bool                          | no        |
| adaptive_damping | False      | bool                          | no        |
| damping_interval | 5          | integer >= 1                  | no        |
| rescale          | False      | bool                          | no        |
| kl_clip          | None       | None or > 0 (not with rescale)| no        |
| fisher           | "empirical"| empirical, categorical, bernoulli (kfac variant only) | no |

"schedule" values are a constant, a callable of the step or a mapping (``_schedule``). Factors are refreshed
at a step ``k`` (0-based) when none were refreshed yet or ``k − last >= factor_interval(k)``; inverses alike.
A decomposition that fails (non-finite factors after a divergence) keeps the layer's previous cache (raw
gradient if none) with a ``RuntimeWarning``, so that the training loop, not the optimizer, reports the
divergence. Factors are captured only in training mode with autograd on (no-grad probe forwards are
ignored); several forward/backward passes before one ``step()`` (gradient accumulation) are averaged.

Distributed: when ``torch.distributed`` is initialised with world size > 1, the batch factors are averaged
across workers by one all-reduce per factor refresh, before the running average and inversion, so every
worker preconditions with identical matrices. Gradients are assumed already averaged (DDP or the caller).
With step control the quadratic-model products and the losses of ``ρ`` are averaged too (one small
all-reduce each), so every worker takes the same ``α``, ``μ`` and ``λ``.

Switching API: ``precondition_grads()`` (direction at lr 1 from the cached preconditioner, no factor update,
no weight decay, momentum, KL clip or rescaling), ``freeze()`` (no more factor/inverse updates), ``release()``
(frees factors and caches, removes hooks; then plain SGD(momentum)), ``state_bytes()``. The SGD update, group
checks, KL clip, ``lr`` property and checkpoint framing are shared with Shampoo
(``_preconditioned.PreconditionedSGD``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from hyperswitch.optim import _kfac_shared, _schedule
from hyperswitch.optim._kfac_inverse import INVERSE_METHODS
from hyperswitch.optim._kfac_layers import KFACLayer, make_layer
from hyperswitch.optim._preconditioned import (  # the helpers are re-exported (they used to live here)
    SGD_SPECS,
    PreconditionedSGD,
    check_choice,
    check_kl_clip,
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
    "pi_correction": False,
    "adaptive_damping": False,
    "damping_interval": 5,
    "rescale": False,
    "kl_clip": None,
    "fisher": "empirical",
    "shared_storage": False,
}

SPECS = {
    **SGD_SPECS,
    "damping": Spec("damping", "must be > 0", lambda v: v > 0),
    "factor_decay": Spec("factor_decay", "must be in [0, 1)", lambda v: 0 <= v < 1),
    "factor_interval": Spec("factor_interval", "must be an integer >= 1", lambda v: v >= 1, integer=True),
    "inverse_interval": Spec("inverse_interval", "must be an integer >= 1", lambda v: v >= 1, integer=True),
}
DAMPING_INTERVAL = Spec("damping_interval", "must be an integer >= 1", lambda v: v >= 1, integer=True)
VARIANTS = ("kfac", "foof")
FISHERS = ("empirical", "categorical", "bernoulli")
_CACHE_KEYS = ("QA", "invdA", "QG", "invdG", "LA", "LG")
_FACTOR_KEYS = ("A", "G")
_STEP_KEYS = ("prev_update",)  # per-parameter state of ``rescale``: the previous update δ₀
_GLOBAL = ("damping", "factor_decay", "factor_interval", "inverse_interval", "inverse", "variant",
           "pi_correction", "adaptive_damping", "damping_interval", "rescale", "kl_clip", "fisher", "shared_storage")
SHARED_INVERSES = ("cholesky", "triangular")
# Levenberg-Marquardt (Martens & Grosse 2015, §6.5): thresholds on ρ and the bounds λ is kept in (choice).
RHO_LOW, RHO_HIGH = 0.25, 0.75
DAMPING_BOUNDS = (1e-8, 1e8)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -- step control: pure functions (tested against dense references) --------------------------------------
def lm_damping(damping: float, rho: float, interval: int) -> float:
    """λ after one Levenberg-Marquardt adjustment (Martens & Grosse 2015, §6.5): ``ω₁λ`` if ``ρ > 3/4``,
    ``λ/ω₁`` if ``ρ < 1/4`` or ``ρ`` is not a number (a failed step), else ``λ``; ``ω₁ = (19/20)^interval``;
    kept within ``DAMPING_BOUNDS``."""
    omega = (19.0 / 20.0) ** interval
    if rho > RHO_HIGH:
        damping = damping * omega
    elif not rho >= RHO_LOW:  # ρ < 1/4, or NaN
        damping = damping / omega
    return min(max(damping, DAMPING_BOUNDS[0]), DAMPING_BOUNDS[1])


def quadratic_minimiser(c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``argmin_x ½ xᵀ C x + bᵀ x = −C⁻¹ b`` for the 1×1 or 2×2 model of ``rescale`` (float64).

    A 2×2 ``C`` that is not positive definite (``Δ`` and ``δ₀`` parallel, round-off) falls back to the first
    coordinate alone (``μ = 0``); a 1×1 ``C`` that is not positive gives 0 (no step)."""
    c, b = c.double(), b.double()
    x = torch.zeros(len(b), dtype=torch.float64)
    if c.shape[0] == 2:
        det = float(c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0])
        if c[0, 0] > 0 and det > 1e-12 * float(c[0, 0] * c[1, 1]):
            return -torch.linalg.solve(c, b)
    if c[0, 0] > 0:
        x[0] = -b[0] / c[0, 0]
    return x


def ggn_gram(module: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
             primals: dict[str, torch.Tensor], tangents: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """``[v_iᵀ F v_j]`` (float64, symmetric) with ``F = Jᵀ ∇²_z L J`` the generalised Gauss-Newton matrix of the
    mini-batch loss ``L = loss_fn(module(inputs), targets)`` at the parameters ``primals`` (by name; others are
    the module's own): ``J v`` by one forward-mode JVP per tangent, ``∇²_z L (J v)`` by a double backward
    through the loss alone. For a loss that is the batch mean of per-sample losses this is
    ``(1/N) Σ_n (J_n v_i)ᵀ H_n (J_n v_j)``, ``H_n`` the output-space Hessian (for cross-entropy with softmax or
    sigmoid and for the squared error: the output-space Fisher, so ``F`` is the Fisher)."""

    def forward(ps: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(module, ps, (inputs,))

    outs: list[torch.Tensor] = []
    z: torch.Tensor | None = None
    # BatchNorm in training mode normalises by the batch statistics and updates its running ones in place,
    # which a transform may not do to a tensor it did not get as an input: the JVPs run with the update off
    # (the same function of the parameters).
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.training and m.track_running_stats]
    try:
        for m in norms:
            m.track_running_stats = False
        # attention: the fused scaled-dot-product kernels (flash, memory-efficient) have no forward-mode AD; the
        # math one is the same function in plain operations, which have
        with sdpa_kernel(SDPBackend.MATH):
            for tangent in tangents:
                result = jvp(forward, (primals,), (tangent,))
                z, u = result[0], result[1]
                outs.append(u.detach())
    finally:
        for m in norms:
            m.track_running_stats = True
    assert z is not None, "ggn_gram needs at least one tangent"
    k = len(outs)
    gram = torch.zeros(k, k, dtype=torch.float64)
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        (gz,) = torch.autograd.grad(loss_fn(zz, targets), zz, create_graph=True)
        for j in range(k):
            if not gz.requires_grad:  # a loss linear in the outputs: no curvature
                break
            (hu,) = torch.autograd.grad(gz, zz, grad_outputs=outs[j], retain_graph=True, allow_unused=True)
            if hu is None:
                break
            for i in range(k):
                gram[i, j] = (outs[i].double() * hu.double()).sum()
    return (gram + gram.t()) / 2


def class_dim(loss_fn: Any, outputs: torch.Tensor, targets: torch.Tensor | None) -> int:
    """The dimension of ``outputs`` that holds the class logits, for a ``categorical`` draw: the loss function's
    ``class_dim`` attribute where it has one (hyperswitch's sequence losses: -1, logits ``(N, T, V)``), else the
    dimension whose removal leaves the targets' shape, ``cross_entropy``'s dimension 1 where that fits (it is
    also the last one for ``(N, C)`` logits)."""
    declared = getattr(loss_fn, "class_dim", None)
    if isinstance(declared, int):
        return declared
    if outputs.dim() > 2 and targets is not None and tuple(targets.shape) == tuple(outputs.shape[:-1]) \
            and tuple(targets.shape) != tuple(outputs.shape[:1] + outputs.shape[2:]):
        return -1
    return 1


def sample_targets(fisher: str, outputs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Targets drawn from the model's predictive distribution at ``outputs`` (logits): ``categorical`` class
    indices from ``softmax`` over dimension ``dim`` (1: ``cross_entropy``'s convention; -1 for ``(N, T, V)``
    sequence logits, see :func:`class_dim`), ``bernoulli`` 0/1 values from ``sigmoid``
    (``binary_cross_entropy_with_logits``'s), in the outputs' dtype."""
    if fisher == "categorical":
        logits = outputs.movedim(dim, -1) if outputs.dim() > 1 else outputs
        flat = torch.multinomial(torch.softmax(logits.reshape(-1, logits.shape[-1]).float(), dim=-1), 1)
        return flat.reshape(logits.shape[:-1])
    if fisher == "bernoulli":
        return torch.bernoulli(torch.sigmoid(outputs))
    raise ValueError(f"fisher {fisher!r} draws no targets")


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        return model.module
    return model


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, but got {value!r}")
    return value


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
        pi_correction: bool = KFAC_DEFAULTS["pi_correction"],
        adaptive_damping: bool = KFAC_DEFAULTS["adaptive_damping"],
        damping_interval: int = KFAC_DEFAULTS["damping_interval"],
        rescale: bool = KFAC_DEFAULTS["rescale"],
        kl_clip: float | None = KFAC_DEFAULTS["kl_clip"],
        fisher: str = KFAC_DEFAULTS["fisher"],
        shared_storage: bool = KFAC_DEFAULTS["shared_storage"],
        loss_fn: LossFn | None = None,
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
        self.pi_correction = _check_bool(pi_correction, "pi_correction")
        self.adaptive_damping = _check_bool(adaptive_damping, "adaptive_damping")
        self.damping_interval = DAMPING_INTERVAL.check_value(damping_interval)
        self.rescale = _check_bool(rescale, "rescale")
        self.kl_clip = check_kl_clip(kl_clip)
        self.fisher = check_choice(fisher, "fisher", FISHERS)
        self.shared_storage = _check_bool(shared_storage, "shared_storage")
        if self.shared_storage and self.inverse not in SHARED_INVERSES:
            raise ValueError(f"shared_storage needs inverse cholesky or triangular (a factor shares its buffer with "
                             f"its Cholesky factor), but got inverse={inverse!r}")
        if self.variant == "foof" and self.fisher != "empirical":
            raise ValueError(f"fisher must be 'empirical' with variant foof (it has no G factor), but got {fisher!r}")
        if self.adaptive_damping and not isinstance(self.damping, int | float):
            raise ValueError(f"damping must be a number with adaptive_damping (the initial λ), but got {damping!r}")
        if self.rescale and self.kl_clip is not None:
            raise ValueError("kl_clip must be null with rescale: the quadratic model's α undoes any scaling of the "
                             f"direction, but got kl_clip={kl_clip!r}")
        if self.step_control and not callable(loss_fn):
            raise ValueError("loss_fn is required with rescale, adaptive_damping or a sampled fisher (they "
                             f"re-evaluate the mini-batch), but got {loss_fn!r}")
        super().__init__(params, lr, momentum, weight_decay)
        self.process_group = process_group
        self.model = model
        self.loss_fn = loss_fn
        self.last_factor_step: int | None = None
        self.factor_updates = 0
        self.alpha: float | None = None  # the last step's quadratic-model coefficients (rescale)
        self.mu: float | None = None
        self.rho: float | None = None  # the last reduction ratio (adaptive_damping)
        self._probing = False
        self._outputs: list[tuple[KFACLayer, torch.Tensor]] = []  # layer outputs kept for a sampled G
        self._names: dict[int, str] = {}
        if self.step_control:
            self._names = {id(p): n for n, p in _unwrap(model).named_parameters()}
            missing = [tuple(p.shape) for g in self.param_groups for p in g["params"] if id(p) not in self._names]
            if missing:
                raise ValueError(f"every optimized parameter must belong to model with step control, but got "
                                 f"extra shapes {missing}")
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
        return (not self.frozen and not self.released and not self._probing and module.training
                and torch.is_grad_enabled() and self._due(self.last_factor_step, "factor_interval", self.steps))

    def _on_forward(self, layer: KFACLayer, module: nn.Module, args: Any, output: Any) -> None:
        if not self._capturing(module):
            return
        with torch.no_grad():
            layer.add_input(args[0])
        if self.variant == "kfac" and isinstance(output, torch.Tensor) and output.requires_grad:
            if self.fisher == "empirical":
                output.register_hook(partial(_grad_hook, weakref.ref(self), layer))
            else:  # G from the sampled targets' gradient, taken by _batch_step
                self._outputs.append((layer, output))

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
        # Running averages of every layer at once (``torch._foreach_*``: the same elementwise ops, one call);
        # a first batch factor becomes the average itself (``take_pending`` hands over tensors it no longer holds).
        olds: list[torch.Tensor] = []
        news: list[torch.Tensor] = []
        for layer, a, g in self._pending():
            st = self.state[layer.weight]
            for key, f in (("A", a), ("G", g if self.variant == "kfac" else None)):
                if f is None:
                    continue
                if self.shared_storage:
                    _kfac_shared.update(st, key, f, decay)
                elif key in st:
                    olds.append(st[key])
                    news.append(f)
                else:
                    st[key] = f
                updated = True
        if olds:
            torch._foreach_mul_(olds, decay)
            torch._foreach_add_(olds, news, alpha=1.0 - decay)
        if updated:
            self.last_factor_step = step
            self.factor_updates += 1
        return updated

    def _ready(self, st: dict[str, Any]) -> bool:
        if self.shared_storage:
            return _kfac_shared.ready(st, self.variant == "kfac")
        return "A" in st and (self.variant == "foof" or "G" in st)

    def _has_inverse(self, st: dict[str, Any]) -> bool:
        if self.shared_storage:
            return _kfac_shared.has_inverse(st, self.variant == "kfac")
        return any(k in st for k in _CACHE_KEYS)

    def _update_inverses(self, step: int) -> None:
        due = self._due(self.last_inverse_step, "inverse_interval", step)
        method = INVERSE_METHODS[self.inverse]
        damping = None
        built = False
        for layer in self.layers:
            st = self.state[layer.weight]
            if not self._ready(st) or not (due or not self._has_inverse(st)):
                continue
            if damping is None:
                damping = float(self._value("damping", step))
            if self.shared_storage:
                try:
                    _kfac_shared.build(st, self.variant == "kfac", damping, self.pi_correction)
                except RuntimeError as exc:
                    warnings.warn(f"K-FAC: {self.inverse} update of layer {layer.name!r} failed at step {step}; "
                                  f"keeping its previous preconditioner ({exc})", RuntimeWarning, stacklevel=4)
                    continue
                built = True
                continue
            try:
                cache = method.build(st["A"], st.get("G") if self.variant == "kfac" else None, damping,
                                     self.pi_correction)
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
            if not self._has_inverse(st):
                continue
            m = layer.grad_matrix()
            if m is None:
                continue
            if self.shared_storage:
                d = _kfac_shared.apply(st, m, self.variant == "kfac", self.inverse == "triangular")
            else:
                d = method.apply(st, m, self.variant == "kfac")
            out.update(layer.split(d))
        return out

    def _step_directions(self, step: int) -> dict[nn.Parameter, torch.Tensor]:
        if not self.frozen:
            if self._due(self.last_factor_step, "factor_interval", step):
                self._update_factors(step)
            self._update_inverses(step)
        return self._directions()

    # -- step control (rescale, adaptive_damping): the registry's batch_step protocol ----------------------
    @property
    def step_control(self) -> bool:
        """Whether the update needs the mini-batch (``rescale``, ``adaptive_damping`` or a sampled ``fisher``)."""
        return self.rescale or self.adaptive_damping or self.fisher != "empirical"

    @property
    def batch_step(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``batch_step(inputs, targets)``: one update with step control; exists only where ``step_control``
        (``getattr(opt, "batch_step", None)`` is how the stepping protocol picks the path)."""
        if not self.step_control:
            raise AttributeError("batch_step: this K-FAC needs no mini-batch (no rescale, adaptive_damping or "
                                 "sampled fisher)")
        return self._batch_step

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if self.step_control and not self.released:
            raise RuntimeError("K-FAC with rescale, adaptive_damping or a sampled fisher needs the mini-batch: call "
                               "batch_step(inputs, targets) instead of step() (the registry's stepping protocol)")
        return super().step(closure)

    def _batch_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Forward, backward and one update on the mini-batch; returns the mean loss before it (this
        worker's: the stepping protocol averages it)."""
        assert self.loss_fn is not None  # checked at construction
        self.zero_grad(set_to_none=True)
        self._outputs = []
        with torch.enable_grad():
            outputs = self.model(inputs)
            loss = self.loss_fn(outputs, targets)
            captured, self._outputs = self._outputs, []
            if captured:  # fisher sampled and a factor refresh due: G from targets drawn from the model
                drawn = sample_targets(self.fisher, outputs.detach(), class_dim(self.loss_fn, outputs, targets))
                sampled = self.loss_fn(outputs, drawn)
                grads = torch.autograd.grad(sampled, [o for _, o in captured], retain_graph=True,
                                            allow_unused=True)
                for (layer, _), g in zip(captured, grads, strict=True):
                    if g is not None:
                        self._on_output_grad(layer, g)
            loss.backward()
        loss = loss.detach()
        k = self.steps
        with torch.no_grad():
            if self.released:
                sgd_update(self, {}, k)
            else:
                self._controlled_update(inputs, targets, loss, k)
        self.steps += 1
        return loss

    def _group_values(self, key: str) -> dict[nn.Parameter, float]:
        return {p: float(g[key]) for g in self.param_groups for p in g["params"]}

    def _controlled_update(self, inputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor, k: int) -> None:
        params = self._params()
        directions = self._step_directions(k)
        self._clip(directions, k)
        due = self.adaptive_damping and k % self.damping_interval == 0
        before = {p: p.detach().clone() for p in params} if due else {}
        if self.rescale:
            self._rescaled_update(inputs, targets, params, directions, k)
        else:
            sgd_update(self, directions, k)
        if due:
            self._adapt_damping(inputs, targets, loss, before)

    @contextlib.contextmanager
    def _probe(self) -> Iterator[None]:
        """Extra passes: no factor capture, and the model's buffers (BatchNorm statistics) restored after."""
        buffers = [(b, b.detach().clone()) for b in _unwrap(self.model).buffers()]
        self._probing = True
        try:
            yield
        finally:
            self._probing = False
            for b, saved in buffers:
                b.copy_(saved)

    def _global_mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over the workers (float64; one all-reduce), ``t`` itself with one worker."""
        t = t.double()
        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size(self.process_group)
            if world > 1:
                t = t.clone()
                dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.process_group)
                t = t / world
        return t

    def _gram(self, inputs: torch.Tensor, targets: torch.Tensor, at: dict[nn.Parameter, torch.Tensor],
              vectors: list[dict[nn.Parameter, torch.Tensor]]) -> torch.Tensor:
        """``[v_iᵀ F v_j]`` at the parameters ``at`` (exact GGN of this mini-batch, averaged over workers)."""
        assert self.loss_fn is not None
        primals = {self._names[id(p)]: w for p, w in at.items()}
        tangents = [{self._names[id(p)]: v[p] if p in v else torch.zeros_like(w) for p, w in at.items()}
                    for v in vectors]  # (not ``v.get(p, zeros)``: that builds the zeros for every parameter)
        with self._probe():
            gram = ggn_gram(_unwrap(self.model), self.loss_fn, inputs, targets, primals, tangents)
        return self._global_mean(gram)

    def _rescaled_update(self, inputs: torch.Tensor, targets: torch.Tensor, params: list[nn.Parameter],
                         directions: dict[nn.Parameter, torch.Tensor], k: int) -> None:
        """``δ = lr·(αΔ + μδ₀)`` with ``(α, μ)`` from the damped quadratic model (Martens & Grosse 2015, §7)."""
        lrs, wds, moms = self._lr_of(k), self._group_values("weight_decay"), self._group_values("momentum")
        lam = float(self._value("damping", k))
        new = {p: -(directions.get(p, grad_of(p)) + wds[p] * p) for p in params}
        prev = {p: self.state[p]["prev_update"] for p in params if moms[p] > 0 and "prev_update" in self.state[p]}
        vectors = [new] + ([prev] if prev else [])
        c = self._gram(inputs, targets, {p: p.detach() for p in params}, vectors)
        b = torch.zeros(len(vectors), dtype=torch.float64)
        # Per parameter: its gradient and its vectors in float64 once, each symmetric product once (v_iᵀv_j is
        # v_jᵀv_i to the bit). Every entry still sums over the parameters in the same order.
        for p in params:
            xs = {i: v[p].double() for i, v in enumerate(vectors) if p in v}
            if not xs:
                continue
            g = (grad_of(p) + wds[p] * p).double()
            for i, x in xs.items():
                b[i] += float((g * x).sum())
                for j, u in xs.items():
                    if j < i:
                        continue
                    term = (lam + wds[p]) * float((x * u).sum())
                    c[i, j] += term
                    if j != i:
                        c[j, i] += term
        coef = quadratic_minimiser(c, b)
        self.alpha = float(coef[0])
        self.mu = float(coef[1]) if len(coef) > 1 else 0.0
        for p in params:
            step = new[p] * self.alpha
            if p in prev:
                step.add_(prev[p], alpha=self.mu)
            step = step.mul_(lrs[p])
            p.add_(step)
            if moms[p] > 0:
                self.state[p]["prev_update"] = step

    def _adapt_damping(self, inputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor,
                       before: dict[nn.Parameter, torch.Tensor]) -> None:
        """Levenberg-Marquardt: ``ρ`` of the update just made (``before`` → now) on the same mini-batch."""
        assert self.loss_fn is not None
        wds = self._group_values("weight_decay")
        delta = {p: p.detach() - w for p, w in before.items()}
        with self._probe():
            after = self.loss_fn(self.model(inputs), targets).detach()
        losses = self._global_mean(torch.stack([loss.double(), after.double()]))
        reg = sum(0.5 * wds[p] * float((p.double() ** 2).sum() - (w.double() ** 2).sum())
                  for p, w in before.items() if wds[p] != 0)
        actual = float(losses[1] - losses[0]) + reg
        curvature = float(self._gram(inputs, targets, before, [delta])[0, 0])
        predicted = 0.5 * curvature
        for p, d in delta.items():
            g = grad_of(p) + wds[p] * before[p]
            d64 = d.double()
            predicted += float((g.double() * d64).sum()) + 0.5 * wds[p] * float((d64**2).sum())
        if predicted == 0.0:  # no step (zero gradient): nothing to learn about λ
            return
        self.rho = actual / predicted if math.isfinite(actual) else math.nan
        self.damping = lm_damping(float(self.damping), self.rho, self.damping_interval)

    # -- switching API -------------------------------------------------------------------------------
    @torch.no_grad()
    def raw_directions(self) -> dict[nn.Parameter, torch.Tensor]:
        """``(F + λI)⁻¹g`` for every parameter with a grad, from the cached preconditioner (raw gradient where
        there is none); updates nothing, applies neither ``α``, weight decay, momentum nor the KL clip."""
        dirs = self._directions()
        return {p: dirs[p] if p in dirs else grad_of(p).detach().clone() for p in self._params()}

    @torch.no_grad()
    def precondition_grads(self) -> dict[nn.Parameter, torch.Tensor]:
        """Direction at lr 1 (the switch policy's corrector mixes it with the gradient at phase 2's lr):
        :meth:`raw_directions`, times the ``α`` of the last update with ``rescale`` (its step at lr 1 is
        ``αΔ``; ``α`` is 1 before the first update). Unscaled, ``(F + λI)⁻¹g`` at a small adapted ``λ`` is
        many times the step K-FAC itself took."""
        out = self.raw_directions()
        if self.rescale and self.alpha is not None:
            out = {p: d * self.alpha for p, d in out.items()}
        return out

    def freeze(self) -> None:
        """Stop factor and inverse updates; the cached preconditioner keeps being used."""
        super().freeze()
        for layer in self.layers:
            layer.clear_pending()

    def release_momentum(self) -> None:
        """Free the momentum: the buffers, and with ``rescale`` the previous update δ₀ that serves as it."""
        super().release_momentum()
        for st in self.state.values():
            for k in _STEP_KEYS:
                st.pop(k, None)

    def _release_state(self) -> None:
        """Free factors and caches and remove the hooks (``release``: later steps are plain SGD(momentum))."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for layer in self.layers:
            layer.clear_pending()
            st = self.state.get(layer.weight, {})
            for k in _FACTOR_KEYS + _CACHE_KEYS + _kfac_shared.KEYS:
                st.pop(k, None)
        for st in self.state.values():
            for k in _STEP_KEYS:
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
            "alpha": self.alpha, "mu": self.mu, "rho": self.rho,
        }

    def _check_extra_state(self, extra: dict[str, Any]) -> None:
        if extra["released"] and not self.released:
            self.release()
        names = [la.name for la in self.layers]
        if not extra["released"] and extra["layers"] != names:
            raise ValueError(f"K-FAC layers must match the checkpoint's {extra['layers']}, but got {names}")

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        for k in ("steps", "last_factor_step", "last_inverse_step", "factor_updates", "inverse_updates",
                  "frozen", "alpha", "mu", "rho", *_GLOBAL):
            if k in extra:  # checkpoints from before step control lack its settings: the optimizer's own stay
                setattr(self, k, extra[k])


class FOOF(KFAC):
    """K-FAC with ``G = I`` (``variant: foof``): ``M (A + √λI)⁻¹``."""

    def __init__(self, params: Iterable[Any], model: nn.Module, **kwargs: Any) -> None:
        if "variant" in kwargs:
            raise ValueError(f"FOOF fixes variant to 'foof', but got variant={kwargs['variant']!r}")
        super().__init__(params, model, variant="foof", **kwargs)


@register_optimizer("kfac", defaults=KFAC_DEFAULTS, order="second", needs_model=True, takes_loss=True)
def _kfac(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn | None = None, **hparams: Any) -> KFAC:
    """K-FAC (Martens & Grosse) for Linear/Conv2d layers; inverse eigen | cholesky | triangular."""
    return KFAC(params, model, loss_fn=loss_fn, **hparams)


@register_optimizer("foof", defaults={k: v for k, v in KFAC_DEFAULTS.items() if k != "variant"},
                    order="second", needs_model=True, takes_loss=True)
def _foof(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn | None = None, **hparams: Any) -> FOOF:
    """FOOF: K-FAC with the input factor only (G = I)."""
    return FOOF(params, model, loss_fn=loss_fn, **hparams)
