"""Optimizers by name, so that search spaces and policy files can use them.

An entry declares every hyperparameter it accepts with its default (the one visible place where defaults
live), whether it is first- or second-order, and a factory. ``build_optimizer`` merges a spec over the
defaults and calls the factory with the model's trainable parameters; optimizers that need the model
(K-FAC hooks) or the loss (per-sample gradients, GeN's extra forward passes) get them as keywords.

Stepping protocol (used by ``hyperswitch.switching``):
- a plain optimizer is stepped as ``zero_grad(); loss_fn(model(x), y).backward(); step()``;
- an optimizer with a ``batch_step(inputs, targets) -> Tensor`` method does its own forward/backward
  (or per-sample gradients) and update, and returns the mean mini-batch loss before the update.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import unknown_key_rule
from hyperswitch.errors import ConfigError

Factory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    factory: Factory
    defaults: Mapping[str, Any]
    order: str = "first"  # "first" | "second"
    needs_model: bool = False
    needs_loss: bool = False
    takes_loss: bool = False  # gets ``loss_fn`` when the caller gives one (not required)
    doc: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, OptimizerEntry] = {}


def register_optimizer(
    name: str,
    *,
    defaults: Mapping[str, Any],
    order: str = "first",
    needs_model: bool = False,
    needs_loss: bool = False,
    takes_loss: bool = False,
    doc: str = "",
) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(params, *, model=None, loss_fn=None, **hparams)`` under ``name``."""
    if order not in ("first", "second"):
        raise ValueError(f"order must be 'first' or 'second', but got {order!r}")

    def deco(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"optimizer {name!r} is already registered")
        _REGISTRY[name] = OptimizerEntry(
            name=name,
            factory=factory,
            defaults=dict(defaults),
            order=order,
            needs_model=needs_model,
            needs_loss=needs_loss,
            takes_loss=takes_loss,
            doc=doc or (factory.__doc__ or "").strip().splitlines()[0] if (doc or factory.__doc__) else "",
        )
        return factory

    return deco


def _ensure_loaded() -> None:
    # Importing the package modules registers their optimizers.
    import hyperswitch.optim  # noqa: F401


def optimizer_names(order: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if order is None or e.order == order)


def get_optimizer(name: Any, *, key: str = "name") -> OptimizerEntry:
    _ensure_loaded()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(key, f"unknown optimizer; must be one of {', '.join(optimizer_names())}", name)
    return _REGISTRY[name]


def check_optimizer_spec(spec: Any, *, key: str = "optimizer") -> OptimizerEntry:
    """Check a spec's shape: a mapping with a known ``name`` and only that optimizer's hyperparameters.

    Values are not checked here (they may still be search-space placeholders); the optimizer's constructor
    checks them when it is built.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(key, "must be a mapping with a 'name' and hyperparameters", spec)
    if "name" not in spec:
        raise ConfigError(f"{key}.name", "is required", show_value=False)
    entry = get_optimizer(spec["name"], key=f"{key}.name")
    for k in spec:
        if k != "name" and k not in entry.defaults:
            rule = unknown_key_rule(k, sorted(entry.defaults), f"hyperparameter of {entry.name}")
            raise ConfigError(f"{key}.{k}", rule, spec[k], show_value=False)
    return entry


def resolve_hparams(spec: Mapping[str, Any], *, key: str = "optimizer") -> dict[str, Any]:
    """The spec's hyperparameters merged over the entry's defaults."""
    entry = check_optimizer_spec(spec, key=key)
    hp = dict(entry.defaults)
    for k, v in spec.items():
        if k == "name":
            continue
        default = entry.defaults.get(k)
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        if numeric and isinstance(v, str):  # (a mapping may be a schedule; the factory checks it)
            raise ConfigError(f"{key}.{k}", f"must be a number (write {k}: 0.001 or 1.0e-3, unquoted)", v)
        hp[k] = v
    return hp


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def build_optimizer(
    spec: Mapping[str, Any],
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    params: Iterable[nn.Parameter] | None = None,
    key: str = "optimizer",
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``spec`` for ``model``.

    A ``ValueError`` from the constructor (a value that breaks a rule) is re-raised as a ``ConfigError``
    under ``key``.
    """
    entry = check_optimizer_spec(spec, key=key)
    hp = resolve_hparams(spec, key=key)
    plist = list(params) if params is not None else trainable_parameters(model)
    kwargs: dict[str, Any] = {}
    if entry.needs_model:
        kwargs["model"] = model
    if entry.needs_loss:
        if loss_fn is None:
            raise ConfigError(f"{key}.name", "this optimizer needs the loss function", entry.name)
        kwargs["loss_fn"] = loss_fn
    elif entry.takes_loss and loss_fn is not None:
        kwargs["loss_fn"] = loss_fn
    try:
        return entry.factory(plist, **kwargs, **hp)
    except ConfigError:
        raise
    except ValueError as exc:
        name = _hyperparameter_named(str(exc), hp)
        if name is None:
            raise ConfigError(key, f"invalid {entry.name} setting: {exc}", {k: hp[k] for k in hp}) from exc
        # "lr must be >= 0, but got -0.1": the error is the key's (policy.phase2.lr), its value is in the rule
        raise ConfigError(f"{key}.{name}", f"invalid {entry.name} setting: {exc}", hp[name],
                          show_value=False) from exc


def _hyperparameter_named(message: str, hp: Mapping[str, Any]) -> str | None:
    """The hyperparameter an optimizer's ValueError is about: the message's first word (``lr must be ...``,
    ``damping(step=3) must be ...``) when it names one of ``hp``."""
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\(step=\d+\))? ", message)
    return m.group(1) if m and m.group(1) in hp else None
