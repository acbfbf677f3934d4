"""Learning-rate rules that compose with any policy: ``lr_rule: {name: gen, phi: 8, gamma: 0.9, ...}``
wraps each optimizer the policy builds in GeN (``hyperswitch.optim.gen``). The rule itself is
``hyperswitch.switching._spec.LrRule``."""

from __future__ import annotations

from typing import Any

from hyperswitch.switching._spec import GEN_KEYS, LrRule, wrap_spec

__all__ = ["GEN_KEYS", "LrRule", "validate_lr_rule", "wrap_spec"]


def validate_lr_rule(value: Any, key: str) -> LrRule:
    """The rule's keys (values are checked when the wrapped optimizer is probed)."""
    return LrRule.from_mapping(value, key)
