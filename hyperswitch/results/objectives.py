"""A study's objectives and constraints, and the Pareto front of several objectives (pure; no Optuna).

- **Objectives**: study.json's ``metric``/``mode`` are a name and a direction for a single-objective study, lists
  of the same length for a multi-objective one (``metric: [val_accuracy, wall_time_s]``, ``mode: [max, min]``).
  :func:`study_objectives` reads either as lists.
- **Constraints**: ``constraints: [peak_memory_bytes <= 2e9, wall_time_s <= 600]``, each ``METRIC <= NUMBER`` or
  ``METRIC >= NUMBER`` on a results metric, parsed by a regular expression (never ``eval``\\ ed). A configuration's
  value of a constraint is ``mean - bound`` for ``<=`` and ``bound - mean`` for ``>=`` (Optuna's convention: it is
  feasible when every value is <= 0), ``mean`` being the seeds' mean of the metric
  (:func:`hyperswitch.results.select.seed_mean`); a configuration with no finite value of a constrained metric
  is not feasible.
- **Pareto front**: :func:`pareto_front` gives the points that no other point dominates (at least as good in
  every objective and better in one), for any number of objectives and directions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperswitch.errors import ConfigError
from hyperswitch.results.schema import METRICS

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CONSTRAINT_RE = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*({_NUMBER})\s*$")
CONSTRAINT_RULE = "must be METRIC <= NUMBER or METRIC >= NUMBER (e.g. peak_memory_bytes <= 2e9)"


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; ``text``: as study.json records it (normalised: ``metric <= bound``)."""

    metric: str
    op: str  # "<=" | ">="
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def value(self, mean: float) -> float:
        """Optuna's constraint value for a configuration whose metric has this mean: <= 0 when satisfied."""
        return mean - self.bound if self.op == "<=" else self.bound - mean

    def satisfied(self, mean: float | None) -> bool:
        return mean is not None and math.isfinite(mean) and self.value(mean) <= 0


def parse_constraint(text: Any, key: str) -> Constraint:
    """One constraint; a ConfigError naming ``key``, the rule and the text otherwise."""
    if not isinstance(text, str):
        raise ConfigError(key, CONSTRAINT_RULE, text)
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ConfigError(key, CONSTRAINT_RULE, text)
    metric, op, bound = m.group(1), m.group(2), float(m.group(3))
    if metric not in METRICS:
        raise ConfigError(key, f"{metric} is not a results metric (one of: {', '.join(METRICS)})", text)
    if not math.isfinite(bound):
        raise ConfigError(key, "the bound must be a finite number", text)
    return Constraint(metric, op, bound)


def parse_constraints(value: Any, key: str = "constraints") -> tuple[Constraint, ...]:
    """``constraints:`` of a space (a list of texts; None or absent: none)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of constraints, each METRIC <= NUMBER or METRIC >= NUMBER", value)
    out: list[Constraint] = []
    for i, text in enumerate(value):
        c = parse_constraint(text, f"{key}[{i}]")
        if c in out:
            raise ConfigError(f"{key}[{i}]", "repeats an earlier constraint", text)
        out.append(c)
    return tuple(out)


def study_objectives(meta: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(metrics, modes) of a study from its study.json: one of each for a single-objective study."""
    metric = meta.get("metric", "val_accuracy")
    metrics = [str(m) for m in metric] if isinstance(metric, list) else [str(metric)]
    mode = meta.get("mode")
    if isinstance(mode, list):
        modes = [str(m) for m in mode]
    elif mode is not None and len(metrics) == 1:
        modes = [str(mode)]
    else:
        modes = [METRICS.get(m, "max") for m in metrics]
    return metrics, modes


def study_constraints(meta: Mapping[str, Any]) -> tuple[Constraint, ...]:
    """The constraints a study was run with (study.json ``constraints``; none for older studies)."""
    return tuple(parse_constraint(t, f"study.json.constraints[{i}]")
                 for i, t in enumerate(meta.get("constraints") or ()))


def feasible(constraints: Sequence[Constraint], means: Mapping[str, float | None]) -> bool:
    """Whether a configuration with these metric means satisfies every constraint."""
    return all(c.satisfied(means.get(c.metric)) for c in constraints)


# The trial system attr that holds a trial's constraint values, as a list in the constraints' order: where Optuna's
# samplers store them (``constraints_func``) and what optuna-dashboard (0.21) reads for feasibility; Optuna reads
# it as ``FrozenTrial.constraints == {"0": v0, "1": v1, ...}``, as it reads ``Trial.set_constraint("0", v0)``'s
# ``constraints:0`` (which optuna-dashboard does not show).
OPTUNA_CONSTRAINTS_KEY = "constraints"


def constraint_values(constraints: Sequence[Constraint], means: Mapping[str, float | None]) -> list[float] | None:
    """Optuna's constraint values of a configuration whose metrics have these seeds' means (``Constraint.value``,
    in the constraints' order); None when a constrained metric has no finite mean (the configuration is then
    neither feasible nor told to a sampler as complete)."""
    out: list[float] = []
    for c in constraints:
        mean = means.get(c.metric)
        if mean is None or not math.isfinite(float(mean)):
            return None
        out.append(c.value(float(mean)))
    return out


def optuna_constraint_attrs(constraints: Sequence[Constraint],
                            means: Mapping[str, float | None]) -> dict[str, list[float]] | None:
    """The trial system attrs that carry a configuration's constraint values to Optuna (``{}`` without
    constraints; None when a constrained metric has no mean): what the sweep's proposals tell their samplers and
    what ``export-optuna`` writes."""
    if not constraints:
        return {}
    values = constraint_values(constraints, means)
    return None if values is None else {OPTUNA_CONSTRAINTS_KEY: values}


def pareto_front(points: Any, modes: Sequence[str]) -> np.ndarray:
    """Indices (ascending) of the rows of ``points`` (n x k, one column per objective, ``modes[j]`` max or min)
    that no other row dominates. Rows with a non-finite value are never on the front. Equal rows are all kept.
    Sorting by the objectives makes one pass enough for two objectives; more are compared row by row against the
    front found so far."""
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(modes):
        raise ValueError(f"points must be n x {len(modes)}, got shape {p.shape}")
    sign = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    q = p * sign  # lower is better in every column
    ok = np.flatnonzero(np.isfinite(q).all(axis=1))
    order = ok[np.lexsort(q[ok].T[::-1])]  # by the first objective, then the next, ...
    front: list[int] = []
    for i in order:  # no row after i in this order dominates i (it is worse or equal in the first objective
        # and, when equal there, worse or equal in the next, ...); a dominating row comes before it
        if not any(np.all(q[j] <= q[i]) and np.any(q[j] < q[i]) for j in front):
            front.append(int(i))
    return np.asarray(sorted(front), dtype=np.int64)


__all__ = ["CONSTRAINT_RULE", "OPTUNA_CONSTRAINTS_KEY", "Constraint", "constraint_values", "feasible",
           "optuna_constraint_attrs", "pareto_front", "parse_constraint", "parse_constraints", "study_constraints",
           "study_objectives"]
