"""Which lr/damping ratio fixes the step size, per optimizer (docs/algorithms.md#damping-ratio).

When the damping dominates the curvature, each optimizer's first step tends to ``lr · D⁻¹ · g``-like limits:

- ``kfac``: ``(G + √λI)⁻¹ M (A + √λI)⁻¹ → M/λ``: the step is fixed along ``lr/λ``;
- ``foof``: ``M (A + √λI)⁻¹ → M/√λ``: fixed along ``lr/√λ`` (not ``lr/λ``);
- ``shampoo`` (``graft: none``): ``(L + εI)^(−1/4) Gr (R + εI)^(−1/4) → Gr/√ε`` (AdaGrad on biases ``g/√(g² + ε)``
  alike): fixed along ``lr/√ε``; with ``graft: sgd`` or ``adam`` the step's norm does not depend on ``ε`` at all
  (fixed along ``lr``);
- ``ef`` / ``sf``: ``Jᵀ(JJᵀ + λI)⁻¹1 → Jᵀ1/λ = N·∇L/λ``: fixed along ``lr·N/λ``; ``ief``: ``Jᵀs/λ``, along ``lr/λ``;
  ``ef`` with ``normalize: true``: ``‖Δw‖ = lr`` exactly, fixed along ``lr``.

Every optimizer is built from the registry on one tiny float64 model and batch; the test takes one step from the
same start at growing dampings with ``lr`` on the derived line and checks that the update itself converges, then
that the naive ``lr/damping`` line does not fix it where the derived ratio differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim import build_optimizer

DT = torch.float64
N = 8
LAMBDAS = (1e4, 1e6, 1e8)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(DT)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, 5, generator=g, dtype=DT), torch.randint(0, 3, (N,), generator=g)


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# name -> (spec without lr and damping, the damping key, the derived lr(λ) for unit ratio)
Ratio = Callable[[float], float]
CASES: dict[str, tuple[dict, str, Ratio]] = {
    "kfac": ({"name": "kfac", "momentum": 0.0, "inverse_interval": 1}, "damping", lambda lam: lam),
    "kfac_pi": ({"name": "kfac", "momentum": 0.0, "inverse_interval": 1, "pi_correction": True}, "damping",
                lambda lam: lam),
    "kfac_eigen": ({"name": "kfac", "momentum": 0.0, "inverse_interval": 1, "inverse": "eigen"}, "damping",
                   lambda lam: lam),
    "foof": ({"name": "foof", "momentum": 0.0, "inverse_interval": 1}, "damping", math.sqrt),
    "shampoo": ({"name": "shampoo", "momentum": 0.0, "inverse_interval": 1, "graft": "none"}, "epsilon",
                math.sqrt),
    "shampoo_graft_sgd": ({"name": "shampoo", "momentum": 0.0, "inverse_interval": 1, "graft": "sgd"}, "epsilon",
                          lambda lam: 1.0),
    "shampoo_graft_adam": ({"name": "shampoo", "momentum": 0.0, "inverse_interval": 1, "graft": "adam"},
                           "epsilon", lambda lam: 1.0),
    "ef": ({"name": "ef"}, "damping", lambda lam: lam / N),
    "ef_normalised": ({"name": "ef", "normalize": True}, "damping", lambda lam: 1.0),
    "ief": ({"name": "ief"}, "damping", lambda lam: lam),
    "sf": ({"name": "sf", "sample_seed": 0}, "damping", lambda lam: lam / N),
}
# the optimizers whose derived ratio is not lr/damping
NOT_LR_OVER_DAMPING = ("foof", "shampoo", "shampoo_graft_sgd", "shampoo_graft_adam", "ef_normalised")


def first_update(case: str, lr: float, damping: float) -> torch.Tensor:
    """The parameter change of one step from the same start, the optimizer built by the registry."""
    spec, key, _ = CASES[case]
    model = tiny_model()
    x, y = batch()
    opt = build_optimizer({**spec, "lr": lr, key: damping}, model, F.cross_entropy)
    before = flat(model)
    if spec["name"] in ("ef", "ief", "sf"):
        opt.batch_step(x, y)
    else:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return flat(model) - before


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_derived_ratio_fixes_the_update_as_damping_grows(case):
    ratio = CASES[case][2]
    updates = [first_update(case, 0.1 * ratio(lam), lam) for lam in LAMBDAS]
    limit = updates[-1]
    assert torch.isfinite(limit).all() and limit.norm() > 0
    for u, lam in zip(updates[:-1], LAMBDAS[:-1], strict=True):
        # the update itself (not only its norm) converges; 1/√λ-order corrections at λ = 1e4 are ~1e-2
        assert (u - limit).norm() / limit.norm() < 0.05, (case, lam)
    norms = [float(u.norm()) for u in updates]
    assert max(norms) / min(norms) < 1.05, (case, norms)


@pytest.mark.parametrize("case", NOT_LR_OVER_DAMPING)
def test_the_naive_lr_over_damping_line_does_not_fix_the_update(case):
    """Along lr = 0.1·λ the step of FOOF and Shampoo grows like √λ (×100 over λ 1e4 → 1e8), grafted Shampoo's
    and normalised EF's like λ; only K-FAC (and plain EF/iEF/SF up to N) are fixed along it."""
    small, large = (float(first_update(case, 0.1 * lam, lam).norm()) for lam in (LAMBDAS[0], LAMBDAS[-1]))
    assert large / small > 50, (case, small, large)


@pytest.mark.parametrize("case", ["kfac", "kfac_pi", "ief"])
def test_for_kfac_and_ief_the_naive_line_is_the_derived_one(case):
    small, large = (float(first_update(case, 0.1 * lam, lam).norm()) for lam in (LAMBDAS[0], LAMBDAS[-1]))
    assert large / small == pytest.approx(1.0, rel=0.05)


def test_limits_are_the_closed_forms():
    """The limits themselves, on the derived lines with ratio c: K-FAC, FOOF, Shampoo (graft none), EF and SF
    → −c·∇L (the factors are O(1) here, negligible beside √λ); normalised EF → length c along −∇L."""
    model = tiny_model()
    x, y = batch()
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(F.cross_entropy(model(x), y),
                                                                  list(model.parameters()))])
    lam = LAMBDAS[-1]
    for case in ("kfac", "foof", "shampoo", "ef", "sf"):
        u = first_update(case, 0.1 * CASES[case][2](lam), lam)
        assert (u + 0.1 * grad).norm() / (0.1 * grad).norm() < 1e-3, case
    u = first_update("ef_normalised", 0.1, lam)
    assert float(u.norm()) == pytest.approx(0.1, rel=1e-9)
    assert (u / u.norm() + grad / grad.norm()).norm() < 1e-3
