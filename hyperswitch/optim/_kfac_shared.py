"""K-FAC's lightweight storage (``shared_storage: true``, docs/algorithms.md#k-fac-and-foof): a factor's running
average and its Cholesky factor in one ``n × n`` buffer, as 000's lightweight K-FAC keeps them.

Per factor ``F`` (``A`` or ``G``, side ``s``) the state holds

- ``S{s}``: ``n × n``; its strict lower triangle is the strict lower triangle of the running average ``F``; its
  upper triangle with the diagonal is ``c · Lᵀ``, where ``L`` is the lower Cholesky factor of ``F + shift·I``
  from the last inverse update;
- ``d{s}``: the diagonal of ``F`` (``n``);
- ``c{s}``: the scale ``c`` (a float; 0 until the first inverse update).

A factor update ``F ← β F + (1 − β) C`` is ``d ← β d + (1 − β) diag(C)`` and ``S ← β S + (1 − β) tril(C, −1)``:
the second also scales the Cholesky part by β, which ``c ← β c`` records, so no mask is needed and the Cholesky
part is never copied. An inverse update writes ``d + shift`` on the diagonal of ``S``, factors its lower triangle
(``torch.linalg.cholesky_ex`` reads only that), then keeps ``S``'s strict lower triangle and adds ``Lᵀ``
(``c = 1``). Applying ``(F + shift·I)⁻¹ = (L Lᵀ)⁻¹ = c² U⁻¹ U⁻ᵀ`` with ``U`` the upper triangle of ``S`` takes two
triangular solves that read only that triangle; ``triangular`` applies ``L⁻¹ = c U⁻ᵀ``. The state is ``n² + n``
numbers per factor instead of ``2n²`` (the running average and a separate Cholesky factor). Transients: the
batch factor ``C`` (as without sharing) and, during an inverse update, one layer's ``L``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from hyperswitch.optim._kfac_inverse import pi_from_traces

State = dict[str, Any]
KEYS = ("SA", "dA", "cA", "SG", "dG", "cG")
# Below this scale the Cholesky part is rescaled to c = 1 (a long inverse interval would otherwise let c² underflow).
MIN_SCALE = 1e-6


def update(st: State, side: str, batch: torch.Tensor, decay: float) -> None:
    """Fold the batch factor ``batch`` (``n × n``, symmetric; overwritten) into side ``side``'s running average."""
    s_key, d_key, c_key = f"S{side}", f"d{side}", f"c{side}"
    if s_key not in st:
        st[d_key] = batch.diagonal().clone()
        st[s_key] = batch.tril_(-1)
        st[c_key] = 0.0
        return
    st[d_key].mul_(decay).add_(batch.diagonal(), alpha=1.0 - decay)
    st[s_key].mul_(decay).add_(batch.tril_(-1), alpha=1.0 - decay)
    c = float(st[c_key]) * decay
    if 0.0 < c < MIN_SCALE:  # rare: bring the Cholesky part back to scale 1 (one transient copy of it)
        upper = torch.triu(st[s_key])
        st[s_key].tril_(-1).add_(upper, alpha=1.0 / c)
        c = 1.0
    st[c_key] = c


def ready(st: State, has_g: bool) -> bool:
    return "SA" in st and (not has_g or "SG" in st)


def has_inverse(st: State, has_g: bool) -> bool:
    return float(st.get("cA", 0.0)) > 0 and (not has_g or float(st.get("cG", 0.0)) > 0)


def _factor(st: State, side: str, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The lower Cholesky factor of ``F + shift·I`` (a transient) and ``S``'s diagonal before it was overwritten
    with ``d + shift`` (put back on failure: the previous preconditioner stays usable)."""
    s, d = st[f"S{side}"], st[f"d{side}"]
    diag = s.diagonal()
    kept = diag.clone()
    diag.copy_(d).add_(shift)
    chol, info = torch.linalg.cholesky_ex(s)
    if int(info) != 0:
        chol64, info64 = torch.linalg.cholesky_ex(s.double())
        if int(info64) != 0:
            diag.copy_(kept)
            raise RuntimeError(f"K-FAC factor is not positive definite even in float64 (info={int(info64)}); "
                               "increase damping")
        chol = chol64.to(s.dtype)
    return chol, kept


def build(st: State, has_g: bool, damping: float, pi_correction: bool) -> None:
    """The inverse update of one layer: both sides, or (``RuntimeError``) neither."""
    root = math.sqrt(damping)
    pi = 1.0
    if pi_correction and has_g:
        da, dg = st["dA"], st["dG"]
        pi = pi_from_traces(float(da.sum()) / da.shape[0], float(dg.sum()) / dg.shape[0])
    sides = [("A", root * pi)] + ([("G", root / pi)] if has_g else [])
    done: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for side, shift in sides:
        try:
            chol, kept = _factor(st, side, shift)
        except RuntimeError:
            for other, _, other_kept in done:  # the sides already factored get their diagonal back
                st[f"S{other}"].diagonal().copy_(other_kept)
            raise
        done.append((side, chol, kept))
    for side, chol, _ in done:
        st[f"S{side}"].tril_(-1).add_(chol.mT)
        st[f"c{side}"] = 1.0


def apply(st: State, m: torch.Tensor, has_g: bool, triangular: bool) -> torch.Tensor:
    """The preconditioned gradient matrix: ``G⁻¹ M A⁻¹`` (``cholesky``) or ``X⁻¹ M Y⁻ᵀ`` (``triangular``), with
    the damped factors' Cholesky factors ``X`` (of G) and ``Y`` (of A) read from the shared buffers."""
    ua, ca = st["SA"], float(st["cA"])
    if has_g:
        ug, cg = st["SG"], float(st["cG"])
        y = torch.linalg.solve_triangular(ug.mT, m, upper=False)  # U_Gᵀ⁻¹ M
        if triangular:  # X⁻¹ M = (U_G / c_G)ᵀ⁻¹ M
            m = y * cg
        else:  # G⁻¹ M = c_G² U_G⁻¹ U_G⁻ᵀ M
            m = torch.linalg.solve_triangular(ug, y, upper=True).mul_(cg * cg)
    # M Y⁻ᵀ = c_A M U_A⁻¹; M A⁻¹ = c_A² M U_A⁻¹ U_A⁻ᵀ
    z = torch.linalg.solve_triangular(ua, m, upper=True, left=False)
    if triangular:
        return z.mul_(ca)
    return torch.linalg.solve_triangular(ua.mT, z, upper=False, left=False).mul_(ca * ca)
