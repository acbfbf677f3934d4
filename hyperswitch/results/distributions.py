"""A study's parameter distributions, as study.json records them.

A sweep writes the distributions of its space once, when the study is created (``study.json`` key
``distributions``), from the space it parsed and validated: a list, in the space's order, of

- ``{"name", "type": "float" | "int", "low", "high", "log", "step"}`` (``step`` null when the range is continuous),
- ``{"name", "type": "categorical", "choices": [...]}``,
- ``{"name", "type": "fixed", "value"}``,
- ``{"name", "type": "derived", "expression"}`` (arithmetic on other parameters, as written in the space).

Export and the figures read them from there (:func:`study_distributions`) instead of parsing the space again.
A study written before the key existed has only its space's text (``space_text``): its distributions are read
from that text's ``parameters`` and ``derived`` mappings as written (the sweep validated them when it started).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

KEY = "distributions"
SAMPLED_TYPES = ("float", "int", "categorical")


def entry(name: str, kind: str, *, low: Any = None, high: Any = None, log: bool = False, step: Any = None,
          choices: Sequence[Any] = (), value: Any = None, expression: str | None = None,
          when: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """One distribution as study.json records it (the keys that apply to its type; ``when``: a conditional
    parameter's condition, ``{OTHER: [CHOICE, ...]}``)."""
    out: dict[str, Any] = {"name": name, "type": kind}
    if kind in ("float", "int"):
        out.update(low=low, high=high, log=bool(log), step=step)
    elif kind == "categorical":
        out["choices"] = list(choices)
    elif kind == "fixed":
        out["value"] = value
    elif kind == "derived":
        out["expression"] = expression
    else:
        raise ValueError(f"unknown distribution type {kind!r}")
    if when:
        out["when"] = {str(k): list(v) for k, v in when.items()}
    return out


def study_distributions(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> distribution (the entry without its name), in the space's order: from study.json's
    ``distributions``, else (a study from before they were recorded) from its ``space_text``; ``{}`` when the
    study has neither. ``sampled_names(...)`` lists the searched ones."""
    recorded = meta.get(KEY)
    if isinstance(recorded, list):
        return {str(d["name"]): {k: v for k, v in d.items() if k != "name"}
                for d in recorded if isinstance(d, Mapping) and "name" in d}
    text = meta.get("space_text")
    if not isinstance(text, str) or not text:
        return {}
    found = copy.deepcopy(_from_space_text(text))
    order = [n for n in meta.get("parameter_names") or [] if n in found]
    return {n: found[n] for n in [*order, *(n for n in found if n not in order)]}


def sampled_names(distributions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The searched parameters (float, int, categorical), in order."""
    return [n for n, d in distributions.items() if d.get("type") in SAMPLED_TYPES]


@functools.lru_cache(maxsize=32)
def _from_space_text(text: str) -> dict[str, dict[str, Any]]:
    """The distributions written in a space's text, read as written (no validation: the sweep did that)."""
    from hyperswitch.config.validate import is_number
    from hyperswitch.config.yamlio import load as load_yaml

    try:
        doc = load_yaml(text)
    except Exception:  # an unreadable text has no distributions to show
        return {}
    if not isinstance(doc, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    params = doc.get("parameters") or {}
    for name, spec in (params.items() if isinstance(params, Mapping) else ()):
        d = _parameter(str(name), spec)
        if d is not None:
            out[str(name)] = {k: v for k, v in d.items() if k != "name"}
    derived = doc.get("derived") or {}
    for name, expr in (derived.items() if isinstance(derived, Mapping) else ()):
        out[str(name)] = {"type": "derived", "expression": str(expr) if is_number(expr) else expr}
    return out


def _parameter(name: str, spec: Any) -> dict[str, Any] | None:
    if not isinstance(spec, Mapping):
        return None if isinstance(spec, list) else entry(name, "fixed", value=spec)
    kind = spec.get("type")
    if kind == "fixed":
        return entry(name, "fixed", value=spec.get("value"))
    if kind == "categorical":
        return entry(name, "categorical", choices=list(spec.get("choices") or []))
    if kind in ("float", "int"):
        def num(v: Any) -> Any:  # as the space validator reads an int range's bounds
            return int(v) if kind == "int" and isinstance(v, float) and v.is_integer() else v

        step = spec.get("step")
        return entry(name, kind, low=num(spec.get("low")), high=num(spec.get("high")), log=bool(spec.get("log", False)),
                     step=None if step is None else num(step))
    return None
