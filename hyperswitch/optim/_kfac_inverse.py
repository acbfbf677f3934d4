"""K-FAC inverse math: one small class per ``inverse`` method.

Each method turns the damped factors ``A + π√λ I`` and ``G + (√λ/π) I`` (``G`` is ``None`` for FOOF, meaning
``G = I`` and no damping on that side, ``A + √λ I``) into a cache of tensors (stored in the optimizer state),
and applies the cache to a gradient matrix ``M = [∇W | ∇b]``. ``π = 1`` splits the damping evenly; with
``pi_correction`` it is Martens & Grosse's (2015, §6.3) ``π = sqrt((tr(A)/dim A) / (tr(G)/dim G))``
(:func:`pi_factor`; docs/algorithms.md#k-fac-and-foof). Below ``√λ`` stands for the shift of each side:

- ``eigen``: ``A = Q_A diag(d_A) Q_Aᵀ`` (eigenvalues clamped at 0), cache ``Q`` and ``1/(d + √λ)``;
  ``Q_G [(Q_Gᵀ M Q_A) ⊘ ((d_G+√λ)(d_A+√λ)ᵀ)] Q_Aᵀ = (G+√λI)⁻¹ M (A+√λI)⁻¹``. The reference.
- ``cholesky``: lower Cholesky factors ``A + √λ I = Y Yᵀ``, ``G + √λ I = X Xᵀ``; the same product by two
  ``torch.cholesky_solve`` calls. Same numbers as ``eigen`` up to round-off, about an order of magnitude
  cheaper to update.
- ``triangular``: the same Cholesky factors; ``X⁻¹ M Y⁻ᵀ`` by two triangular solves. A different
  preconditioner (000's lightweight replacement), not an approximation of the same numbers.

Damping is applied when the cache is built: a damping schedule takes effect at the next inverse update.
Decompositions run in the factor's dtype; a Cholesky that fails there (float32 round-off) is redone in
float64 and cast back.
"""

from __future__ import annotations

import abc
import math

import torch

Cache = dict[str, torch.Tensor]


def _damped(f: torch.Tensor, shift: float) -> torch.Tensor:
    """``f + shift·I`` as a new tensor (the shift added to a copy's diagonal: no identity matrix built)."""
    out = f.clone()
    out.diagonal().add_(shift)
    return out


def pi_factor(a: torch.Tensor, g: torch.Tensor) -> float:
    """``π = sqrt((tr(A)/dim A) / (tr(G)/dim G))``, the factored Tikhonov split (Martens & Grosse 2015, §6.3);
    1 where either mean eigenvalue is not a positive finite number (e.g. ``G = 0`` before any signal)."""
    return pi_from_traces(float(torch.diagonal(a).sum()) / a.shape[0], float(torch.diagonal(g).sum()) / g.shape[0])


def pi_from_traces(ta: float, tg: float) -> float:
    """``π`` from the mean eigenvalues ``tr(A)/dim A`` and ``tr(G)/dim G`` (see :func:`pi_factor`)."""
    pi = math.sqrt(ta / tg) if ta > 0 and tg > 0 and math.isfinite(ta) and math.isfinite(tg) else 1.0
    return pi if math.isfinite(pi) and pi > 0 else 1.0


def shifts(a: torch.Tensor, g: torch.Tensor | None, damping: float, pi_correction: bool) -> tuple[float, float]:
    """The diagonal shifts ``(π√λ, √λ/π)`` of ``A`` and ``G`` (``π = 1`` without ``pi_correction`` or for FOOF)."""
    root = math.sqrt(damping)
    pi = pi_factor(a, g) if pi_correction and g is not None else 1.0
    return root * pi, root / pi


def _cholesky(f: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(f)
    if int(info) != 0:
        chol64, info64 = torch.linalg.cholesky_ex(f.double())
        if int(info64) != 0:
            raise RuntimeError(f"K-FAC factor is not positive definite even in float64 (info={int(info64)}); "
                               "increase damping")
        chol = chol64.to(f.dtype)
    return chol


class InverseMethod(abc.ABC):
    name = ""

    @abc.abstractmethod
    def factor_cache(self, f: torch.Tensor, shift: float, side: str) -> Cache:
        """The cache for one factor damped as ``f + shift·I`` (``side`` is ``"A"`` or ``"G"``; keys are
        prefixed with it)."""

    @abc.abstractmethod
    def apply(self, cache: Cache, m: torch.Tensor, has_g: bool) -> torch.Tensor:
        """The preconditioned gradient matrix."""

    def build(self, a: torch.Tensor, g: torch.Tensor | None, damping: float, pi_correction: bool = False) -> Cache:
        shift_a, shift_g = shifts(a, g, damping, pi_correction)
        cache = self.factor_cache(a, shift_a, "A")
        if g is not None:
            cache.update(self.factor_cache(g, shift_g, "G"))
        return cache


class EigenInverse(InverseMethod):
    name = "eigen"

    def factor_cache(self, f: torch.Tensor, shift: float, side: str) -> Cache:
        d, q = torch.linalg.eigh(f)
        return {f"Q{side}": q, f"invd{side}": 1.0 / (d.clamp(min=0.0) + shift)}

    def apply(self, cache: Cache, m: torch.Tensor, has_g: bool) -> torch.Tensor:
        qa, inva = cache["QA"], cache["invdA"]
        if not has_g:
            return (m @ qa).mul_(inva) @ qa.t()
        qg, invg = cache["QG"], cache["invdG"]
        inner = (qg.t() @ m @ qa).mul_(invg[:, None] * inva[None, :])  # in place: one out×in temporary less
        return qg @ inner @ qa.t()


class CholeskyInverse(InverseMethod):
    name = "cholesky"

    def factor_cache(self, f: torch.Tensor, shift: float, side: str) -> Cache:
        return {f"L{side}": _cholesky(_damped(f, shift))}

    def apply(self, cache: Cache, m: torch.Tensor, has_g: bool) -> torch.Tensor:
        if has_g:
            m = torch.cholesky_solve(m, cache["LG"])  # G⁻¹ M
        # M A⁻¹ = (A⁻¹ Mᵀ)ᵀ (A symmetric)
        return torch.cholesky_solve(m.t(), cache["LA"]).t()


class TriangularInverse(CholeskyInverse):
    name = "triangular"

    def apply(self, cache: Cache, m: torch.Tensor, has_g: bool) -> torch.Tensor:
        if has_g:
            m = torch.linalg.solve_triangular(cache["LG"], m, upper=False)  # X⁻¹ M
        # M Y⁻ᵀ: solve Z Yᵀ = M
        return torch.linalg.solve_triangular(cache["LA"].t(), m, upper=True, left=False)


INVERSE_METHODS: dict[str, InverseMethod] = {
    m.name: m for m in (EigenInverse(), CholeskyInverse(), TriangularInverse())
}
