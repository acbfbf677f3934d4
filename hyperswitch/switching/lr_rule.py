"""Learning-rate rules that compose with any policy: ``lr_rule: {name: gen, phi: 8, gamma: 0.9, ...}``
wraps each optimizer the policy builds in GeN (``hyperswitch.optim.gen``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperswitch.config.validate import check_keys, choice, require_mapping

GEN_KEYS = ("name", "phi", "gamma", "lr0", "clip", "fit")


def validate_lr_rule(value: Any, key: str) -> dict[str, Any]:
    value = require_mapping(value, key)
    choice(value.get("name"), ("gen",), f"{key}.name")
    check_keys(value, GEN_KEYS, key)
    return dict(value)  # values are checked when the wrapped optimizer is probed


def wrap_spec(spec: Mapping[str, Any], lr_rule: Mapping[str, Any] | None) -> dict[str, Any]:
    """The optimizer spec to build: ``spec`` itself, or GeN around it."""
    if not lr_rule:
        return dict(spec)
    base_params = {k: v for k, v in spec.items() if k != "name"}
    return {"name": "gen", "base": spec["name"], "base_params": base_params,
            **{k: v for k, v in lr_rule.items() if k != "name"}}
