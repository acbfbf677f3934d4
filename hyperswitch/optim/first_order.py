"""First-order optimizers from ``torch.optim``, registered by name with pinned defaults.

| name    | torch class        | defaults                                                     |
|---------|--------------------|--------------------------------------------------------------|
| sgd     | SGD                | lr 0.1, weight_decay 0                                       |
| sgdm    | SGD (momentum)     | lr 0.1, momentum 0.9, nesterov false, weight_decay 0         |
| adam    | Adam               | lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0    |
| adamw   | AdamW              | lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 1e-2 |
| rmsprop | RMSprop            | lr 1e-2, alpha 0.99, eps 1e-8, momentum 0, weight_decay 0    |
| adagrad | Adagrad            | lr 1e-2, eps 1e-10, weight_decay 0                           |

torch validates values eagerly ("Invalid learning rate: -1.0"); ``build_optimizer`` turns that into a
``ConfigError`` naming the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from hyperswitch.optim.registry import register_optimizer


def _check(name: str, value: float, rule: str) -> None:
    """Range checks torch.optim does not make itself (it accepts momentum 1.5, for instance)."""
    ok = {
        ">= 0": value >= 0,
        "> 0": value > 0,
        "in [0, 1)": 0 <= value < 1,
    }[rule]
    if not ok:
        raise ValueError(f"{name} must be {rule}, but got {value}")


def _common(lr: float, weight_decay: float, **others: tuple[float, str]) -> None:
    _check("lr", lr, ">= 0")
    _check("weight_decay", weight_decay, ">= 0")
    for name, (value, rule) in others.items():
        _check(name, value, rule)


@register_optimizer("sgd", defaults={"lr": 0.1, "weight_decay": 0.0})
def _sgd(params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.SGD:
    """Plain stochastic gradient descent."""
    _common(lr, weight_decay)
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@register_optimizer(
    "sgdm", defaults={"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
)
def _sgdm(params: Iterable[Any], *, lr: float, momentum: float, nesterov: bool,
          weight_decay: float) -> torch.optim.SGD:
    """SGD with (heavy-ball or Nesterov) momentum."""
    _common(lr, weight_decay, momentum=(momentum, "in [0, 1)"))
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=bool(nesterov), weight_decay=weight_decay)


_ADAM_DEFAULTS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}


@register_optimizer("adam", defaults=_ADAM_DEFAULTS)
def _adam(params: Iterable[Any], *, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float) -> torch.optim.Adam:
    """Adam (Kingma & Ba)."""
    _common(lr, weight_decay, beta1=(beta1, "in [0, 1)"), beta2=(beta2, "in [0, 1)"), eps=(eps, "> 0"))
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)


@register_optimizer("adamw", defaults={**_ADAM_DEFAULTS, "weight_decay": 1e-2})
def _adamw(params: Iterable[Any], *, lr: float, beta1: float, beta2: float, eps: float,
           weight_decay: float) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay)."""
    _common(lr, weight_decay, beta1=(beta1, "in [0, 1)"), beta2=(beta2, "in [0, 1)"), eps=(eps, "> 0"))
    return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)


@register_optimizer(
    "rmsprop", defaults={"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}
)
def _rmsprop(params: Iterable[Any], *, lr: float, alpha: float, eps: float, momentum: float,
             weight_decay: float) -> torch.optim.RMSprop:
    """RMSprop."""
    _common(lr, weight_decay, alpha=(alpha, "in [0, 1)"), eps=(eps, "> 0"), momentum=(momentum, "in [0, 1)"))
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)


@register_optimizer("adagrad", defaults={"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.0})
def _adagrad(params: Iterable[Any], *, lr: float, eps: float, weight_decay: float) -> torch.optim.Adagrad:
    """Adagrad."""
    _common(lr, weight_decay, eps=(eps, "> 0"))
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=weight_decay)
