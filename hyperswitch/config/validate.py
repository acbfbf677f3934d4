"""Small checks shared by every config loader. Each raises ConfigError(key, rule, value)."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hyperswitch.errors import ConfigError

TOP_LEVEL = "(top level)"


def require_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        if key == TOP_LEVEL and value is None:  # an empty file (or only comments)
            raise ConfigError("", "is empty; it must hold a mapping of keys")
        raise ConfigError(key, "must be a mapping", value)
    return value


def did_you_mean(word: Any, options: Iterable[str]) -> str:
    """``"did you mean X? "`` for the closest of ``options`` to a misspelt ``word``, else ``""``."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.75)
    return f"did you mean {close[0]}? " if close else ""


def unknown_key_rule(word: Any, allowed: Iterable[str], what: str = "key") -> str:
    """``unknown key; [did you mean X? ]allowed: a, b, c``."""
    allowed = list(allowed)
    return f"unknown {what}; {did_you_mean(word, allowed)}allowed: {', '.join(allowed) or '(none)'}"


def check_keys(
    mapping: Mapping[str, Any], allowed: Iterable[str], key: str, required: Iterable[str] = ()
) -> None:
    """Every key in ``allowed`` and every ``required`` one present. An unknown key's error names the key (its
    value is kept on the error but not shown: it is the key that is wrong)."""
    allowed = list(allowed)
    for k in mapping:
        if k not in allowed:
            where = f"{key}.{k}" if key else str(k)
            raise ConfigError(where, unknown_key_rule(k, allowed), mapping[k], show_value=False)
    for k in required:
        if k not in mapping:
            raise ConfigError(f"{key}.{k}" if key else k, "is required", show_value=False)


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


def writable_folder(path: str | os.PathLike[str], key: str, value: Any = None) -> None:
    """Raise ConfigError unless ``path`` is a folder that can be written into, or can be created as one (its
    nearest existing ancestor is a writable folder). Creates nothing. ``value``: what to show (default ``path``)."""
    path = Path(path)
    value = str(path) if value is None else value
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "it is a file" if existing == path else f"{existing} is a file, not a folder"
        raise ConfigError(key, f"cannot write into {path}: {what}", value)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, f"cannot write into {path}: {existing} is not writable (permission denied)", value)
