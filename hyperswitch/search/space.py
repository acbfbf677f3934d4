"""Search spaces: one YAML file per study, validated on load.

```yaml
name: quickstart                      # study name (folder under runs/)
workload: {name: digits_mlp, batch_size: $batch_size}
policy:                               # a policy template; "$name" is replaced by a parameter's value
  type: switch
  phase1: {name: adam, lr: $lr_adam}
  phase2: {name: sgdm, lr: $lr, momentum: $momentum}
  switch: {at: $switch_step}
train: {steps: 300, eval_every: 25, target_accuracy: 0.95}
parameters:
  lr: {type: float, low: 0.01, high: 0.5, log: true}
  momentum: {type: float, low: 0.5, high: 0.99}
  switch_step: {type: int, low: 0, high: 300, step: 50}
  batch_size: {type: categorical, choices: [32, 64]}
  lr_adam: 0.001                      # a fixed value (or {type: fixed, value: 0.001})
derived:
  ratio_x2: ratio * 2                 # arithmetic on other parameters, parsed, never eval'ed
search: {algorithm: tpe, samples: 8, seed: 0}   # tpe | random | grid | gp | cmaes | qmc | nsga2
seeds: 3                              # or a list [0, 1, 2]: every configuration runs once per seed
scheduler: none                       # or {type: asha, grace_period: 50, reduction_factor: 3}
metric: val_accuracy                  # or a list: [val_accuracy, wall_time_s] (several objectives)
mode: max                             # or a list: [max, min]; each mode is its metric's direction
constraints: [peak_memory_bytes <= 2e9]   # optional: METRIC <= NUMBER or METRIC >= NUMBER
resources: {workers: 1, cpus_per_worker: 1, gpus_per_worker: 0, max_failures: 2}
max_concurrent: 2
```
``resources.workers`` > 1 trains each trial data-parallel on a worker group kept across trials
(``train.group``); ``max_failures``: how many
times a trial whose process, worker or node died is restarted from its latest checkpoint.

A categorical parameter may carry ``sets``: each choice (a string label) then stands for a bundle of template
values, so that one parameter switches several keys at once (an ablation: a whole switch rule and the
corrector's ``T1``; a baseline optimizer with its own hyperparameters)::

  variant:
    type: categorical
    choices: [mixer, no_corrector, second_order]
    sets:                               # every choice sets the same names; $switch_rule, $T1 in the templates
      mixer:        {switch_rule: {theta: 0.05, K: 2, unit: epoch}, T1: 10}
      no_corrector: {switch_rule: {theta: 0.05, K: 2, unit: epoch}, T1: 0}
      second_order: {switch_rule: never, T1: 0}

The label is the parameter's value (searched, gridded and recorded like any categorical); the names it sets
are template values only (not results columns). A set value may itself hold ``$name`` placeholders of other
parameters, derived values, or names that another parameter's sets give (not in a cycle). ``workload.name``
may be a placeholder too (a categorical over workloads); the workload's options are then checked for every
choice.

A sampled parameter may carry ``when: {OTHER: CHOICE}`` (or ``{OTHER: [CHOICE, ...]}``): it applies only when the
categorical parameter OTHER takes one of those choices, and is used only inside OTHER's ``sets`` for them (or the
``sets`` of another categorical that applies only where it does, e.g. one with the same ``when``)::

  switch_kind:
    type: categorical
    choices: [fixed, adaptive]
    sets: {fixed: {switch_rule: {at: $at}}, adaptive: {switch_rule: {theta: $theta, K: $K}}}
  at: {type: int, low: 0, high: 200, step: 25, when: {switch_kind: fixed}}
  theta: {type: float, low: 0.001, high: 0.1, log: true, when: {switch_kind: adaptive}}
  K: {type: int, low: 2, high: 10, when: {switch_kind: adaptive}}

Where it does not apply it has no value: ``resolve`` leaves it out (and OTHER's other sets are not used), samplers
ask define-by-run (``sample_order``: conditions first), ``grid_points`` enumerates only combinations that apply,
start points give exactly the parameters that apply. ``conditions``, ``is_active`` and ``active_values`` answer
what applies. An unknown or non-categorical OTHER, a choice it lacks, a cycle, or a use outside the sets where
the parameter applies (the template itself, a derived expression, another choice's set) is a ConfigError.

Several objectives (``metric``/``mode`` lists: ``SearchSpace.objectives``, ``objective_modes``; ``metric`` and
``mode`` are the first) are learnt from by tpe, nsga2 and gp and recorded by random, grid and qmc; cmaes and an
ASHA scheduler refuse them. ``constraints`` (``hyperswitch.results.objectives.Constraint``) are learnt from by
tpe, nsga2 and gp (as Optuna's constraints, from the seeds' means of their metrics), recorded by random, grid
and qmc, refused by cmaes. ``SearchSpace.measures``: every metric whose seeds' mean the sampler is told.

``search`` takes the algorithm's own options (``SEARCH_OPTIONS``: ``n_startup`` for tpe, gp and cmaes;
``sigma0`` and ``popsize`` for cmaes; ``qmc_type`` and ``scramble`` for qmc; ``population_size``,
``crossover_prob``, ``mutation_prob`` and ``swapping_prob`` for nsga2) and ``start_points``: a list of
values of every sampled parameter, proposed first, in order, whatever the algorithm (each checked against its
parameter's range, step or choices; on a grid they are grid points, run before the rest of the grid)::

  search:
    algorithm: cmaes
    sigma0: 0.2
    start_points:
      - {lr: 0.1, momentum: 0.9, switch_step: 100}

``--samples N`` (``with_overrides``) on a grid runs N grid points (Optuna's grid sampler visits them in a
seeded random order), so that a large grid can be smoke-tested; the file's own ``search.samples`` does not
cap a grid.
Every error is a ``ConfigError`` naming the file, the key, the rule and the value.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperswitch.config.validate import (
    TOP_LEVEL,
    boolean,
    check_keys,
    choice,
    did_you_mean,
    is_number,
    number,
    require_mapping,
    string,
)
from hyperswitch.config.yamlio import YAMLSyntaxError
from hyperswitch.config.yamlio import load as load_yaml
from hyperswitch.config.yamlio import load_file as load_yaml_file
from hyperswitch.errors import ConfigError, shown
from hyperswitch.results.distributions import entry
from hyperswitch.results.names import check_study_name
from hyperswitch.results.objectives import Constraint, parse_constraints
from hyperswitch.results.schema import METRICS, TRIAL_ID_COLUMNS, TRIAL_METRIC_COLUMNS, WORKLOAD_METRICS
from hyperswitch.results.select import same_value
from hyperswitch.search.expr import ExpressionError, parse_expression
from hyperswitch.train.spec import TrainSpec

TOP_KEYS = ("name", "description", "workload", "policy", "train", "parameters", "derived", "search", "seeds",
            "scheduler", "metric", "mode", "constraints", "resources", "max_concurrent")
PARAM_TYPES = ("float", "int", "categorical", "fixed")
ALGORITHMS = ("tpe", "random", "grid", "gp", "cmaes", "qmc", "nsga2")
# search: keys of every algorithm, and each algorithm's own options (hyperswitch.search.seeds has their defaults)
SEARCH_KEYS = ("algorithm", "samples", "seed", "start_points")
SEARCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "tpe": ("n_startup",), "random": (), "grid": (), "gp": ("n_startup",),
    "cmaes": ("n_startup", "sigma0", "popsize"), "qmc": ("qmc_type", "scramble"),
    "nsga2": ("population_size", "crossover_prob", "mutation_prob", "swapping_prob"),
}
# What each algorithm does with several objectives and with constraints (the rest: learns from them).
SINGLE_OBJECTIVE = ("cmaes",)
RECORD_ONLY = ("random", "grid", "qmc")  # they learn nothing from results: objectives and constraints recorded
QMC_TYPES = ("sobol", "halton")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PLACEHOLDER_RE = re.compile(r"^\$([A-Za-z][A-Za-z0-9_]*)$")
# Metrics that exist while a trial runs (what ASHA can compare at a rung).
INTERMEDIATE_METRICS = ("val_accuracy", "best_val_accuracy", "val_loss", "val_recon_error", "train_loss")
RESERVED = set(TRIAL_ID_COLUMNS) | set(TRIAL_METRIC_COLUMNS) | {"feasible"}  # feasible: constrained studies
MAX_GRID = 100_000


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # float | int | categorical | fixed
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None
    sets: Mapping[str, Mapping[str, Any]] | None = None  # categorical: choice label -> {name: template value}
    when: tuple[str, tuple[Any, ...]] | None = None  # (OTHER, its choices under which this one is sampled)

    @property
    def sampled(self) -> bool:
        return self.kind != "fixed"

    def _range(self) -> tuple[float | int, float | int]:
        """``(low, high)`` of a float or int parameter (both are set for those kinds)."""
        if self.low is None or self.high is None:
            raise ValueError(f"{self.name} is {self.kind}, not a range")
        return self.low, self.high

    def distribution(self) -> Any:
        import optuna.distributions as d

        if self.kind == "float":
            return d.FloatDistribution(*self._range(), log=self.log, step=self.step)
        if self.kind == "int":
            low, high = self._range()  # ints already (validated with integer=True): int() changes nothing
            return d.IntDistribution(int(low), int(high), log=self.log, step=int(self.step or 1))
        if self.kind == "categorical":
            return d.CategoricalDistribution(self.choices)
        raise ValueError(f"{self.name} is fixed")

    def grid_values(self) -> list[Any]:
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "fixed":
            return [self.value]
        low, high = self._range()
        if self.kind == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ValueError(f"{self.name}: a float range on a grid needs a step")  # parse_space requires one
        n = int(math.floor((high - low) / self.step + 1e-9))
        return [round(low + k * self.step, 12) for k in range(n + 1)]

    def probe_values(self) -> list[Any]:
        """Values to check eagerly: both ends of a range, every choice."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]


@dataclass(frozen=True, slots=True)
class ResourcesSpec:
    """``resources:`` of a search space, validated (:meth:`from_mapping`): what each trial runs on."""

    workers: int = 1  # > 1: the trial trains data-parallel on a worker group (train.group)
    cpus_per_worker: float = 1  # fractions work
    gpus_per_worker: float = 0
    max_failures: int = 2  # restarts of a trial whose process, worker or node died, from its latest checkpoint

    @classmethod
    def from_mapping(cls, value: Any, key: str = "resources") -> ResourcesSpec:
        value = require_mapping(value or {}, key)
        check_keys(value, ("workers", "cpus_per_worker", "gpus_per_worker", "max_failures"), key)
        return cls(
            workers=number(value.get("workers", 1), f"{key}.workers", integer=True, low=1),
            cpus_per_worker=number(value.get("cpus_per_worker", 1), f"{key}.cpus_per_worker", low=0,
                                   low_open=True),
            gpus_per_worker=number(value.get("gpus_per_worker", 0), f"{key}.gpus_per_worker", low=0),
            max_failures=number(value.get("max_failures", 2), f"{key}.max_failures", integer=True, low=0),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "cpus_per_worker": self.cpus_per_worker,
                "gpus_per_worker": self.gpus_per_worker, "max_failures": self.max_failures}


@dataclass
class SearchSpace:
    name: str
    workload: dict[str, Any]
    policy: dict[str, Any]
    train: TrainSpec
    parameters: dict[str, Param]
    derived: dict[str, Any]  # name -> Expression, in evaluation order
    algorithm: str = "tpe"
    samples: int = 8
    search_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0])
    scheduler: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    metric: str = "val_accuracy"  # the (first) objective
    mode: str = "max"
    metrics: tuple[str, ...] = ()  # a multi-objective space's objectives (metric is metrics[0]); () for one
    modes: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = ()  # ``constraints:``; the sampler learns from them where it can
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_concurrent: int = 2
    description: str = ""
    source: str = "<string>"
    text: str = ""
    grid_limit: int | None = None  # --samples on a grid: run this many grid points
    search_options: dict[str, Any] = field(default_factory=dict)  # the algorithm's own options, as written
    start_points: list[dict[str, Any]] = field(default_factory=list)  # sampled name -> value, proposed first
    set_order: list[str] = field(default_factory=list)  # parameters with sets, each after those its sets refer to

    @property
    def members(self) -> dict[str, str]:
        """Names set by categorical ``sets`` -> the parameter that sets them."""
        return {m: n for n, p in self.parameters.items() if p.sets for m in next(iter(p.sets.values()))}

    # --- values ---------------------------------------------------------------------------------------
    @property
    def objectives(self) -> list[str]:
        """The metrics the sampler optimises: ``[metric]``, or a multi-objective space's list."""
        return list(self.metrics) if self.metrics else [self.metric]

    @property
    def objective_modes(self) -> list[str]:
        return list(self.modes) if self.modes else [self.mode]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def measures(self) -> list[str]:
        """Every metric the sampler is told a seeds' mean of: the objectives, then the constrained metrics."""
        out = self.objectives
        return out + [m for m in dict.fromkeys(c.metric for c in self.constraints) if m not in out]

    def metric_record(self) -> tuple[Any, Any]:
        """``metric`` and ``mode`` as study.json keeps them: strings, or lists for a multi-objective space."""
        if self.multi_objective:
            return list(self.objectives), list(self.objective_modes)
        return self.metric, self.mode

    @property
    def sampled_names(self) -> list[str]:
        return [n for n, p in self.parameters.items() if p.sampled]

    # --- conditional parameters (``when``) ---------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return any(p.when is not None for p in self.parameters.values())

    @property
    def conditions(self) -> dict[str, tuple[str, tuple[Any, ...]]]:
        """Conditional parameter -> (the categorical parameter it depends on, the choices under which it applies)."""
        return {n: p.when for n, p in self.parameters.items() if p.when is not None}

    @property
    def sample_order(self) -> list[str]:
        """The sampled parameters, each after the one its condition names (the space's order otherwise)."""
        return _condition_order(self.parameters)

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        return is_active(self.parameters, name, values)

    def active_values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The sampled values that apply (a trials.parquet row's inactive parameters are null), in space order."""
        return {n: sampled[n] for n in self.sampled_names if n in sampled and self.is_active(n, sampled)}

    @property
    def parameter_names(self) -> list[str]:
        return [*self.parameters, *self.derived]

    def resolve(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Sampled values plus fixed values plus derived values, in declaration order."""
        values: dict[str, Any] = {}
        for n, p in self.parameters.items():
            if p.when is not None and not self.is_active(n, sampled):
                continue  # a conditional parameter that does not apply: no value (its sets are not used)
            values[n] = p.value if p.kind == "fixed" else sampled[n]
            if p.kind == "int":
                values[n] = int(values[n])
        for n, p in self.parameters.items():
            if p.sets and n in values:
                values.update(p.sets[values[n]])
        for n, expr in self.derived.items():
            values[n] = expr.evaluate(values)
        return values

    def instantiate(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The workload and policy specs with every ``$name`` replaced by its value. A name set by a
        categorical's ``sets`` is filled first: its placeholders name parameters, derived values or names that
        another parameter's sets give (filled before it, ``set_order``)."""
        if self.set_order:
            values = dict(values)
            for n in self.set_order:
                sets = self.parameters[n].sets
                assert sets is not None  # set_order lists only parameters with sets
                for m in next(iter(sets.values())):
                    if m in values:
                        values[m] = _substitute(values[m], values)
        return _substitute(self.workload, values), _substitute(self.policy, values)

    def n_configurations(self) -> int:
        if self.algorithm == "grid":
            full = len(self.grid_points()) if self.conditional else \
                math.prod(len(self.parameters[n].grid_values()) for n in self.sampled_names) or 1
            return min(full, self.grid_limit) if self.grid_limit else full
        return self.samples if self.sampled_names else 1

    def grid(self) -> dict[str, list[Any]]:
        return {n: self.parameters[n].grid_values() for n in self.sampled_names}

    def grid_points(self, limit: int = MAX_GRID + 1) -> list[dict[str, Any]]:
        """Every grid point once with only the parameters that apply in it (a conditional parameter's values
        multiply only the points where its condition holds); at most ``limit`` (a larger grid is an error)."""
        points: list[dict[str, Any]] = [{}]
        for n in self.sample_order:
            values = self.parameters[n].grid_values()
            new: list[dict[str, Any]] = []
            for pt in points:
                new += [{**pt, n: v} for v in values] if self.is_active(n, pt) else [pt]
            points = new[:limit]
        return [{n: pt[n] for n in self.sampled_names if n in pt} for pt in points]

    def optuna_space(self) -> dict[str, Any]:
        return {n: self.parameters[n].distribution() for n in self.sampled_names}

    def with_overrides(self, samples: int | None = None, seeds: int | None = None) -> SearchSpace:
        new = copy.copy(self)
        if samples is not None:
            new.samples = number(samples, "--samples", integer=True, low=1)
            if self.algorithm == "grid":
                new.grid_limit = new.samples
        if seeds is not None:
            new.seeds = list(range(number(seeds, "--seeds", integer=True, low=1)))
        return new

    def distributions(self) -> list[dict[str, Any]]:
        """Every parameter's distribution and every derived expression, in order, as study.json records them
        (:mod:`hyperswitch.results.distributions`)."""
        out = [entry(n, p.kind, low=p.low, high=p.high, log=p.log, step=p.step, choices=p.choices, value=p.value,
                     when={p.when[0]: list(p.when[1])} if p.when is not None else None)
               for n, p in self.parameters.items()]
        return out + [entry(n, "derived", expression=e.text) for n, e in self.derived.items()]

    def summary(self) -> dict[str, Any]:
        metric, mode = self.metric_record()
        out = {
            "algorithm": self.algorithm, "samples": self.n_configurations(), "seeds": self.seeds,
            "metric": metric, "mode": mode, "parameters": self.parameter_names,
            "workload": self.workload.get("name"), "policy_type": self.policy.get("type"),
        }
        if self.constraints:
            out["constraints"] = [c.text for c in self.constraints]
        return out


def _substitute(obj: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(obj, str):
        m = _PLACEHOLDER_RE.match(obj)
        return values[m.group(1)] if m else obj
    if isinstance(obj, Mapping):
        return {k: _substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, values) for v in obj]
    return obj


def _strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string leaf of a template with its path (``policy.phase2.lr``, ``policy.candidates[0].name``)."""
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{path}[{i}]")


def _placeholders(obj: Any, path: str, out: dict[str, str]) -> None:
    """Each placeholder's name -> the first path that uses it; a malformed ``$...`` is an error."""
    for where, text in _strings(obj, path):
        if text.startswith("$"):
            m = _PLACEHOLDER_RE.match(text)
            if not m:
                raise ConfigError(where, "a placeholder must be $ followed by a parameter name", text)
            out.setdefault(m.group(1), where)


# --- parsing ------------------------------------------------------------------------------------------
def _param(name: str, spec: Any) -> Param:
    key = f"parameters.{name}"
    if not _NAME_RE.match(str(name)):
        raise ConfigError(key, "a parameter name must be a letter followed by letters, digits or _", name)
    if name in RESERVED:
        raise ConfigError(key, "is a results column name; choose another parameter name", name)
    if not isinstance(spec, Mapping):
        if isinstance(spec, list):
            raise ConfigError(key, "a list is ambiguous; write {type: categorical, choices: [...]}", spec)
        return Param(name, "fixed", value=spec)
    if "type" not in spec:
        raise ConfigError(f"{key}.type", f"is required; one of {', '.join(PARAM_TYPES)}", show_value=False)
    kind = choice(spec["type"], PARAM_TYPES, f"{key}.type")
    if kind == "fixed":
        check_keys(spec, ("type", "value"), key, required=("value",))
        return Param(name, "fixed", value=spec["value"])
    when = _when(spec.get("when"), f"{key}.when") if "when" in spec else None
    if kind == "categorical":
        check_keys(spec, ("type", "choices", "sets", "when"), key, required=("choices",))
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{key}.choices", "must be a non-empty list", choices)
        for c in choices:
            if not (c is None or isinstance(c, str | bool | int | float)):
                raise ConfigError(f"{key}.choices", "choices must be numbers, strings, booleans or null", c)
        kinds = {"number" if is_number(c) else type(c).__name__ for c in choices}
        if len(kinds) > 1:
            raise ConfigError(f"{key}.choices", "all choices must have the same type", choices)
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{key}.choices", "choices must be distinct", choices)
        sets = _sets(spec["sets"], choices, key) if "sets" in spec else None
        return Param(name, "categorical", choices=tuple(choices), sets=sets, when=when)
    check_keys(spec, ("type", "low", "high", "log", "step", "when"), key, required=("low", "high"))
    integer = kind == "int"
    low = number(spec["low"], f"{key}.low", integer=integer)
    high = number(spec["high"], f"{key}.high", integer=integer)
    if low > high:
        raise ConfigError(f"{key}.low", f"must be <= high ({high})", low)
    if low == high:
        raise ConfigError(f"{key}", "the range is empty (low == high); use a fixed value instead", low)
    log = boolean(spec.get("log", False), f"{key}.log")
    if log and low <= 0:
        raise ConfigError(f"{key}.low", "a log range must be > 0 (it must not touch zero)", low)
    step = spec.get("step")
    if step is not None:
        step = number(step, f"{key}.step", integer=integer, low=0, low_open=True)
        if log:
            raise ConfigError(f"{key}.step", "cannot be combined with log: true", step)
        if step > high - low:
            raise ConfigError(f"{key}.step", f"must be <= high - low ({high - low})", step)
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


def _when(value: Any, key: str) -> tuple[str, tuple[Any, ...]]:
    """``when: {OTHER: CHOICE}`` or ``{OTHER: [CHOICE, ...]}`` as written (checked against OTHER by
    :func:`_check_conditions`)."""
    value = require_mapping(value, key)
    if len(value) != 1:
        raise ConfigError(key, "must name one categorical parameter and its choice(s): {OTHER: CHOICE} or "
                          "{OTHER: [CHOICE, ...]}", dict(value))
    other, choices = next(iter(value.items()))
    choices = list(choices) if isinstance(choices, list) else [choices]
    if not choices:
        raise ConfigError(f"{key}.{other}", "must give at least one choice", choices)
    return str(other), tuple(choices)


def is_active(params: Mapping[str, Param], name: str, values: Mapping[str, Any]) -> bool:
    """Whether parameter ``name`` applies given the ``values`` of the parameters its ``when`` names (all of its
    chain of conditions hold)."""
    p = params[name]
    if p.when is None:
        return True
    other, choices = p.when
    return other in values and is_active(params, other, values) and \
        any(_is_choice(c, values[other]) for c in choices)


def _is_choice(choice: Any, value: Any) -> bool:
    """``value`` is this categorical choice (a number compared as a number: Parquet may widen an int)."""
    if is_number(choice) and is_number(value):
        return bool(choice == value)
    return type(choice) is type(value) and choice == value


def _condition_order(params: Mapping[str, Param]) -> list[str]:
    """The sampled parameters, each after the one its ``when`` names (for define-by-run sampling and grids)."""
    order: list[str] = []
    pending = [n for n, p in params.items() if p.sampled]
    while pending:
        ready = [n for n in pending if params[n].when is None or params[n].when[0] in order]  # type: ignore[index]
        if not ready:  # _check_conditions reports cycles first
            raise ValueError(f"conditions in a cycle: {pending}")
        order += ready
        pending = [n for n in pending if n not in ready]
    return order


def _check_conditions(params: Mapping[str, Param]) -> dict[str, Param]:
    """Each ``when`` names a sampled categorical parameter and some of its choices (canonicalised to them), and
    conditions do not form a cycle."""
    out = dict(params)
    for n, p in params.items():
        if p.when is None:
            continue
        other, choices = p.when
        key = f"parameters.{n}.when"
        if not p.sampled:
            raise ConfigError(key, "only a sampled parameter can be conditional (a fixed value always applies)",
                              show_value=False)
        if other not in params:
            raise ConfigError(f"{key}.{other}", f"is not a parameter; {did_you_mean(other, params)}a condition "
                              "names a categorical parameter", show_value=False)
        q = params[other]
        if q.kind != "categorical":
            raise ConfigError(f"{key}.{other}", f"parameter {other} is {q.kind}; a condition names a categorical "
                              "parameter", show_value=False)
        canonical = []
        for c in choices:
            match = [d for d in q.choices if _is_choice(d, c)]
            if not match:
                raise ConfigError(f"{key}.{other}", f"must be among the choices of parameters.{other} "
                                  f"({', '.join(map(str, q.choices))})", c)
            canonical.append(match[0])
        out[n] = Param(**{**p.__dict__, "when": (other, tuple(canonical))})
    for n in out:
        seen, m = [n], out[n].when
        while m is not None:
            if m[0] in seen:
                raise ConfigError(f"parameters.{n}.when", "conditions form a cycle", " -> ".join([*seen, m[0]]))
            seen.append(m[0])
            m = out[m[0]].when
    return out


def _check_conditional_uses(params: Mapping[str, Param], workload: Any, policy: Any, derived: Mapping[str, Any],
                            members: Mapping[str, str]) -> None:
    """A conditional parameter (and a name its sets give) is used only where it applies: inside the ``sets`` of a
    choice under which it is sampled (its condition's parameter's, or those of another categorical that applies
    only where it does: one with the same condition, say), never in the workload or policy template itself nor in
    a derived expression (they are instantiated in every configuration)."""
    def condition(name: str) -> tuple[str, tuple[Any, ...]] | None:
        owner = members.get(name, name)
        return params[owner].when if owner in params else None

    def holds(cond: tuple[str, tuple[Any, ...]], q: str, label: Any) -> bool:
        """Whether ``cond`` holds wherever ``q``'s set for ``label`` is used: ``q`` is ``label`` there, and every
        condition up ``q``'s own chain holds (``resolve`` uses the sets of a parameter that applies only)."""
        known: dict[str, tuple[Any, ...]] = {q: (label,)}
        when = params[q].when
        while when is not None and when[0] not in known:
            known[when[0]] = when[1]
            when = params[when[0]].when
        other, choices = cond
        return other in known and all(any(_is_choice(c, v) for c in choices) for v in known[other])

    def where(name: str) -> str:
        owner = members.get(name, name)
        return f"parameters.{owner}.when"

    uses: dict[str, str] = {}
    _uses(workload, "workload", uses)
    _uses(policy, "policy", uses)
    for path, name in uses.items():
        if condition(name) is not None:
            other, choices = condition(name)  # type: ignore[misc]
            raise ConfigError(where(name), f"${name} is used unconditionally at {path}; a conditional parameter is "
                              f"used only in parameters.{other}.sets.{choices[0]} (the sets of the choices it "
                              "applies to)", f"${name}")
    for dname, expr in derived.items():
        for name in expr.names:
            if condition(name) is not None:
                raise ConfigError(where(name), f"{name} is used in derived.{dname}, which every configuration "
                                  "computes; a conditional parameter is used only in its condition's sets", name)
    for q, p in params.items():
        for label, one in (p.sets or {}).items():
            inner: dict[str, str] = {}
            _uses(one, f"parameters.{q}.sets.{label}", inner)
            for path, name in inner.items():
                cond = condition(name)
                if cond is not None and not holds(cond, q, label):
                    raise ConfigError(where(name), f"${name} is used at {path}, where it does not apply (it is "
                                      f"sampled when {cond[0]} is {' or '.join(map(str, cond[1]))})", f"${name}")


def _sets(value: Any, choices: list[Any], key: str) -> dict[str, dict[str, Any]]:
    """``sets``: one mapping per choice (string labels), every one setting the same names."""
    key = f"{key}.sets"
    value = require_mapping(value, key)
    for c in choices:
        if not isinstance(c, str):
            raise ConfigError(f"{key}", "with sets, the choices must be string labels", c)
        if c not in value:
            raise ConfigError(f"{key}.{c}", "every choice needs its set of values", show_value=False)
    for label in value:
        if label not in choices:
            raise ConfigError(f"{key}.{label}", f"is not one of the choices ({', '.join(choices)})", label)
    names: list[str] | None = None
    out: dict[str, dict[str, Any]] = {}
    for c in choices:
        one = require_mapping(value[c], f"{key}.{c}")
        if not one:
            raise ConfigError(f"{key}.{c}", "must set at least one name", dict(one))
        for m in one:
            if not _NAME_RE.match(str(m)):
                raise ConfigError(f"{key}.{c}.{m}", "a name must be a letter followed by letters, digits or _", m)
            if m in RESERVED:
                raise ConfigError(f"{key}.{c}.{m}", "is a results column name; choose another name", m)
        if names is None:
            names = list(one)
        elif set(one) != set(names):
            raise ConfigError(f"{key}.{c}", f"every choice must set the same names ({', '.join(names)})",
                              sorted(one))
        out[c] = {str(m): copy.deepcopy(v) for m, v in one.items()}
    return out


def _members(params: Mapping[str, Param]) -> dict[str, str]:
    """Names set by categorical ``sets`` -> their parameter; a name may be set by one parameter only."""
    out: dict[str, str] = {}
    for n, p in params.items():
        for m in next(iter(p.sets.values())) if p.sets else ():
            if m in params:
                raise ConfigError(f"parameters.{n}.sets", "sets a name that is already a parameter", m)
            if m in out:
                raise ConfigError(f"parameters.{n}.sets", f"sets a name that parameter {out[m]} sets too", m)
            out[m] = n
    return out


def _set_references(params: Mapping[str, Param], derived: Mapping[str, Any],
                    members: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Placeholders inside sets (name -> first path) and the order to fill the sets in: a set value may refer to
    parameters, derived values and names another parameter's sets give, never its own parameter's, nor in a
    cycle."""
    in_sets: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    for n, p in params.items():
        if not p.sets:
            continue
        own: dict[str, str] = {}
        _placeholders(p.sets, f"parameters.{n}.sets", own)
        needs[n] = set()
        for ref, path in own.items():
            in_sets.setdefault(ref, path)
            if ref in members:
                if members[ref] == n:
                    raise ConfigError(path, "a set value cannot refer to a name its own parameter sets", f"${ref}")
                needs[n].add(members[ref])
            elif ref not in params and ref not in derived:
                raise ConfigError(path, "refers to an unknown parameter", f"${ref}")
    order: list[str] = []
    while needs:
        ready = [n for n, deps in needs.items() if deps <= set(order)]
        if not ready:
            n = next(iter(needs))
            raise ConfigError(f"parameters.{n}.sets", "sets refer to each other's names in a cycle", sorted(needs))
        for n in ready:
            order.append(n)
            del needs[n]
    return in_sets, order


def _derived(spec: Any, params: Mapping[str, Param], members: Mapping[str, str] | None = None) -> dict[str, Any]:
    members = members or {}
    spec = require_mapping(spec or {}, "derived")
    exprs: dict[str, Any] = {}
    for name, text in spec.items():
        key = f"derived.{name}"
        if not _NAME_RE.match(str(name)):
            raise ConfigError(key, "a derived name must be a letter followed by letters, digits or _", name)
        if name in params:
            raise ConfigError(key, "is already a parameter", name)
        if name in members:
            raise ConfigError(key, f"is already set by parameter {members[name]}'s sets", name)
        if name in RESERVED:
            raise ConfigError(key, "is a results column name; choose another name", name)
        if is_number(text):
            text = str(text)
        try:
            exprs[name] = parse_expression(text)
        except ExpressionError as exc:
            raise ConfigError(key, str(exc), text) from None
    ordered: dict[str, Any] = {}
    pending = dict(exprs)
    while pending:
        progressed = False
        for name, expr in list(pending.items()):
            unknown = [n for n in expr.names if n not in params and n not in exprs and n not in members]
            if unknown:
                raise ConfigError(f"derived.{name}", f"uses unknown name {unknown[0]!r}", expr.text)
            if all(n in params or n in members or n in ordered for n in expr.names):
                ordered[name] = expr
                del pending[name]
                progressed = True
        if not progressed:
            name = next(iter(pending))
            raise ConfigError(f"derived.{name}", "derived parameters refer to each other in a cycle",
                              pending[name].text)
    return ordered


def _seeds(value: Any) -> list[int]:
    if isinstance(value, list):
        if not value:
            raise ConfigError("seeds", "must not be empty", value)
        seeds = [number(s, "seeds", integer=True, low=0) for s in value]
        if len(set(seeds)) != len(seeds):
            raise ConfigError("seeds", "seeds must be distinct", value)
        return seeds
    return list(range(number(value, "seeds", integer=True, low=1)))


def _scheduler(value: Any, metric: str, steps: int | None, n_objectives: int = 1) -> dict[str, Any]:
    if value in (None, "none"):
        return {"type": "none"}
    if value == "asha":
        value = {"type": "asha"}
    value = require_mapping(value, "scheduler")
    check_keys(value, ("type", "grace_period", "reduction_factor", "max_t"), "scheduler", required=("type",))
    kind = choice(value["type"], ("none", "asha"), "scheduler.type")
    if kind == "none":
        return {"type": "none"}
    if n_objectives > 1:
        raise ConfigError("scheduler.type", f"asha stops trials by one metric; a space with {n_objectives} "
                          "objectives cannot use it (set scheduler: none)", kind)
    if metric not in INTERMEDIATE_METRICS:
        raise ConfigError("scheduler.type", f"asha needs a metric measured during training "
                          f"({', '.join(INTERMEDIATE_METRICS)})", metric)
    max_t = value.get("max_t", steps)
    if max_t is None:
        raise ConfigError("scheduler.max_t", "is required when train gives epochs instead of steps", show_value=False)
    out = {
        "type": "asha",
        "max_t": number(max_t, "scheduler.max_t", integer=True, low=1),
        "grace_period": number(value.get("grace_period", max(1, (steps or max_t) // 10)), "scheduler.grace_period",
                               integer=True, low=1),
        "reduction_factor": number(value.get("reduction_factor", 3), "scheduler.reduction_factor", low=1,
                                   low_open=True),
    }
    if out["grace_period"] > out["max_t"]:
        raise ConfigError("scheduler.grace_period", f"must be <= max_t ({out['max_t']})", out["grace_period"])
    return out


def parse_space(doc: Any, *, source: str = "<string>", text: str = "") -> SearchSpace:
    """Validate a parsed YAML document; errors carry ``source`` as the file."""
    try:
        return _parse(doc, source, text)
    except ConfigError as exc:
        raise exc.with_file(source) from None


def _parse(doc: Any, source: str, text: str) -> SearchSpace:
    from hyperswitch.switching import validate_policy
    from hyperswitch.workloads import check_workload_keys, validate_workload

    doc = require_mapping(doc, TOP_LEVEL)
    check_keys(doc, TOP_KEYS, "", required=("name", "workload", "policy"))
    name = check_study_name(string(doc["name"], "name"), "name")
    workload = dict(require_mapping(doc["workload"], "workload"))
    if not (isinstance(workload.get("name"), str) and _PLACEHOLDER_RE.match(workload["name"])):
        check_workload_keys(workload, "workload")  # else checked for every choice by _probe
    policy = dict(require_mapping(doc["policy"], "policy"))
    train = TrainSpec.from_mapping(doc.get("train"), "train")

    params_doc = require_mapping(doc.get("parameters") or {}, "parameters")
    params = _check_conditions({str(n): _param(str(n), s) for n, s in params_doc.items()})
    members = _members(params)
    derived = _derived(doc.get("derived"), params, members)

    used: dict[str, str] = {}
    _placeholders(workload, "workload", used)
    _placeholders(policy, "policy", used)
    for ref, path in used.items():
        if ref not in params and ref not in derived and ref not in members:
            raise ConfigError(path, "refers to an unknown parameter", f"${ref}")
    in_sets, set_order = _set_references(params, derived, members)
    _check_conditional_uses(params, workload, policy, derived, members)
    in_exprs = {n for e in derived.values() for n in e.names}
    refs = set(used) | set(in_sets) | in_exprs
    for n in [*params, *derived, *members]:
        own = [m for m, owner in members.items() if owner == n]
        if n in refs or (own and any(m in refs for m in own)):
            continue
        if n in members:
            raise ConfigError(f"parameters.{members[n]}.sets", "sets a name that is not used: refer to it as $"
                              + n + " in workload or policy", n)
        raise ConfigError(f"parameters.{n}" if n in params else f"derived.{n}",
                          "is not used: refer to it as $" + n + " in workload or policy", n)

    search = doc.get("search", {"algorithm": "tpe"})
    if isinstance(search, str):
        search = {"algorithm": search}
    search = require_mapping(search, "search")
    algorithm = choice(search.get("algorithm", "tpe"), ALGORITHMS, "search.algorithm")
    search_options = _search_options(search, algorithm)
    samples = number(search.get("samples", 8), "search.samples", integer=True, low=1)
    search_seed = number(search.get("seed", 0), "search.seed", integer=True, low=0)
    start_points = _start_points(search.get("start_points", []), params)
    if len(start_points) > samples and algorithm != "grid":
        raise ConfigError("search.start_points", f"has more points than search.samples ({samples})",
                          len(start_points))
    if algorithm == "cmaes" and not any(p.kind in ("float", "int") for p in params.values()):
        raise ConfigError("search.algorithm", "cmaes searches float and int parameters (categorical ones are drawn "
                          "at random) and this space has none", algorithm)

    metrics, modes = _objectives(doc.get("metric", "val_accuracy"), doc.get("mode"))
    metric, mode = metrics[0], modes[0]
    constraints = parse_constraints(doc.get("constraints"))
    if len(metrics) > 1 and algorithm in SINGLE_OBJECTIVE:
        raise ConfigError("search.algorithm", f"{algorithm} optimises one objective and this space has {len(metrics)} "
                          f"({', '.join(metrics)}); use tpe, nsga2, gp, random, grid or qmc", algorithm)
    if constraints and algorithm in SINGLE_OBJECTIVE:
        raise ConfigError("constraints", f"{algorithm} does not learn from constraints (Optuna's sampler ignores "
                          "them); use tpe, nsga2 or gp, or random, grid or qmc, which record them", algorithm)

    space = SearchSpace(
        name=name, workload=workload, policy=policy, train=train, parameters=params, derived=derived,
        algorithm=algorithm, samples=samples, search_seed=search_seed, seeds=_seeds(doc.get("seeds", 1)),
        scheduler=_scheduler(doc.get("scheduler"), metric, train.steps, len(metrics)), metric=metric, mode=mode,
        metrics=tuple(metrics) if len(metrics) > 1 else (), modes=tuple(modes) if len(modes) > 1 else (),
        constraints=constraints,
        resources=ResourcesSpec.from_mapping(doc.get("resources")),
        max_concurrent=number(doc.get("max_concurrent", 2), "max_concurrent", integer=True, low=1),
        description=str(doc.get("description", "")), source=source, text=text, set_order=set_order,
        search_options=search_options, start_points=start_points,
    )
    if algorithm == "grid":
        for n in space.sampled_names:
            p = params[n]
            if p.kind == "float" and p.step is None:
                raise ConfigError(f"parameters.{n}", "grid search needs choices or a step for a float range", n)
        if space.n_configurations() > MAX_GRID:
            raise ConfigError("search.algorithm", f"the grid has more than {MAX_GRID} points",
                              space.n_configurations())

    _probe(space, validate_workload, validate_policy)
    return space


def _objectives(metric: Any, mode: Any) -> tuple[list[str], list[str]]:
    """``metric``/``mode``: a name and its direction, or lists of the same length (several objectives); every
    mode must be its metric's direction."""
    if isinstance(metric, list):
        if not metric:
            raise ConfigError("metric", "must be a metric or a non-empty list of metrics", metric)
        metrics = [choice(m, list(METRICS), f"metric[{i}]") for i, m in enumerate(metric)]
        if len(set(metrics)) != len(metrics):
            raise ConfigError("metric", "the objectives must be distinct", metric)
        if mode is None:
            mode = [METRICS[m] for m in metrics]
        elif isinstance(mode, str) and len(metrics) == 1:
            mode = [mode]
        if not isinstance(mode, list) or len(mode) != len(metrics):
            raise ConfigError("mode", f"must be a list of {len(metrics)} modes (max or min), one per metric", mode)
        keys = [f"mode[{i}]" for i in range(len(metrics))] if len(metrics) > 1 else ["mode"]
    else:
        metrics = [choice(metric, list(METRICS), "metric")]
        if isinstance(mode, list):
            raise ConfigError("mode", "a single metric takes one mode (max or min); a list of modes goes with a "
                              "list of metrics", mode)
        mode = [METRICS[metrics[0]] if mode is None else mode]
        keys = ["mode"]
    modes = []
    for m, md, key in zip(metrics, mode, keys, strict=True):
        md = choice(md, ("max", "min"), key)
        if md != METRICS[m]:
            raise ConfigError(key, f"{m} is better when it is {'higher' if METRICS[m] == 'max' else 'lower'}"
                              f"; mode must be {METRICS[m]}", md)
        modes.append(md)
    return metrics, modes


def _search_options(search: Mapping[str, Any], algorithm: str) -> dict[str, Any]:
    """The algorithm's own options under ``search:``, validated; an option of another algorithm is named as such."""
    own = SEARCH_OPTIONS[algorithm]
    for k in search:
        if k in SEARCH_KEYS or k in own:
            continue
        others = [a for a, keys in SEARCH_OPTIONS.items() if k in keys]
        if others:
            raise ConfigError(f"search.{k}", f"is an option of algorithm {' and '.join(others)}, not of {algorithm}",
                              search[k], show_value=False)
        check_keys({k: search[k]}, (*SEARCH_KEYS, *own), "search")
    out: dict[str, Any] = {}
    for k in own:
        if k not in search:
            continue
        v, key = search[k], f"search.{k}"
        if k == "n_startup":
            out[k] = number(v, key, integer=True, low=1)
        elif k == "sigma0":  # CMA-ES runs on the space scaled to [0, 1] in every dimension (default 1/6)
            out[k] = float(number(v, key, low=0, low_open=True, high=1))
        elif k == "popsize":
            out[k] = number(v, key, integer=True, low=4)  # fewer: CMA-ES's rank-mu update has no weight
        elif k == "qmc_type":
            out[k] = choice(v, QMC_TYPES, key)
        elif k == "scramble":
            out[k] = boolean(v, key)
        elif k == "population_size":  # NSGA-II: individuals per generation (its uniform crossover needs 2)
            out[k] = number(v, key, integer=True, low=2)
        elif k in ("crossover_prob", "mutation_prob", "swapping_prob"):
            out[k] = float(number(v, key, low=0, high=1))
    return out


def _start_points(value: Any, params: Mapping[str, Param]) -> list[dict[str, Any]]:
    """``search.start_points``: each a mapping that gives every sampled parameter a value in its range (on its
    step) or one of its choices; values come back as the parameter holds them (a choice as written in
    ``choices``, a float on a step as the grid has it)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("search.start_points", "must be a list of mappings (parameter name: value)", value)
    sampled = [n for n, p in params.items() if p.sampled]
    out: list[dict[str, Any]] = []
    for i, point in enumerate(value):
        key = f"search.start_points[{i}]"
        point = require_mapping(point, key)
        for n in point:
            if n not in params:
                raise ConfigError(f"{key}.{n}", f"is not a parameter; {did_you_mean(n, sampled)}the sampled ones: "
                                  f"{', '.join(sampled) or '(none)'}", show_value=False)
            if not params[n].sampled:
                raise ConfigError(f"{key}.{n}", "is a fixed parameter; a start point gives the sampled ones only",
                                  point[n])
        values: dict[str, Any] = {}
        for n in _condition_order(params):  # a conditional parameter's condition is read first
            if not is_active(params, n, values):
                if n in point:
                    other, choices = params[n].when  # type: ignore[misc]
                    raise ConfigError(f"{key}.{n}", f"does not apply here: it is sampled only when {other} is "
                                      f"{' or '.join(map(str, choices))}", point[n])
                continue
            if n not in point:
                conditional = any(q.when is not None for q in params.values())
                raise ConfigError(f"{key}.{n}", "is required: a start point gives every sampled parameter"
                                  + (" that applies" if conditional else ""), show_value=False)
            values[n] = _start_value(params[n], point[n], f"{key}.{n}")
        values = {n: values[n] for n in sampled if n in values}
        for j, earlier in enumerate(out):
            if earlier.keys() == values.keys() and all(same_value(earlier[n], values[n]) for n in values):
                raise ConfigError(key, f"repeats start point {j}", dict(point))
        out.append(values)
    return out


def _start_value(p: Param, value: Any, key: str) -> Any:
    """``value`` as parameter ``p`` holds it, or a ConfigError naming the rule it breaks."""
    if p.kind == "categorical":
        for c in p.choices:
            if (is_number(c) and is_number(value) and c == value) or (type(c) is type(value) and c == value):
                return c
        raise ConfigError(key, f"must be one of the choices of parameters.{p.name} "
                          f"({', '.join(map(str, p.choices))})", value)
    low, high = p._range()
    v = number(value, key, integer=p.kind == "int")
    if not low <= v <= high:
        raise ConfigError(key, f"must be within parameters.{p.name}'s range [{low}, {high}]", value)
    if p.step is None:
        return float(v) if p.kind == "float" else v
    k = round((v - low) / p.step)
    on = low + k * p.step
    if abs(v - on) > 1e-9 * max(1.0, abs(p.step)):
        raise ConfigError(key, f"must be on parameters.{p.name}'s step (low {low} + a multiple of {p.step})", value)
    return round(on, 12) if p.kind == "float" else int(on)


ACCURACY_METRICS = ("val_accuracy", "best_val_accuracy")
TARGET_METRICS = ("time_to_target_s", "steps_to_target")  # the first evaluation that reached train's target


def _check_task(space: SearchSpace, workload: Mapping[str, Any], param: str | None) -> None:
    """A regression workload has no accuracy: neither an accuracy metric nor a target accuracy applies; a
    workload-specific metric (``val_recon_error``) needs a workload that reports it."""
    from hyperswitch.workloads import get_workload, workload_names

    name = workload.get("name")
    try:
        entry = get_workload(name)
    except ConfigError:  # an unknown name: the probe reports it against its parameter
        return
    where = f" (parameters.{param} = {name!r})" if param else ""
    n = len(space.objectives)
    keys = {m: ("metric" if n == 1 else f"metric[{i}]") for i, m in enumerate(space.objectives)}
    for i, c in enumerate(space.constraints):
        keys.setdefault(c.metric, f"constraints[{i}]")
    for metric, key in keys.items():
        if metric in TARGET_METRICS and space.train.target_accuracy is None and space.train.target_loss is None:
            raise ConfigError(key, "measures when a run first reached its target: give train.target_accuracy or "
                              "train.target_loss", metric)
        if metric in WORKLOAD_METRICS and entry.task is not None and metric not in entry.metrics:
            reporting = ", ".join(sorted(w for w in workload_names() if metric in get_workload(w).metrics))
            raise ConfigError(key, f"workload {name} does not report {metric}{where}; only {reporting} do", metric)
    if entry.task != "regression":
        return
    for metric, key in keys.items():
        if metric in ACCURACY_METRICS:
            raise ConfigError(key, f"workload {name} is a regression task with no accuracy{where}; use val_loss or "
                              "train_loss", metric)
    if space.train.target_accuracy is not None:
        raise ConfigError("train.target_accuracy", f"workload {name} is a regression task with no accuracy{where}",
                          space.train.target_accuracy)


def _uses(obj: Any, path: str, out: dict[str, str]) -> None:
    """Every template path that is a placeholder -> its name (``_placeholders`` keeps each name's first only)."""
    for where, text in _strings(obj, path):
        m = _PLACEHOLDER_RE.match(text)
        if m:
            out[where] = m.group(1)


def _at(p: Param, value: Any) -> str:
    """The key of a parameter's value that the probe tried: the end of a range it is, or the choices."""
    key = f"parameters.{p.name}"
    if p.kind in ("float", "int"):
        if value == p.low:
            return f"{key}.low"
        if value == p.high:
            return f"{key}.high"
    elif p.kind == "categorical":
        return f"{key}.choices"
    return key


# Rules about a template's key, not about the value a placeholder gives it.
_KEY_RULES = ("unknown key", "unknown hyperparameter")


def _probe(space: SearchSpace, validate_workload: Any, validate_policy: Any) -> None:
    """Instantiate the templates at the ends of every range and every choice, and validate them fully.

    The base point takes each parameter's first probe value; then each parameter in turn takes its other
    values. An error at a key that a ``$name`` fills is reported against that parameter's bound or choices
    (``parameters.lr.low: RULE (it is policy.phase2.lr)``), or against the derived value; an error under a
    key that a categorical's set fills, against that parameter's choices; an error the moved parameter caused,
    against it; anything else is reported as the template's own error.
    """
    fills: dict[str, str] = {}  # template path -> the name whose value fills it, for every use
    _uses(space.workload, "workload", fills)
    _uses(space.policy, "policy", fills)
    members = space.members
    filled_by_set = {path: members[name] for path, name in fills.items() if name in members}

    def set_owner(key: str) -> str | None:
        # a set fills a whole sub-tree: an error anywhere under it is that choice's
        return next((owner for path, owner in filled_by_set.items()
                     if key == path or key.startswith(path + ".") or key.startswith(path + "[")), None)

    base = {n: p.probe_values()[0] for n, p in space.parameters.items()}

    def invalid_for(exc: ConfigError, through: str = "") -> str:
        value = f" = {shown(exc.value)}" if exc.shows_value else ""
        return f"this value is invalid for {exc.key}{value}{through}: {exc.rule}"

    def check(values: Mapping[str, Any], moved: str | None) -> None:
        resolved: dict[str, Any] = {}
        try:
            resolved = space.resolve(values)
            workload, policy = space.instantiate(resolved)
            validate_workload(workload, "workload")
            validate_policy(policy, "policy")
        except ExpressionError as exc:
            if moved:
                raise ConfigError(_at(space.parameters[moved], values[moved]), str(exc), values[moved]) from None
            raise ConfigError(f"derived.{next(iter(space.derived), 'derived')}", str(exc), show_value=False) from None
        except ConfigError as exc:
            name = fills.get(exc.key)
            if exc.rule.startswith(_KEY_RULES):
                name = None  # the key is wrong whatever value fills it
            if name in space.parameters:  # the value of $name itself breaks the rule
                p = space.parameters[name]
                raise ConfigError(_at(p, values[name]), f"{exc.rule} (it is {exc.key})", values[name],
                                  show_value=exc.show_value) from None
            if name in space.derived and name in resolved and moved is None:
                inputs = ", ".join(f"{n} = {resolved[n]!r}" for n in space.derived[name].names)
                raise ConfigError(f"derived.{name}", f"{exc.rule} (it is {exc.key}; from {inputs})",
                                  resolved[name], show_value=exc.show_value) from None
            param = set_owner(exc.key) or moved
            if param is None:
                raise exc from None
            through = f" (through derived {name})" if name in resolved and name in space.derived else ""
            raise ConfigError(_at(space.parameters[param], values[param]), invalid_for(exc, through),
                              values[param]) from None

    check(base, None)
    _check_task(space, space.instantiate(space.resolve(base))[0], None)
    task_param = fills.get("workload.name") if fills.get("workload.name") in space.parameters else None
    if task_param is not None:  # the workload is a parameter: each choice's task must fit the metric
        for v in space.parameters[task_param].probe_values():
            _check_task(space, space.instantiate(space.resolve({**base, task_param: v}))[0], task_param)
    for n, p in space.parameters.items():
        # a conditional parameter is probed where it applies: its chain of conditions set to choices that hold
        where = dict(base)
        m = p.when
        while m is not None:
            where[m[0]] = m[1][0]
            m = space.parameters[m[0]].when
        for v in p.probe_values()[1 if where == base else 0:]:
            check({**where, n: v}, n)
    if space.algorithm == "grid" and len(space.sampled_names) <= 3:
        # Small grids: every point (derived values may only break in combination).
        if space.conditional:
            for point in space.grid_points(500):
                check(dict(base, **point), None)
        else:
            for combo in itertools.islice(itertools.product(*space.grid().values()), 500):
                check(dict(base, **dict(zip(space.grid(), combo, strict=True))), None)


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space YAML file (safe loader); a text already validated in this process under
    the same source is not validated again (:func:`space_from_text`)."""
    _, text = load_yaml_file(path, "search space")
    return space_from_text(text, str(path))


def space_from_text(text: str, source: str) -> SearchSpace:
    """Parse and validate a search space's text; ``source`` names it in errors.

    Parsed and validated once per process for each (text, source): validation probes every range end and
    choice (building policies on a probe model), so a trial that asks for its space several times pays once.
    Each call returns its own copy, so a caller that changes it changes no other caller's."""
    return copy.deepcopy(_validated_space(text, source))


@functools.lru_cache(maxsize=32)
def _validated_space(text: str, source: str) -> SearchSpace:
    try:
        doc = load_yaml(text)
    except YAMLSyntaxError as exc:
        raise ConfigError("", f"is not valid YAML: {exc.reason}", file=source, line=exc.line,
                          column=exc.column) from None
    return parse_space(doc, source=source, text=text)
