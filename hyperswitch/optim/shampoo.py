"""Shampoo (Gupta, Koren & Singer 2018): one left and one right preconditioner per matrix.

Described in docs/algorithms.md#shampoo.

For a parameter with 2 or more dimensions its gradient is viewed as a matrix ``Gr`` of shape
``(shape[0], numel/shape[0])`` (Conv2d: ``(out, in·kh·kw)``). Every step (unless frozen)
``Lm += Gr Grᵀ``, ``Rm += Grᵀ Gr``; every ``inverse_interval`` steps (and at the first) the roots
``(Lm + ε I)^(-1/4)`` and ``(Rm + ε I)^(-1/4)`` are recomputed by a symmetric eigendecomposition **in
float64** (eigenvalues clamped at ``ε`` against round-off), cast back to the parameter's dtype and cached;
the direction is ``d = (Lm + εI)^(-1/4) Gr (Rm + εI)^(-1/4)`` with the cached roots. The statistics include
the current gradient (Algorithm 1 of the paper). A root that cannot be computed (non-finite statistics
after a divergence) keeps the previous roots (raw gradient if none) with a ``RuntimeWarning``: the training
loop, not the optimizer, reports the divergence.

1-D (and 0-D) parameters (biases, norms) get the diagonal analogue, AdaGrad: ``acc += g²``,
``d = g / sqrt(acc + ε)``, computed every step.

``graft``: ``none``; ``sgd`` rescales each parameter's ``d`` to the norm of its gradient; ``adam`` rescales it
to the norm of Adam's bias-corrected direction ``m̂ / (sqrt(v̂) + 1e-8)`` with fixed betas (0.9, 0.999)
(the graft's moments are kept in the state). ``kl_clip: κ`` (off by default) then scales every direction by
``ν = min(1, sqrt(κ / |Σ lr²·gᵀd|))`` (the sum over all parameters; K-FAC's KL clip,
docs/algorithms.md#shampoo). Then, like SGD: ``d ← d + weight_decay·w``, ``buf ← momentum·buf + d``,
``w ← w − lr·buf``.

Defaults (pinned; registry entry ``shampoo``):

| name             | default | rule              | schedule? |
|------------------|---------|-------------------|-----------|
| lr               | 0.01    | >= 0              | yes       |
| momentum         | 0.9     | in [0, 1)         | no        |
| weight_decay     | 0.0     | >= 0              | no        |
| epsilon          | 1e-4    | > 0               | yes       |
| inverse_interval | 10      | integer >= 1      | yes       |
| graft            | "none"  | none, sgd, adam   | no        |
| kl_clip          | None    | None or > 0       | no        |

Memory is ``m² + n²`` (plus the same again for the cached roots) per ``m × n`` matrix, so very wide layers
(embeddings) are expensive; there is no blocking. Gradients are assumed already averaged across workers, so
every worker holds identical statistics without communication.

Switching API as K-FAC: ``precondition_grads()`` (cached roots, statistics not updated, graft included, no
weight decay, momentum or KL clip), ``freeze()``, ``release()`` (then plain SGD(momentum)), ``state_bytes()``. The SGD
update, group checks, ``lr`` property and checkpoint framing are shared with K-FAC
(``_preconditioned.PreconditionedSGD``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hyperswitch.optim import _schedule
from hyperswitch.optim._preconditioned import PreconditionedSGD, check_choice, check_kl_clip, grad_of
from hyperswitch.optim._schedule import Spec
from hyperswitch.optim.kfac import SPECS as KFAC_SPECS
from hyperswitch.optim.registry import register_optimizer

SHAMPOO_DEFAULTS: dict[str, Any] = {
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "epsilon": 1e-4,
    "inverse_interval": 10,
    "graft": "none",
    "kl_clip": None,
}
SPECS = {
    "lr": KFAC_SPECS["lr"],
    "epsilon": Spec("epsilon", "must be > 0", lambda v: v > 0),
    "inverse_interval": KFAC_SPECS["inverse_interval"],
}
GRAFTS = ("none", "sgd", "adam")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
_STAT_KEYS = ("L", "R", "L_root", "R_root", "diag", "adam_m", "adam_v")
_GLOBAL = ("epsilon", "inverse_interval", "graft", "kl_clip")


def inverse_fourth_root(mat: torch.Tensor, eps: float) -> torch.Tensor:
    """``(mat + eps·I)^(-1/4)`` for a symmetric PSD ``mat``, by float64 eigh, in ``mat``'s dtype."""
    m64 = mat.to(torch.float64, copy=True)  # a copy even for a float64 ``mat``: the shift goes on its diagonal
    m64.diagonal().add_(eps)
    d, q = torch.linalg.eigh(m64)
    return ((q * d.clamp(min=eps).pow(-0.25)) @ q.t()).to(mat.dtype)


class Shampoo(PreconditionedSGD):
    """Shampoo with optional grafting; see the module doc."""

    STATE_KEY = "shampoo"
    SPECS = SPECS

    def __init__(
        self,
        params: Iterable[Any],
        *,
        lr: Any = SHAMPOO_DEFAULTS["lr"],
        momentum: float = SHAMPOO_DEFAULTS["momentum"],
        weight_decay: float = SHAMPOO_DEFAULTS["weight_decay"],
        epsilon: Any = SHAMPOO_DEFAULTS["epsilon"],
        inverse_interval: Any = SHAMPOO_DEFAULTS["inverse_interval"],
        graft: str = SHAMPOO_DEFAULTS["graft"],
        kl_clip: float | None = SHAMPOO_DEFAULTS["kl_clip"],
    ) -> None:
        self.epsilon = _schedule.check(epsilon, SPECS["epsilon"])
        self.inverse_interval = _schedule.check(inverse_interval, SPECS["inverse_interval"])
        self.graft = check_choice(graft, "graft", GRAFTS)
        self.kl_clip = check_kl_clip(kl_clip)
        super().__init__(params, lr, momentum, weight_decay)

    # -- statistics ----------------------------------------------------------------------------------
    def _accumulate(self, p: nn.Parameter) -> None:
        st, g = self.state[p], grad_of(p)
        if p.dim() >= 2:
            gr = g.reshape(p.shape[0], -1)
            if "L" not in st:
                st["L"] = torch.zeros(gr.shape[0], gr.shape[0], dtype=g.dtype, device=g.device)
                st["R"] = torch.zeros(gr.shape[1], gr.shape[1], dtype=g.dtype, device=g.device)
            st["L"].addmm_(gr, gr.t())
            st["R"].addmm_(gr.t(), gr)
        else:
            if "diag" not in st:
                st["diag"] = torch.zeros_like(g)
            st["diag"].addcmul_(g, g)

    def _update_roots(self, step: int) -> None:
        due = self._due(self.last_inverse_step, "inverse_interval", step)
        eps = float(_schedule.value_at(self.epsilon, step, SPECS["epsilon"]))
        built = False
        for p in self._params():
            st = self.state[p]
            if "L" in st and (due or "L_root" not in st):
                try:
                    roots = inverse_fourth_root(st["L"], eps), inverse_fourth_root(st["R"], eps)
                except RuntimeError as exc:  # non-finite statistics (a diverged run)
                    warnings.warn(f"Shampoo: root update failed at step {step}; keeping the previous roots "
                                  f"(raw gradient if none) ({exc})", RuntimeWarning, stacklevel=4)
                    continue
                st["L_root"], st["R_root"] = roots
                built = True
        if due and built:
            self.last_inverse_step = step
            self.inverse_updates += 1

    # -- directions ----------------------------------------------------------------------------------
    def _direction(self, p: nn.Parameter, step: int, commit: bool) -> torch.Tensor:
        """Shampoo (or AdaGrad) direction of ``p``, grafted; ``commit`` stores the graft's Adam moments."""
        st, g = self.state[p], grad_of(p)
        if "L_root" in st:
            d = (st["L_root"] @ g.reshape(p.shape[0], -1) @ st["R_root"]).reshape(p.shape)
        elif "diag" in st:
            eps = float(_schedule.value_at(self.epsilon, step, SPECS["epsilon"]))
            d = g / (st["diag"] + eps).sqrt()
        else:
            d = g.clone()
        if self.graft == "none" or self.released:
            return d
        if self.graft == "sgd":
            ref = g
        else:
            b1, b2 = ADAM_BETAS
            m = st["adam_m"] * b1 + g * (1 - b1) if "adam_m" in st else g * (1 - b1)
            v = st["adam_v"] * b2 + g * g * (1 - b2) if "adam_v" in st else g * g * (1 - b2)
            if commit:
                st["adam_m"], st["adam_v"] = m, v
            t = step + 1
            ref = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + ADAM_EPS)
        dn = d.norm()
        return d * (ref.norm() / dn) if dn > 0 else d

    def _step_directions(self, step: int) -> dict[nn.Parameter, torch.Tensor]:
        if not self.frozen:
            for p in self._params():
                self._accumulate(p)
            self._update_roots(step)
        return {p: self._direction(p, step, commit=True) for p in self._params()}

    # -- switching API -------------------------------------------------------------------------------
    @torch.no_grad()
    def precondition_grads(self) -> dict[nn.Parameter, torch.Tensor]:
        """Direction at lr 1 for every parameter with a grad from the cached roots / accumulators (the raw
        gradient where there are none); updates nothing; graft included, no weight decay or momentum."""
        if self.released:
            return {p: grad_of(p).detach().clone() for p in self._params()}
        return {p: self._direction(p, self.steps, commit=False) for p in self._params()}

    def _release_state(self) -> None:
        """Free the statistics, roots and graft state (``release``: later steps are plain SGD(momentum))."""
        for st in self.state.values():
            for k in _STAT_KEYS:
                st.pop(k, None)

    # -- checkpointing -------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps, "last_inverse_step": self.last_inverse_step,
                "inverse_updates": self.inverse_updates, "frozen": self.frozen,
                "released": self.released, **{k: getattr(self, k) for k in _GLOBAL}}


@register_optimizer("shampoo", defaults=SHAMPOO_DEFAULTS, order="second")
def _shampoo(params: Iterable[Any], **hparams: Any) -> Shampoo:
    """Shampoo: left/right inverse fourth roots per weight matrix, optional SGD/Adam grafting."""
    return Shampoo(params, **hparams)
