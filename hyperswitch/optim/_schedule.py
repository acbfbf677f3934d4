"""Hyperparameters that are a constant or a function of the step.

A value may be given three ways:

- a number (``0.01``): the same at every step;
- a callable ``f(step) -> number`` (Python only; not serialisable by ``torch.save`` when it is a lambda);
- a mapping, the form a YAML file uses, e.g. for "refresh often early, rarely later" (docs/algorithms.md#schedules)::

      inverse_interval: {schedule: piecewise, values: [1, 10, 50], boundaries: [100, 500]}

  ``piecewise``: ``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]`` (``values[0]`` before the
  first boundary, ``values[-1]`` from the last one on); ``len(values) == len(boundaries) + 1`` and the
  boundaries are strictly increasing integers >= 1.

``step`` counts the optimizer's ``step()`` calls made before the current one (0 for the first update).
Optimizers keep the value as given in their ``param_groups`` / state (so a mapping round-trips through
``state_dict``) and evaluate it with :func:`value_at` at every step; :func:`check` validates it eagerly:
every value of a mapping, and a callable's value at step 0 (later values are checked when they are used).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Rule = Callable[[Any], bool]

SCHEDULE_KINDS = ("piecewise",)


@dataclass(frozen=True)
class Piecewise:
    """``values[i]`` on ``[boundaries[i-1], boundaries[i])``; picklable."""

    values: tuple[Any, ...]
    boundaries: tuple[int, ...]

    def __call__(self, step: int) -> Any:
        return self.values[bisect.bisect_right(self.boundaries, step)]


@dataclass(frozen=True)
class Spec:
    """A validation rule for one hyperparameter: ``ok(value)`` and the text naming it ("must be > 0")."""

    name: str
    rule: str
    ok: Rule
    integer: bool = False

    def check_value(self, value: Any, where: str = "") -> Any:
        """Return ``value`` (an integral float becomes an int for integer rules) or raise ``ValueError``."""
        if self.integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        good = _is_number(value) and (not self.integer or isinstance(value, int))
        if good and isinstance(value, float) and not math.isfinite(value):
            good = False
        if not good or not self.ok(value):
            raise ValueError(f"{self.name}{where} {self.rule}, but got {value!r}")
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse(value: Any, spec: Spec) -> Callable[[int], Any] | None:
    """The schedule a mapping describes, or ``None`` for a constant or a callable. Raises ``ValueError``."""
    if not isinstance(value, Mapping):
        return None
    kind = value.get("schedule")
    if kind not in SCHEDULE_KINDS:
        raise ValueError(
            f"{spec.name} schedule must be one of {', '.join(SCHEDULE_KINDS)} "
            f"(a mapping with key 'schedule'), but got {kind!r}"
        )
    unknown = sorted(set(value) - {"schedule", "values", "boundaries"})
    if unknown:
        raise ValueError(f"{spec.name} piecewise schedule keys must be schedule, values, boundaries, "
                         f"but got {unknown!r}")
    values = value.get("values")
    bounds = value.get("boundaries", [])
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ValueError(f"{spec.name} piecewise values must be a non-empty list, but got {values!r}")
    if not isinstance(bounds, Sequence) or isinstance(bounds, str):
        raise ValueError(f"{spec.name} piecewise boundaries must be a list, but got {bounds!r}")
    if len(values) != len(bounds) + 1:
        raise ValueError(
            f"{spec.name} piecewise schedule needs len(values) == len(boundaries) + 1, but got "
            f"{len(values)} values and {len(bounds)} boundaries"
        )
    prev = 0
    for b in bounds:
        if not isinstance(b, int) or isinstance(b, bool) or b <= prev:
            raise ValueError(
                f"{spec.name} piecewise boundaries must be strictly increasing integers >= 1, "
                f"but got {list(bounds)!r}"
            )
        prev = b
    checked = tuple(spec.check_value(v) for v in values)
    return Piecewise(checked, tuple(bounds))


def check(value: Any, spec: Spec) -> Any:
    """Validate a constant, a mapping or a callable (at step 0); return ``value`` (normalised constant)."""
    if isinstance(value, Mapping):
        parse(value, spec)
        return value
    if callable(value):
        spec.check_value(value(0), "(step=0)")
        return value
    return spec.check_value(value)


def value_at(value: Any, step: int, spec: Spec) -> Any:
    """The value at ``step`` of a constant, a mapping or a callable, checked against ``spec``."""
    if isinstance(value, Mapping):
        sched = parse(value, spec)
        assert sched is not None
        return sched(step)
    if callable(value):
        return spec.check_value(value(step), f"(step={step})")
    return value


def piecewise(values: Sequence[Any], boundaries: Sequence[int]) -> dict[str, Any]:
    """The mapping form of a piecewise schedule (what a YAML file would hold)."""
    return {"schedule": "piecewise", "values": list(values), "boundaries": list(boundaries)}
