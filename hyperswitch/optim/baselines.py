"""First-order baselines from ``pytorch_optimizer`` (4.1.0), registered by name with pinned defaults.

Every constructor argument that changes the math is passed explicitly: those in the registry defaults can
be searched; the others are fixed here (listed below the table), so a library upgrade cannot change them.

| name        | class      | lr   | beta1 | beta2 | eps  | weight_decay | others                        |
|-------------|------------|------|-------|-------|------|--------------|-------------------------------|
| lamb        | Lamb       | 1e-3 | 0.9   | 0.999 | 1e-6 | 0            |                               |
| swats       | SWATS      | 1e-3 | 0.9   | 0.999 | 1e-6 | 0            | nesterov false                |
| padam       | PAdam      | 0.1  | 0.9   | 0.999 | 1e-8 | 0            | partial 0.25                  |
| adabound    | AdaBound   | 1e-3 | 0.9   | 0.999 | 1e-8 | 0            | final_lr 0.1, gamma 1e-3      |
| lion        | Lion       | 1e-4 | 0.9   | 0.99  |      | 0            |                               |
| prodigy     | Prodigy    | 1.0  | 0.9   | 0.999 | 1e-8 | 0            | beta3 None (√beta2), d0 1e-6, |
|             |            |      |       |       |      |              | d_coef 1, growth_rate inf     |
| dadapt_adam | DAdaptAdam | 1.0  | 0.9   | 0.999 | 1e-8 | 0            | d0 1e-6, growth_rate inf      |

Fixed here (not searchable):
- lamb: no rectification, ``grad_averaging`` on, trust ratio on (``adam`` false),
  no ``pre_norm`` (so ``max_grad_norm`` 1.0 is unused);
- swats, padam, dadapt_adam: weight decay added to the gradient (coupled); swats, adabound: no AMSBound;
- lamb, adabound, lion, prodigy: decoupled weight decay (scaled by lr);
- prodigy: no bias correction, no safeguard warm-up; dadapt_adam: no bias correction.

All are ``order: first`` and stepped as ``zero_grad(); loss.backward(); step()``; ``foreach`` is left to the
library (``None``: batched kernels where supported), and ``maximize`` is off. Values are checked here
before the library sees them (its own messages do not all echo the value): ``ValueError("lr must be > 0,
but got -1")``. ``prodigy`` and ``dadapt_adam`` adapt their own step size; GeN refuses to wrap them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import torch

from hyperswitch.optim.registry import register_optimizer


def _lib() -> ModuleType:
    """``pytorch_optimizer``, imported on first use (it adds ~1 s to ``import hyperswitch.optim``)."""
    import pytorch_optimizer

    return pytorch_optimizer

_RULES = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 1": lambda v: v >= 1,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 0.5]": lambda v: 0 < v <= 0.5,
}


def _check(**values: tuple[Any, str]) -> None:
    """``name=(value, rule)``: ``ValueError("NAME must be RULE, but got VALUE")`` at the first broken rule."""
    for name, (value, rule) in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"{name} must be a number {rule}, but got {value!r}")
        if not _RULES[rule](value):
            raise ValueError(f"{name} must be {rule}, but got {value!r}")
        if math.isinf(value) and name != "growth_rate":
            raise ValueError(f"{name} must be finite, but got {value!r}")


# The factories' hyperparameters are typed Any: _check (through _adam_like) rejects whatever is not a number in
# range, with the message a user sees.
def _adam_like(lr: Any, beta1: Any, beta2: Any, weight_decay: Any, **others: tuple[Any, str]) -> None:
    _check(lr=(lr, "> 0"), beta1=(beta1, "in [0, 1)"), beta2=(beta2, "in [0, 1)"),
           weight_decay=(weight_decay, ">= 0"), **others)


_ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999}


@register_optimizer("lamb", defaults={**_ADAM, "eps": 1e-6, "weight_decay": 0.0})
def _lamb(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, eps: Any,
          weight_decay: Any) -> torch.optim.Optimizer:
    """LAMB (You et al.): Adam with a layer-wise trust ratio."""
    _adam_like(lr, beta1, beta2, weight_decay, eps=(eps, "> 0"))
    return _lib().Lamb(params, lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, weight_decouple=True,
                       fixed_decay=False, rectify=False, degenerated_to_sgd=False, grad_averaging=True,
                       max_grad_norm=1.0, adam=False, pre_norm=False, eps=eps, foreach=None, maximize=False)


@register_optimizer("swats", defaults={**_ADAM, "eps": 1e-6, "weight_decay": 0.0, "nesterov": False})
def _swats(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, eps: Any, weight_decay: Any,
           nesterov: Any) -> torch.optim.Optimizer:
    """SWATS (Keskar & Socher): Adam that switches to SGD once its projected rate settles."""
    _adam_like(lr, beta1, beta2, weight_decay, eps=(eps, "> 0"))
    return _lib().SWATS(params, lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, weight_decouple=False,
                        fixed_decay=False, ams_bound=False, nesterov=bool(nesterov), eps=eps, maximize=False,
                        foreach=None)


@register_optimizer("padam", defaults={**_ADAM, "lr": 0.1, "partial": 0.25, "eps": 1e-8, "weight_decay": 0.0})
def _padam(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, partial: Any, eps: Any,
           weight_decay: Any) -> torch.optim.Optimizer:
    """Padam (Chen & Gu): partially adaptive Adam, v^partial in the denominator."""
    _adam_like(lr, beta1, beta2, weight_decay, partial=(partial, "in (0, 0.5]"), eps=(eps, "> 0"))
    return _lib().PAdam(params, lr=lr, betas=(beta1, beta2), partial=partial, weight_decay=weight_decay,
                        weight_decouple=False, fixed_decay=False, eps=eps, maximize=False, foreach=None)


@register_optimizer(
    "adabound",
    defaults={**_ADAM, "final_lr": 0.1, "gamma": 1e-3, "eps": 1e-8, "weight_decay": 0.0},
)
def _adabound(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, final_lr: Any, gamma: Any, eps: Any,
              weight_decay: Any) -> torch.optim.Optimizer:
    """AdaBound (Luo et al.): Adam with per-coordinate rates clipped into bounds that converge to final_lr."""
    _adam_like(lr, beta1, beta2, weight_decay, final_lr=(final_lr, "> 0"), gamma=(gamma, "> 0"),
               eps=(eps, "> 0"))
    return _lib().AdaBound(params, lr=lr, final_lr=final_lr, betas=(beta1, beta2), gamma=gamma,
                           weight_decay=weight_decay, weight_decouple=True, fixed_decay=False,
                           ams_bound=False, eps=eps, maximize=False, foreach=None)


@register_optimizer("lion", defaults={"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0})
def _lion(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, weight_decay: Any) -> torch.optim.Optimizer:
    """Lion (Chen et al.): sign of an interpolated momentum."""
    _adam_like(lr, beta1, beta2, weight_decay)
    return _lib().Lion(params, lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, weight_decouple=True,
                       fixed_decay=False, foreach=None, maximize=False)


@register_optimizer(
    "prodigy",
    defaults={**_ADAM, "lr": 1.0, "beta3": None, "d0": 1e-6, "d_coef": 1.0, "growth_rate": math.inf,
              "eps": 1e-8, "weight_decay": 0.0},
)
def _prodigy(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, beta3: Any, d0: Any, d_coef: Any,
             growth_rate: Any, eps: Any, weight_decay: Any) -> torch.optim.Optimizer:
    """Prodigy (Mishchenko & Defazio): Adam with a D-adapted step size."""
    others: dict[str, tuple[Any, str]] = {"d0": (d0, "> 0"), "d_coef": (d_coef, "> 0"),
                                          "growth_rate": (growth_rate, ">= 1"), "eps": (eps, "> 0")}
    if beta3 is not None:
        others["beta3"] = (beta3, "in [0, 1)")
    _adam_like(lr, beta1, beta2, weight_decay, **others)
    return _lib().Prodigy(params, lr=lr, betas=(beta1, beta2), beta3=beta3, d0=d0, d_coef=d_coef,
                          growth_rate=growth_rate, weight_decay=weight_decay, weight_decouple=True,
                          fixed_decay=False, bias_correction=False, safeguard_warmup=False, eps=eps,
                          maximize=False, foreach=None)


@register_optimizer(
    "dadapt_adam",
    defaults={**_ADAM, "lr": 1.0, "d0": 1e-6, "growth_rate": math.inf, "eps": 1e-8, "weight_decay": 0.0},
)
def _dadapt_adam(params: Iterable[Any], *, lr: Any, beta1: Any, beta2: Any, d0: Any, growth_rate: Any, eps: Any,
                 weight_decay: Any) -> torch.optim.Optimizer:
    """D-Adaptation Adam (Defazio & Mishchenko): Adam with a D-adapted step size."""
    _adam_like(lr, beta1, beta2, weight_decay, d0=(d0, "> 0"), growth_rate=(growth_rate, ">= 1"),
               eps=(eps, "> 0"))
    return _lib().DAdaptAdam(params, lr=lr, betas=(beta1, beta2), d0=d0, growth_rate=growth_rate,
                             weight_decay=weight_decay, weight_decouple=False, fixed_decay=False,
                             bias_correction=False, eps=eps, maximize=False, foreach=None)
