"""Policy types by name (``type:`` in a policy spec)."""

from __future__ import annotations

from typing import Any, TypeVar

from hyperswitch.errors import ConfigError
from hyperswitch.switching._base import PolicyType

_POLICY_TYPES: dict[str, type[PolicyType[Any]]] = {}
P = TypeVar("P", bound=type[PolicyType[Any]])


def register_policy(cls: P) -> P:
    if cls.name in _POLICY_TYPES:
        raise ValueError(f"policy type {cls.name!r} is already registered")
    _POLICY_TYPES[cls.name] = cls
    return cls


def policy_type_names() -> list[str]:
    return sorted(_POLICY_TYPES)


def get_policy_type(name: Any, key: str = "policy.type") -> type[PolicyType[Any]]:
    if not isinstance(name, str) or name not in _POLICY_TYPES:
        raise ConfigError(key, f"unknown policy type; must be one of {', '.join(policy_type_names())}", name)
    return _POLICY_TYPES[name]
