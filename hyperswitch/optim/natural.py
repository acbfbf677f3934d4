"""Natural gradient from per-sample gradients: EF, iEF and sampled Fisher (003).

Described in docs/algorithms.md#natural-gradient-ef-ief-sf.

``J ∈ R^{N×P}`` holds the gradients of the per-sample losses ``l_n = loss_fn(model(x_n[None]), y_n[None])``
over the optimizer's parameters; ``loss_fn`` is the mean-reduced mini-batch loss (cross-entropy, MSE, ...),
so ``L = mean_n l_n`` and ``∇L = Jᵀ1/N``. Every update is solved in the ``N×N`` space (Cholesky of the
damped Gram matrix, in float64; an eigen-decomposition pseudo-inverse if Cholesky fails), never as a ``P×P``
matrix, and only through the products ``J Jᵀ``, ``Jᵀc``, ``J v`` (``hyperswitch.optim._natural_factored.Rows``):

- ``ef``  (``EmpiricalFisher``):         ``d = Jᵀ (J Jᵀ + λI)⁻¹ 1``
- ``ief`` (``ImprovedEmpiricalFisher``): ``d = Jᵀ (J Jᵀ + λI)⁻¹ s``, ``s_n = ‖∂l_n/∂z_n‖²``, ``z_n`` the
  model output (logits) of sample ``n``;
- ``sf``  (``SampledFisher``):           ``d = λ⁻¹ [I − Jsᵀ (Js Jsᵀ + λM I)⁻¹ Js] g``, ``Js`` the gradients
  of ``log p(ŷ|x_n)`` for ``M = n_samples`` labels drawn from the model per input: categorical
  ``softmax(z_n)`` for class targets, unit-variance Gaussian ``ŷ = z_n + ε`` for real-valued targets
  (``likelihood: auto`` decides by the targets' dtype).

With ``normalize: true`` (``ef``, ``ief``) the direction is divided by its norm over all parameters,
``d ← d/‖d‖`` (003 trains EF with "a normalised update", its §6.1; the supporting material does not define it
further, so the unit norm is a **choice**): ``lr`` is then the step length ``‖Δw‖``, whatever ``λ`` and ``N``.
``direction_norm`` holds the last ``‖d‖`` before normalisation (``None`` without ``normalize``). This is not 003's
"EF*", which is plain EF at ``λ = 1e-4`` (its Table 1).

Then, as SGD does with a gradient: ``d ← d + weight_decay·w``; ``buf ← momentum·buf + d`` (``buf = d`` at
first); ``w ← w − lr·buf``. The update is linear in ``lr`` (GeN can wrap these optimizers).

Normalisation (**choice**). EF and iEF are used exactly as written, with no ``1/N``. Written as a
preconditioned mean gradient, EF is ``(F_mean + (λ/N)I)⁻¹ ∇L`` with ``F_mean = JᵀJ/N`` (push-through
identity), so ``λ`` damps the *summed* matrix ``JᵀJ`` and the undamped step does not depend on ``N``: it
satisfies ``J·Δw = −lr·1`` (every sample's linearised loss drops by ``lr``) and, for iEF, ``J·Δw = −lr·s``.
For linear least squares with a scalar output and the Gaussian negative log-likelihood ``½(z − y)²``, iEF
equals the minimum-norm natural (= Gauss-Newton) gradient ``G⁺∇L``; with plain MSE ``(z − y)²`` it is twice
that (iEF scales with the loss, NGD does not). For ``sf``, ``g`` is 003's *accumulated* gradient
``Σ_n ∇l_n = Jᵀ1`` and ``F̂(M) = (1/M)·JsᵀJs`` sums over samples (003 eq. 22-24, where ``L = Σ_n l_n``):
the update is ``(F̂ + λI)⁻¹ g``, on the same scale as EF/iEF and, for small ``λ``, independent of ``N`` (with
the mean gradient it would be ``N`` times smaller). The ``λ⁻¹`` term acts on the part of ``g`` outside the
span of ``Js``, which is not empty unless ``M`` covers the output dimension: with a tiny ``λ`` that part
dominates and ``sf`` moves like SGD at rate ``lr/λ`` there; hence ``sf``'s larger default ``damping`` (1.0,
a Levenberg-Marquardt-like regime; 1e-7 with ``lr`` ~1e-7 is the literal 003 setting). With ``torch.func``
the ``sf`` products are computed in float64; the factored path keeps them in the model's dtype, as for EF/iEF
(the solves are always float64).

How ``J`` is obtained (``jacobian``, **choice**: ``auto``, the default, or ``torch.func``):

- ``auto``: if every optimized parameter is the weight or bias of an ``nn.Linear`` or ``nn.Conv2d`` (groups 1,
  zero padding) that owns it alone, the *factored* path: one batched forward with hooks recording each layer's
  inputs ``A``, one input-only backward of ``Σ_n l_n`` for the output gradients ``Δ`` (plus one per SF draw),
  and the products from the factors without forming ``J`` (``(J Jᵀ)_{nm} = Σ_layers (a_n·a_m)(δ_n·δ_m)``,
  ``Jᵀc = Σ_layers Δᵀ diag(c) A``; Conv2d and sequence inputs through their positions). The first step
  compares the factored rows of two samples with plain autograd (eval mode); a mismatch (a weight also used
  outside its module, a layer fed batch-second) warns and switches to ``torch.func`` for good. Any other
  parameterised layer (LayerNorm, Embedding, a bare ``nn.Parameter``) sends the *whole model* to
  ``torch.func``; ``fallback_reason`` says why, ``jacobian_path`` which path the last step took.
- ``torch.func``: ``J`` materialised by ``functional_call`` + ``vmap`` + ``grad`` (always available).

Defaults (pinned, registry entries ``ef``, ``ief``, ``sf``; all ``order: second``, model and loss needed):

| name         | ef    | ief   | sf     | rule                                     |
|--------------|-------|-------|--------|------------------------------------------|
| lr           | 0.01  | 1.0   | 0.1    | >= 0                                     |
| damping      | 1e-7  | 1e-7  | 1.0    | > 0 (λ; 003 uses 1e-7)                   |
| momentum     | 0     | 0     | 0      | in [0, 1)                                |
| weight_decay | 0     | 0     | 0      | >= 0 (added to the direction, like SGD)  |
| n_samples    |       |       | 1      | integer >= 1 (M)                         |
| sample_seed  |       |       | None   | None (torch's global generator) or int   |
| likelihood   |       |       | "auto" | auto, categorical, gaussian              |
| jacobian     | auto  | auto  | auto   | auto, torch.func                         |
| normalize    | False | False |        | bool: d ← d/‖d‖ before weight decay      |

With ``sample_seed`` an integer, labels are drawn from a private ``torch.Generator`` seeded with
``sample_seed + rank`` whose state is saved in ``state_dict``; with ``None`` they come from torch's global
generator (reproducible under ``torch.manual_seed``).

Stepping: these optimizers compute their own per-sample gradients, so they implement the registry's
``batch_step(inputs, targets) -> Tensor`` (the mean loss before the update); ``step()`` raises. After a step
``p.grad`` holds the mean mini-batch gradient ``∇L`` (for callers that inspect gradients). Models with
batch-statistics layers in training mode (BatchNorm) are not supported (``vmap`` sees one sample at a time;
they also disable the factored path); dropout is sampled independently per sample.

Data parallelism: neither path uses DDP's gradient all-reduce, so when ``torch.distributed`` is initialised
with world size > 1 every worker all-gathers the rows of ``J`` (and ``s``, or ``Js``) and the per-sample
losses (rank order; unequal local batches allowed), so that every worker solves the same global ``N×N``
system and applies the identical update; the returned loss is the global mean. Communication is ``O(NP)``
per step with ``torch.func``; the factored path gathers the factors ``A`` and ``Δ`` instead (``O(N·L·(d_in +
d_out))`` per layer). Pass a DDP-wrapped model or the bare module (DDP is unwrapped).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call, grad, vmap

from hyperswitch.optim._natural_factored import (
    Blocks,
    DenseRows,
    FactoredRows,
    LossFn,
    Objectives,
    Pass,
    Plan,
    Rows,
    Unsupported,
    any_worker,
    batch_coupled,
    check_rows,
    factored_pass,
    gather_rows,
    gram,
    make_plan,
    row_counts,
    tmul_sum,
    world,
)
from hyperswitch.optim.registry import register_optimizer

__all__ = ["EmpiricalFisher", "ImprovedEmpiricalFisher", "SampledFisher", "gather_rows", "gram", "row_counts",
           "solve_gram"]

LIKELIHOODS = ("auto", "categorical", "gaussian")
JACOBIANS = ("auto", "torch.func")
Terms = dict[str, torch.Tensor | Rows]


# -- validation -------------------------------------------------------------------------------------------
def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, but got {value!r}")
    return float(value)


def check_value(name: str, value: Any, rule: str) -> float:
    """Raise ``ValueError("NAME must be RULE, but got VALUE")`` unless ``value`` obeys ``rule``."""
    v = _number(name, value)
    ok = {">= 0": v >= 0, "> 0": v > 0, "in [0, 1)": 0 <= v < 1}[rule]
    if not ok:
        raise ValueError(f"{name} must be {rule}, but got {value!r}")
    return v


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, but got {value!r}")
    return value


# -- linear algebra ----------------------------------------------------------------------------------------
def solve_gram(gram: torch.Tensor, rhs: torch.Tensor, damping: float) -> tuple[torch.Tensor, bool]:
    """``(gram + damping·I)⁻¹ rhs`` in float64 by Cholesky; if the matrix is not numerically positive
    definite, by an eigen-decomposition pseudo-inverse. Returns ``(solution, used_fallback)``."""
    a = gram.detach().to(torch.float64)
    a = 0.5 * (a + a.T)
    a.diagonal().add_(damping)
    b = rhs.detach().to(torch.float64).reshape(a.shape[0], -1)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(b, chol).reshape(rhs.shape), False
    evals, evecs = torch.linalg.eigh(a)
    tol = evals.abs().max() * a.shape[0] * torch.finfo(torch.float64).eps
    inv = torch.where(evals > tol, 1.0 / evals, torch.zeros_like(evals))
    return (evecs @ (inv[:, None] * (evecs.T @ b))).reshape(rhs.shape), True


def _squared_norm(d: torch.Tensor) -> torch.Tensor:
    """``‖d‖²`` as a float64 scalar, from a dot product in ``d``'s own dtype (BLAS ``sdot``/``ddot``: float32 to about
    3e-8 relative on a 200,000-entry block, float64 exact to round-off). A float64 copy of ``d`` (``vector_norm(d,
    dtype=float64)``) cost 0.2-0.5 ms a block, a third of a forward+backward per step; float32 ``vector_norm``
    accumulates in float32 (1e-6 relative)."""
    v = d.detach().reshape(-1)
    if v.dtype in (torch.float32, torch.float64):
        return torch.dot(v, v).to(torch.float64)
    return torch.linalg.vector_norm(v, dtype=torch.float32).to(torch.float64).square()


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        return model.module
    return model


# -- the optimizers -----------------------------------------------------------------------------------------
class PerSampleNaturalGradient(torch.optim.Optimizer):
    """Base class: per-sample gradients, cross-worker gathering and the SGD-style update.

    A variant implements ``_local_terms`` (extra rows to gather, e.g. ``s``, on the ``torch.func`` path),
    ``_factored_terms`` / ``_objectives`` (the same on the factored path) and ``_direction`` (the direction at
    lr 1 from the gathered rows).
    """

    returns_global_loss = True  # batch_step gathers every worker's per-sample losses

    name = "natural"

    def __init__(
        self,
        params: Iterable[Any],
        *,
        model: nn.Module,
        loss_fn: LossFn,
        lr: float,
        damping: float = 1e-7,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        jacobian: str = "auto",
        normalize: bool = False,
        **extra: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, but got {type(model).__name__}")
        if not callable(loss_fn):
            raise ValueError(f"loss_fn must be callable, but got {loss_fn!r}")
        if jacobian not in JACOBIANS:
            raise ValueError(f"jacobian must be one of {', '.join(JACOBIANS)}, but got {jacobian!r}")
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be true or false, but got {normalize!r}")
        defaults = {
            "lr": check_value("lr", lr, ">= 0"),
            "damping": check_value("damping", damping, "> 0"),
            "momentum": check_value("momentum", momentum, "in [0, 1)"),
            "weight_decay": check_value("weight_decay", weight_decay, ">= 0"),
            "jacobian": jacobian,
            "normalize": normalize,
            **extra,
        }
        super().__init__(params, defaults)
        self.model = _unwrap(model)
        self.loss_fn = loss_fn
        names = {id(p): n for n, p in self.model.named_parameters()}
        self._params: list[nn.Parameter] = [p for g in self.param_groups for p in g["params"]]
        missing = [tuple(p.shape) for p in self._params if id(p) not in names]
        if missing:
            raise ValueError(
                f"every optimized parameter must belong to model, but got extra shapes {missing}"
            )
        self._names = [names[id(p)] for p in self._params]
        self.solve_fallbacks = 0
        #: why the factored path is not used (None while it is); "jacobian: torch.func" when forced
        self.fallback_reason: str | None = None
        self._plan: Plan | None = None
        self._checked = False
        if jacobian == "torch.func":
            self.fallback_reason = "jacobian: torch.func"
        else:
            self._plan, self.fallback_reason = make_plan(self.model, self._params)
        #: the path of the last step: "factored" or "torch.func"
        self.jacobian_path: str | None = None
        #: ‖d‖ of the last step's direction at lr 1, before normalisation, weight decay and momentum
        self.direction_norm: float | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        g = self.param_groups[-1]
        for key, rule in (("lr", ">= 0"), ("momentum", "in [0, 1)"), ("weight_decay", ">= 0")):
            g[key] = check_value(key, g[key], rule)

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def step(self, closure: Any = None) -> Any:
        raise RuntimeError(
            f"{type(self).__name__} computes per-sample gradients itself and needs the mini-batch: call "
            "batch_step(inputs, targets) instead of step() (the registry's stepping protocol)"
        )

    # -- per-sample machinery ---------------------------------------------------------------------------
    def _detached(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in zip(self._names, self._params, strict=True)}

    def _blocks(self, grads: dict[str, torch.Tensor], rows: int) -> Blocks:
        # J is kept as one (N, P_k) block per parameter (views, no N×P concatenation copy)
        return [grads[n].detach().reshape(rows, -1) for n in self._names]

    def _factored_plan(self, inputs: torch.Tensor, targets: torch.Tensor) -> Plan | None:
        """The plan if this step takes the factored path (checked against autograd on the first step;
        a failed check switches to ``torch.func`` for good, with a warning)."""
        plan = self._plan
        if plan is None or batch_coupled(self.model):
            return None
        if not self._checked:
            reason = check_rows(self.model, plan, self.loss_fn, inputs, targets)
            if any_worker(reason is not None, inputs.device):
                reason = reason or "the factored check failed on another worker"
                warnings.warn(f"{type(self).__name__}: per-sample gradients by torch.func from now on: {reason}",
                              RuntimeWarning, stacklevel=3)
                self._plan, self.fallback_reason = None, reason
                return None
            self._checked = True
        return plan

    def per_sample(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, Blocks, torch.Tensor]:
        """``(losses (N,), J, outputs (N, ...))`` at the current parameters (local batch); ``J`` as a list
        of ``(N, P_k)`` blocks, one per parameter in optimizer order (``torch.cat(J, 1)`` is ``J``).
        On the factored path ``J`` is materialised from the factors."""
        plan = self._factored_plan(inputs, targets)
        if plan is not None:
            out = factored_pass(self.model, plan, inputs, targets, self.loss_fn)
            return out.losses, out.rows.blocks(), out.outputs
        return self._func_per_sample(inputs, targets)

    def _func_per_sample(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[
            torch.Tensor, Blocks, torch.Tensor]:
        model, loss_fn = self.model, self.loss_fn

        def sample_loss(pd: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> Any:
            z = functional_call(model, pd, (x.unsqueeze(0),))
            loss = loss_fn(z, y.unsqueeze(0))
            return loss, (loss, z.squeeze(0))

        fn = vmap(grad(sample_loss, has_aux=True), in_dims=(None, 0, 0), randomness="different")
        grads, (losses, outputs) = fn(self._detached(), inputs, targets)
        return losses.detach(), self._blocks(grads, inputs.shape[0]), outputs.detach()

    def output_grad_norms(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``s_n = ‖∂l_n/∂z_n‖²`` for every sample of the local batch."""
        loss_fn = self.loss_fn

        def out_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return loss_fn(z.unsqueeze(0), y.unsqueeze(0))

        gz = vmap(grad(out_loss))(outputs, targets)
        return gz.reshape(gz.shape[0], -1).pow(2).sum(1).detach()

    # -- variant hooks ------------------------------------------------------------------------------------
    def _local_terms(self, inputs: torch.Tensor, targets: torch.Tensor, outputs: torch.Tensor) -> Terms:
        """Extra per-sample terms on the ``torch.func`` path."""
        return {}

    def _objectives(self, targets: torch.Tensor) -> Objectives | None:
        """Extra per-sample objectives whose gradients the factored pass also needs (SF)."""
        return None

    def _factored_terms(self, out: Pass, targets: torch.Tensor) -> Terms:
        """Extra per-sample terms on the factored path, from its pass."""
        return {}

    def _direction(self, jac: Rows, terms: Terms) -> Blocks:
        raise NotImplementedError

    def _solve(self, jac: Rows, rhs: torch.Tensor, damping: float) -> Blocks:
        """``Jᵀ (J Jᵀ + λI)⁻¹ rhs`` (the N×N form), block by block."""
        coef, fallback = solve_gram(jac.gram(), rhs, damping)
        self.solve_fallbacks += int(fallback)
        return jac.tmul(coef.to(jac.dtype))

    # -- the step -----------------------------------------------------------------------------------------
    def _rows(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, Rows, Terms]:
        plan = self._factored_plan(inputs, targets)
        if plan is not None:
            try:
                out = factored_pass(self.model, plan, inputs, targets, self.loss_fn, self._objectives(targets))
            except Unsupported as e:  # e.g. a layer called on a differently shaped input from now on
                warnings.warn(f"{type(self).__name__}: per-sample gradients by torch.func from now on: {e}",
                              RuntimeWarning, stacklevel=3)
                self._plan, self.fallback_reason = None, str(e)
            else:
                self.jacobian_path = "factored"
                return out.losses, out.rows, self._factored_terms(out, targets)
        self.jacobian_path = "torch.func"
        losses, jac, outputs = self._func_per_sample(inputs, targets)
        return losses, DenseRows(jac), self._local_terms(inputs, targets, outputs)

    def batch_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One update on the mini-batch; returns the mean loss before it (global mean when distributed)."""
        losses, jac, terms = self._rows(inputs, targets)
        if world() > 1:
            counts = row_counts(losses.shape[0], losses.device)
            memo: dict[int, Any] = {}  # inputs shared by the rows of J and of SF's Js are gathered once
            losses, jac = gather_rows(losses, counts), jac.gather(counts, memo)
            terms = {k: v.gather(None, memo) if isinstance(v, Rows) else gather_rows(v) for k, v in terms.items()}
        direction = self._direction(jac, terms)
        direction = self._normalized(direction)
        self._apply(direction, jac.mean_row())
        return losses.mean()

    def _normalized(self, direction: Blocks) -> Blocks:
        """With ``normalize``: record ``‖d‖`` (all parameters together, float64) and return ``d/‖d‖`` (``d`` unchanged
        where ``‖d‖`` is 0 or not finite: the training loop reports a divergence, not the optimizer). Without it
        ``d`` as it is: the norm, a pass over all ``P`` entries, would be work that nothing uses."""
        if not self.defaults["normalize"]:
            return direction
        norm = float(torch.stack([_squared_norm(d) for d in direction]).sum().sqrt())
        self.direction_norm = norm
        if not (norm > 0 and norm < float("inf")):
            return direction
        return [d / norm for d in direction]

    @torch.no_grad()
    def _apply(self, direction: Blocks, mean_grad: Blocks) -> None:
        k = 0
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            params = group["params"]
            ds = [direction[k + i].view_as(p).to(p.dtype) for i, p in enumerate(params)]
            for i, p in enumerate(params):
                p.grad = mean_grad[k + i].view_as(p).to(p.dtype)
            k += len(params)
            if wd != 0:
                ds = list(torch._foreach_add(ds, params, alpha=wd))
            for i, p in enumerate(params):
                st = self.state[p]
                st["step"] = st.get("step", 0) + 1
                if mom != 0:
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = ds[i].clone()
                    else:
                        buf.mul_(mom).add_(ds[i])
                    ds[i] = buf
            torch._foreach_add_(params, ds, alpha=-lr)  # one call for the group's P-sized writes

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for st in self.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor))


class EmpiricalFisher(PerSampleNaturalGradient):
    """EF: ``Δw = −lr · Jᵀ (J Jᵀ + λI)⁻¹ 1``."""

    name = "ef"

    def _direction(self, jac: Rows, terms: Terms) -> Blocks:
        ones = torch.ones(jac.rows, dtype=jac.dtype, device=jac.device)
        return self._solve(jac, ones, self.param_groups[0]["damping"])


class ImprovedEmpiricalFisher(PerSampleNaturalGradient):
    """iEF: ``Δw = −lr · Jᵀ (J Jᵀ + λI)⁻¹ s``, ``s_n = ‖∂l_n/∂z_n‖²``."""

    name = "ief"

    def _local_terms(self, inputs: torch.Tensor, targets: torch.Tensor, outputs: torch.Tensor) -> Terms:
        return {"s": self.output_grad_norms(outputs, targets)}

    def _factored_terms(self, out: Pass, targets: torch.Tensor) -> Terms:
        gz = out.output_grads
        return {"s": gz.reshape(gz.shape[0], -1).pow(2).sum(1)}

    def _direction(self, jac: Rows, terms: Terms) -> Blocks:
        s = terms["s"]
        assert isinstance(s, torch.Tensor)
        return self._solve(jac, s.to(jac.dtype), self.param_groups[0]["damping"])


class SampledFisher(PerSampleNaturalGradient):
    """Sampled Fisher F̂(M): ``Δw = −lr · λ⁻¹ [I − Jsᵀ (Js Jsᵀ + λM I)⁻¹ Js] Jᵀ1``."""

    name = "sf"

    def __init__(
        self,
        params: Iterable[Any],
        *,
        n_samples: int = 1,
        sample_seed: int | None = None,
        likelihood: str = "auto",
        **kwargs: Any,
    ) -> None:
        _check_int("n_samples", n_samples, 1)
        if sample_seed is not None:
            _check_int("sample_seed", sample_seed, 0)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, but got {likelihood!r}")
        super().__init__(params, n_samples=n_samples, sample_seed=sample_seed, likelihood=likelihood,
                         **kwargs)
        self._generator: torch.Generator | None = None
        self._generator_state: torch.Tensor | None = None

    def _rng(self, device: torch.device) -> torch.Generator | None:
        seed = self.defaults["sample_seed"]
        if seed is None:
            return None
        if self._generator is None:
            rank = dist.get_rank() if world() > 1 else 0
            self._generator = torch.Generator(device=device)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
            else:
                self._generator.manual_seed(int(seed) + rank)
        return self._generator

    def _likelihood(self, targets: torch.Tensor) -> str:
        kind = self.defaults["likelihood"]
        if kind == "auto":
            kind = "gaussian" if targets.is_floating_point() else "categorical"
        return kind

    def _draws(self, z: torch.Tensor, targets: torch.Tensor) -> tuple[str, torch.Tensor]:
        """``(kind, draws)``: labels ``(N, M)`` drawn from ``softmax(z_n)``, or Gaussian targets
        ``(N, M, ...)`` = ``z_n + ε``."""
        m = self.defaults["n_samples"]
        gen = self._rng(z.device)
        kind = self._likelihood(targets)
        if kind == "categorical":
            if z.dim() != 2:
                raise ValueError(f"categorical sampling needs outputs of shape (N, C), "
                                 f"but got {tuple(z.shape)}")
            probs = torch.softmax(z.to(torch.float64), dim=-1)
            return kind, torch.multinomial(probs, m, replacement=True, generator=gen)  # (N, M)
        eps = torch.randn((z.shape[0], m, *z.shape[1:]), generator=gen, dtype=z.dtype, device=z.device)
        return kind, z.unsqueeze(1) + eps

    def _local_terms(self, inputs: torch.Tensor, targets: torch.Tensor, outputs: torch.Tensor) -> Terms:
        m = self.defaults["n_samples"]
        model = self.model
        z = outputs.detach()
        kind, drawn = self._draws(z, targets)
        if kind == "categorical":
            draws = nn.functional.one_hot(drawn.reshape(-1), z.shape[1]).to(z.dtype)

            def log_lik(pd: dict[str, torch.Tensor], x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
                zz = functional_call(model, pd, (x.unsqueeze(0),)).squeeze(0)
                return (torch.log_softmax(zz, dim=-1) * onehot).sum()
        else:
            draws = drawn.reshape(-1, *z.shape[1:])

            def log_lik(pd: dict[str, torch.Tensor], x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
                zz = functional_call(model, pd, (x.unsqueeze(0),)).squeeze(0)  # onehot: here the drawn target
                return -0.5 * (zz - onehot).pow(2).sum()

        xs = inputs.repeat_interleave(m, dim=0)
        fn = vmap(grad(log_lik), in_dims=(None, 0, 0), randomness="different")
        return {"js": DenseRows(self._blocks(fn(self._detached(), xs, draws), xs.shape[0]))}

    def _objectives(self, targets: torch.Tensor) -> Objectives:
        def objectives(z: torch.Tensor) -> list[torch.Tensor]:
            kind, drawn = self._draws(z.detach(), targets)
            if kind == "categorical":
                logp = torch.log_softmax(z, dim=-1)
                return [logp.gather(1, drawn[:, k:k + 1])[:, 0] for k in range(drawn.shape[1])]
            return [-0.5 * (z - drawn[:, k]).pow(2).reshape(z.shape[0], -1).sum(1) for k in range(drawn.shape[1])]

        return objectives

    def _factored_terms(self, out: Pass, targets: torch.Tensor) -> Terms:
        assert out.extra is not None
        return {"js": out.extra}

    def _direction(self, jac: Rows, terms: Terms) -> Blocks:
        lam = self.param_groups[0]["damping"]
        m = self.defaults["n_samples"]
        js = terms["js"]
        assert isinstance(js, Rows)
        if isinstance(jac, FactoredRows) and isinstance(js, FactoredRows):
            # as EF/iEF: products in the model's dtype, the solve in float64. Js g = (Js Jᵀ) 1 (the two Grams
            # share A Aᵀ); (Jᵀ1 − Jsᵀc)/λ is one product per layer, of the combined output gradients
            coef, fallback = solve_gram(js.gram(), js.cross_gram(jac).sum(1), lam * m)
            self.solve_fallbacks += int(fallback)
            ones = torch.full((jac.rows,), 1.0 / lam, dtype=torch.float64, device=jac.device)
            return tmul_sum([(jac, ones), (js, -coef / lam)])
        memo: dict[int, Any] = {}
        jac64, js64 = jac.to(torch.float64, memo), js.to(torch.float64, memo)
        g = jac64.col_sum()  # Σ_n ∇l_n
        coef, fallback = solve_gram(js64.gram(), js64.mul(g), lam * m)
        self.solve_fallbacks += int(fallback)
        return [((gk - ak) / lam).to(jac.dtype) for gk, ak in zip(g, js64.tmul(coef), strict=True)]

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self._generator is not None:
            sd["sample_generator"] = self._generator.get_state()
        elif self._generator_state is not None:
            sd["sample_generator"] = self._generator_state.clone()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        gen_state = state_dict.pop("sample_generator", None)
        super().load_state_dict(copy.deepcopy(state_dict))
        self._generator = None
        self._generator_state = None if gen_state is None else gen_state.clone()


# -- registry ------------------------------------------------------------------------------------------------
_COMMON = {"damping": 1e-7, "momentum": 0.0, "weight_decay": 0.0, "jacobian": "auto"}


@register_optimizer("ef", defaults={"lr": 0.01, **_COMMON, "normalize": False}, order="second", needs_model=True,
                    needs_loss=True)
def _ef(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn, **hparams: Any) -> EmpiricalFisher:
    """Empirical Fisher natural gradient in the N×N (per-sample) space."""
    return EmpiricalFisher(params, model=model, loss_fn=loss_fn, **hparams)


@register_optimizer("ief", defaults={"lr": 1.0, **_COMMON, "normalize": False}, order="second", needs_model=True,
                    needs_loss=True)
def _ief(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn, **hparams: Any) -> ImprovedEmpiricalFisher:
    """Improved empirical Fisher (iEF, 003): EF rescaled per sample by ‖∂l_n/∂z_n‖²."""
    return ImprovedEmpiricalFisher(params, model=model, loss_fn=loss_fn, **hparams)


@register_optimizer(
    "sf",
    defaults={"lr": 0.1, **_COMMON, "damping": 1.0, "n_samples": 1, "sample_seed": None,
              "likelihood": "auto"},
    order="second",
    needs_model=True,
    needs_loss=True,
)
def _sf(params: Iterable[Any], *, model: nn.Module, loss_fn: LossFn, **hparams: Any) -> SampledFisher:
    """Sampled-Fisher natural gradient F̂(M) by the Woodbury (N·M×N·M) form."""
    return SampledFisher(params, model=model, loss_fn=loss_fn, **hparams)
