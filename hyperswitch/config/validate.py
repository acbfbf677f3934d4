"""Small checks shared by every config loader. Each raises ConfigError(key, rule, value)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from hyperswitch.errors import ConfigError


def require_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a mapping", value)
    return value


def check_keys(
    mapping: Mapping[str, Any], allowed: Iterable[str], key: str, required: Iterable[str] = ()
) -> None:
    allowed = list(allowed)
    for k in mapping:
        if k not in allowed:
            where = f"{key}.{k}" if key else str(k)
            raise ConfigError(where, f"unknown key; allowed: {', '.join(allowed)}", mapping[k])
    for k in required:
        if k not in mapping:
            raise ConfigError(f"{key}.{k}" if key else k, "is required", None)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any, key: str, *, integer: bool = False, low: float | None = None,
           high: float | None = None, low_open: bool = False) -> Any:
    if integer:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, "must be an integer", value)
    elif not is_number(value):
        raise ConfigError(key, "must be a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, "must be finite", value)
    if low is not None:
        if low_open and not value > low:
            raise ConfigError(key, f"must be > {low}", value)
        if not low_open and not value >= low:
            raise ConfigError(key, f"must be >= {low}", value)
    if high is not None and not value <= high:
        raise ConfigError(key, f"must be <= {high}", value)
    return value


def choice(value: Any, options: Iterable[Any], key: str) -> Any:
    options = list(options)
    if value not in options:
        raise ConfigError(key, f"must be one of {', '.join(map(str, options))}", value)
    return value


def string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string", value)
    return value


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false", value)
    return value
