"""Seeds as trials, and proposals that do not depend on timing.

``SeedRepeater`` is the Tune searcher of a sweep. Every configuration it proposes runs once per seed, each seed
its own trial (``c0003-s1``) under one config id, and a configuration's result is the mean of its seeds'
objectives (``math.fsum``: the same float whatever order they finished in), so a single lucky seed does not
steer the search.

Configuration ``k`` is proposed by a *proposer* from the search seed and ``k`` alone, plus, where the algorithm
learns from results, the results of configurations ``0 .. needs(k) - 1`` in config order: ``SeedRepeater``
proposes ``k`` only once all of those have finished (until then ``suggest`` returns None: Tune's "not now").
So the configurations of a study are a function of its seed and its results, not of which trial happened to
finish first, and a resumed study (``carried``: what its table holds) proposes exactly what an uninterrupted
one does:

- ``OptunaProposer`` (``tpe``, ``random``, ``gp``, ``cmaes``, ``nsga2``): each proposal asks a fresh Optuna study with a
  sampler seeded from ``(search seed, k)``. Random search never waits. TPE, GP (``GPSampler``) and CMA-ES
  (``CmaEsSampler``) are told the results of configurations ``0 .. k-1-L`` (``L`` = configurations allowed in
  flight unseen, ``search_lag``) and shown ``k-L .. k-1`` as running (TPE's constant liar, GP's pending
  points), once ``k - L`` (plus the warm start's prior trials, for TPE and GP) reaches their ``n_startup``;
  before that they sample at random and need nothing. CMA-ES keeps its state in its trials' system attrs (the
  generation each point was asked in; the optimizer, pickled, on the trial that told it a generation): each
  proposal's attrs are kept and put back on that configuration's trial in every later proposal's study, so the
  fresh studies hold what one long study would; a resumed study makes its earlier proposals again (they are a
  function of the results it holds) to learn them back (``SeedRepeater._replay``). NSGA-II (``NSGAIISampler``)
  does the same with its generation attr (start points are members of generation 0) and, in each fresh study's
  system attrs, the parents it chose for each generation, kept by config index: configuration ``k`` waits for
  results once ``k - L`` reaches ``population_size`` (before that its generation is 0, drawn at random).
- Several objectives or constraints: ``SeedRepeater(measures=...)`` keeps each trial's value of every objective
  and constrained metric (the trial's result under the metric's name) and tells the proposer, per configuration,
  the seeds' mean of each (``seed_mean``); each proposal's study then has one direction per objective and its
  trials carry Optuna's constraint values (the ``constraints`` system attr, one value per constraint: mean -
  bound for ``<=``, bound - mean for ``>=``). A single objective without constraints is told a plain mean, as before.
- ``QMCProposer`` (``qmc``): point ``i`` of scipy's Sobol or Halton sequence, drawn directly; never waits.
- ``GridSearcher``: the grid in an order shuffled by the search seed; points a study already holds are skipped.
- ``FixedSearcher``: one empty configuration (a space with no sampled parameter).

``search.start_points`` are proposals ``0 .. S-1`` of every algorithm (and the first points of a grid); the
algorithm's own proposals follow (a QMC sequence from its first point).

A trial that Tune gave up on (Ray took it away more often than ``max_failures``) leaves its configuration's
result unknown until ``--resume`` continues it, so proposals that would learn from it are not made in this
session (the searcher says it is finished once the rest has run): the study still proposes what an
uninterrupted one would.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from hyperswitch.results.objectives import Constraint, optuna_constraint_attrs
from hyperswitch.results.select import same_value, seed_mean

OBJECTIVE = "objective"


# Each learning algorithm samples at random until this many configurations have results (``n_startup`` in
# ``search:``; Optuna's defaults, pinned here: a configuration's proposal must not change with the installed
# Optuna's default).
TPE_STARTUP = 10
STARTUP = {"tpe": TPE_STARTUP, "gp": 10, "cmaes": 1}
LEARNING = tuple(STARTUP)  # the algorithms that learn from results (and so can be warm-started)
QMC_TYPE, QMC_SCRAMBLE = "sobol", True
# NSGA-II: Optuna's defaults, pinned; its first generation (population_size configurations, start points
# included) is drawn at random, each later one bred from the best of the one before
NSGA2_DEFAULTS = {"population_size": 50, "crossover_prob": 0.9, "swapping_prob": 0.5}
NSGA2_GENERATION = "NSGAIISampler:generation"  # the trial system attr that holds a trial's generation
NSGA2_PARENTS = "NSGAIISampler:parent:"  # + generation: the study system attr that caches its parents

# What a proposal is made from: configurations with results (index, params, result) and configurations still
# running (index, params), in config order. A result is the seeds' mean of the objective (None: no seed gave a
# finite value) or, where the sampler needs more than one number (several objectives, constraints), a mapping
# metric -> the seeds' mean (None where no seed gave a finite value): ``SeedRepeater(measures=...)``.
Result = float | Mapping[str, float | None] | None
Told = tuple[int, Mapping[str, Any], Result]
Pending = tuple[int, Mapping[str, Any]]


@dataclass
class Carried:
    """A configuration from an earlier session: its sampled values, seeds still to run, objectives so far
    (seed -> value, finite values only)."""

    config_id: str
    params: dict[str, Any]
    missing_seeds: list[int]
    values: Mapping[int, float]
    measured: Mapping[str, Mapping[int, float]] = field(default_factory=dict)  # metric -> seed -> finite value


@dataclass
class _Config:
    params: dict[str, Any]
    remaining: set[int]
    values: dict[int, float] = field(default_factory=dict)  # seed -> finite objective
    measured: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> finite value

    def mean(self) -> float | None:
        """The mean over the seeds with a finite objective; fsum: independent of the order they finished in."""
        return seed_mean(self.values[s] for s in sorted(self.values))

    def means(self, measures: Sequence[str]) -> dict[str, float | None]:
        """metric -> the mean over the seeds with a finite value of it (seed order, fsum), None if none."""
        return {m: seed_mean(v[s] for s in sorted(v)) for m in measures for v in [self.measured.get(m, {})]}


def config_id(index: int) -> str:
    return f"c{index:04d}"


def config_index(cid: str) -> int:
    return int(str(cid)[1:])


def trial_id(cid: str, seed: int) -> str:
    return f"{cid}-s{seed}"


def search_lag(max_concurrent: int, n_seeds: int) -> int:
    """Configurations that may be in flight, unseen by the searcher, when the next one is proposed: enough to
    keep ``max_concurrent`` trials busy with ``n_seeds`` trials per configuration."""
    return max(1, math.ceil(max_concurrent / max(1, n_seeds)))


class SeedRepeater(Searcher):
    """The sweep's Tune searcher: configurations from ``proposer`` (see the module docstring), each run once per
    seed. ``n_new``: how many configurations to propose; they take the lowest indices that ``carried`` does not
    hold (a configuration proposed before an interruption but never recorded gets its own index back)."""

    def __init__(self, proposer: Any, seeds: Sequence[int], mode: str, *, n_new: int,
                 carried: Sequence[Carried] = (), measures: Sequence[str] = ()) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self.proposer = proposer
        self.seeds = list(seeds)
        # several objectives or constraints: each trial's value of every one of these metrics (its result under
        # the metric's name) is kept, and a configuration's result is their seeds' means, by metric
        self.measures = list(measures)
        self.configs: dict[int, _Config] = {}
        self.queue: deque[tuple[int, int]] = deque()
        self.trials: dict[str, tuple[int, int]] = {}
        self.lost: set[int] = set()  # configurations with a trial Ray cut off: their result is not known yet
        for c in sorted(carried, key=lambda c: config_index(c.config_id)):
            k = config_index(c.config_id)
            self.configs[k] = _Config(dict(c.params), set(c.missing_seeds), dict(c.values),
                                      {m: dict(v) for m, v in c.measured.items()})
            self.queue.extend((k, s) for s in c.missing_seeds)
        free = (k for k in itertools.count() if k not in self.configs)
        self.to_propose: deque[int] = deque(itertools.islice(free, max(0, n_new)))
        if getattr(proposer, "remembers", False) and self.configs:
            self._replay()

    def _told(self, m: int, k: int, params: Mapping[int, Mapping[str, Any]]) -> tuple[list[Told], list[Pending]]:
        """What proposal ``k`` is made from: configurations ``0 .. m-1`` with their results and ``m .. k-1`` as
        running (those that exist: ``params``)."""
        told = [(j, params[j], self._result(self.configs.get(j))) for j in range(m) if j in params]
        return told, [(j, params[j]) for j in range(m, k) if j in params]

    def _result(self, c: _Config | None) -> Result:
        if not self.measures:
            return c.mean() if c is not None else None
        return c.means(self.measures) if c is not None else dict.fromkeys(self.measures)

    def _replay(self) -> None:
        """A proposer that ``remembers`` (CMA-ES: its state lives in its trials' system attrs) learns again what
        the proposals of an earlier session left: each configuration up to the highest carried one is proposed
        again, in order, from the results the study holds, as the uninterrupted study proposed it; a carried
        configuration keeps its recorded values, one never recorded (a free index below carried ones) is
        proposed now as it will be again when its turn comes."""
        params: dict[int, Mapping[str, Any]] = {}
        for i in range(max(self.configs) + 1):
            told, pending = self._told(self.proposer.needs(i), i, params)
            again = self.proposer.propose(i, told, pending)
            params[i] = self.configs[i].params if i in self.configs else again

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def _finished(self, k: int) -> bool:
        c = self.configs.get(k)
        return c is None or not c.remaining

    def _propose(self) -> bool | None:
        """Propose the next configuration: True if proposed, None if it must wait, False if there is none."""
        k = self.to_propose[0]
        m = self.proposer.needs(k)
        if not all(self._finished(j) for j in range(m)):
            return None
        if any(j in self.lost for j in range(m)):  # known only after --resume continues the trial: stop here,
            self.to_propose.clear()  # or this study would propose what an uninterrupted one would not
            return False
        told, pending = self._told(m, k, {j: c.params for j, c in self.configs.items()})
        params = self.proposer.propose(k, told, pending)
        if params is None or params == Searcher.FINISHED:  # a grid with no point left
            self.to_propose.clear()
            return False
        self.to_propose.popleft()
        self.configs[k] = _Config(dict(params), set(self.seeds))
        self.queue.extend((k, s) for s in self.seeds)
        return True

    # Ray annotates Searcher.suggest Optional[Dict], but Tune takes Searcher.FINISHED (a str) from it too
    def suggest(self, tune_trial_id: str) -> dict | str | None:  # type: ignore[override]
        if not self.queue and self.to_propose and self._propose() is None:
            return None  # waiting for results: Tune asks again later
        if not self.queue:
            return Searcher.FINISHED
        k, seed = self.queue.popleft()
        self.trials[tune_trial_id] = (k, seed)
        cid = config_id(k)
        return {"params": dict(self.configs[k].params), "config_id": cid, "seed": seed,
                "trial_id": trial_id(cid, seed)}

    def on_trial_complete(self, tune_trial_id: str, result: Mapping[str, Any] | None = None,
                          error: bool = False) -> None:
        if tune_trial_id not in self.trials:
            return
        k, seed = self.trials.pop(tune_trial_id)
        c = self.configs[k]
        c.remaining.discard(seed)
        if error:  # Tune gave up on it (Ray took it away past max_failures); a failure of the trial's own code
            self.lost.add(k)  # is a result (status error, no objective)
        value = None if (error or not result) else result.get(OBJECTIVE)
        if value is not None and math.isfinite(float(value)):
            c.values[seed] = float(value)
        for m in self.measures:
            v = None if (error or not result) else result.get(m)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v)):
                c.measured.setdefault(m, {})[seed] = float(v)

    def save(self, checkpoint_path: str) -> None:  # our own Parquet files are what resume reads
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


class _Proposer:
    """Proposals ``0 .. len(start_points) - 1`` are the start points, in order; the rest are the algorithm's."""

    start_points: list[dict[str, Any]]
    remembers = False  # whether each proposal leaves state that later ones read (SeedRepeater replays them)

    def needs(self, index: int) -> int:
        return 0

    def propose(self, index: int, told: Sequence[Told], pending: Sequence[Pending]) -> dict[str, Any]:
        if index < len(self.start_points):
            return dict(self.start_points[index])
        return self._propose(index, told, pending)

    def _propose(self, index: int, told: Sequence[Told], pending: Sequence[Pending]) -> dict[str, Any]:
        raise NotImplementedError


class OptunaProposer(_Proposer):
    """TPE, random search, Gaussian-process BO, CMA-ES or NSGA-II through Optuna's ask interface, one fresh study
    and sampler per proposal (see the module docstring).

    ``options``: the algorithm's ``search:`` options (``n_startup``, ``sigma0``, ``popsize``, NSGA-II's
    ``population_size``, ``crossover_prob``, ``mutation_prob``, ``swapping_prob``); ``priors``: (params, result)
    of configurations of an earlier study (``--warm-start``): added to every proposal's study as finished trials
    before this study's own (TPE, GP), or given to CMA-ES as its ``source_trials`` (WS-CMA-ES: its initial mean,
    step size and covariance come from the best tenth of them). They are never this study's configurations.

    ``objectives`` ((metric, mode) pairs, more than one) and ``constraints``: each proposal's study has one
    direction per objective and is told, per configuration, the seeds' mean of each objective (its results are
    mappings metric -> mean: ``SeedRepeater(measures=...)``) and each constraint's value from the seeds' mean of
    its metric (``Constraint.value``: feasible when <= 0), in the trial system attrs Optuna's samplers read
    (``hyperswitch.results.objectives.optuna_constraint_attrs``: the ``constraints`` list Optuna's samplers store,
    read as ``FrozenTrial.constraints``; ``export-optuna`` writes the same). A configuration missing the mean of an
    objective or of a constrained metric is told as failed."""

    def __init__(self, distributions: Mapping[str, Any], algorithm: str, seed: int, mode: str, lag: int,
                 n_startup: int | None = None, *, options: Mapping[str, Any] | None = None,
                 start_points: Sequence[Mapping[str, Any]] = (),
                 priors: Sequence[tuple[Mapping[str, Any], Result]] = (),
                 objectives: Sequence[tuple[str, str]] = (), constraints: Sequence[Constraint] = (),
                 conditions: Mapping[str, tuple[str, Sequence[Any]]] | None = None) -> None:
        if algorithm not in (*LEARNING, "random", "nsga2"):
            raise ValueError(f"OptunaProposer: unknown algorithm {algorithm!r}")
        self.distributions = dict(distributions)
        self.algorithm, self.seed, self.mode, self.lag = algorithm, seed, mode, lag
        self.options = dict(options or {})
        if algorithm == "nsga2":
            self.options = {**NSGA2_DEFAULTS, **self.options}
        self.n_startup = n_startup if n_startup is not None else int(self.options.get(
            "n_startup", self.options["population_size"] if algorithm == "nsga2" else STARTUP.get(algorithm, 0)))
        self.start_points = [dict(p) for p in start_points]
        self.objectives = [(str(m), str(d)) for m, d in objectives]
        self.constraints = list(constraints)
        # results are mappings metric -> seeds' mean (several objectives or constraints), else plain means
        self.measured = len(self.objectives) > 1 or bool(self.constraints)
        if self.measured and not self.objectives:
            self.objectives = [("objective", mode)]
        self.priors = [(dict(p), v if isinstance(v, Mapping) or v is None else float(v)) for p, v in priors]
        # CMA-ES and NSGA-II keep their state in their trials' system attrs (and NSGA-II its parents in the study's)
        self.remembers = algorithm in ("cmaes", "nsga2")
        self.attrs: dict[int, dict[str, Any]] = {}  # the system attrs each proposal's trial was left with
        self.parents: dict[str, list[int]] = {}  # NSGA-II: generation key -> its parents' config indices
        self.study: Any = None
        # conditional parameters: name -> (the categorical it depends on, its choices that make it apply); a
        # proposal then asks define-by-run (each parameter suggested only where it applies, conditions first)
        self.conditions = {n: (str(o), tuple(c)) for n, (o, c) in (conditions or {}).items()}
        self.order = _condition_order(list(self.distributions), self.conditions)

    def _in_study(self) -> int:
        """Prior trials inside each proposal's study (CMA-ES takes them as source trials, outside it)."""
        return len(self.priors) if self.algorithm in ("tpe", "gp") else 0

    def _learning(self, index: int) -> bool:
        """Whether proposal ``index`` is the algorithm's own (past its start points and random start-up; for
        NSGA-II: once its first generation can have ``population_size`` results, start points included)."""
        if self.algorithm == "nsga2":
            return max(0, index - self.lag) >= self.n_startup
        if self.algorithm not in LEARNING or index < len(self.start_points):
            return False
        return max(0, index - self.lag) + self._in_study() >= self.n_startup

    def needs(self, index: int) -> int:
        """Configurations whose results proposal ``index`` is made from (0: none): all but the last ``lag``
        before it, once the algorithm learns (``n_startup`` configurations with results, priors included)."""
        if index < len(self.start_points):
            return 0
        return max(0, index - self.lag) if self._learning(index) else 0

    def propose(self, index: int, told: Sequence[Told], pending: Sequence[Pending]) -> dict[str, Any]:
        if self.algorithm == "nsga2" and index < len(self.start_points):
            self.attrs[index] = {NSGA2_GENERATION: 0}  # start points are members of the first generation
        return super().propose(index, told, pending)

    def sampler(self, index: int) -> Any:
        import warnings

        import numpy as np
        import optuna

        seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        if self.algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup)
        if self.algorithm == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup,
                                             warn_independent_sampling=False)
        if self.algorithm == "nsga2":
            o = self.options
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=int(o["population_size"]), crossover_prob=float(o["crossover_prob"]),
                swapping_prob=float(o["swapping_prob"]),
                mutation_prob=float(o["mutation_prob"]) if "mutation_prob" in o else None)
        if self.algorithm == "cmaes":
            kw: dict[str, Any] = {}
            if "sigma0" in self.options:
                kw["sigma0"] = self.options["sigma0"]
            if "popsize" in self.options:
                kw["popsize"] = self.options["popsize"]
            if self.priors:
                kw["source_trials"] = self._prior_trials()
            with warnings.catch_warnings():  # sigma0 (deprecated since Optuna 4.9), source_trials (experimental)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # categorical parameters are drawn at random by its independent sampler: no warning each time
                return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=self.n_startup,
                                                    warn_independent_sampling=False, **kw)
        return optuna.samplers.RandomSampler(seed=seed)

    def _known(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` as Optuna holds them (a Parquet-widened int choice becomes the choice again); only those
        that apply (a conditional parameter that does not is left out, with its distribution)."""
        return {n: d.to_external_repr(d.to_internal_repr(params[n])) for n, d in self.distributions.items()
                if not self.conditions or (n in params and active(n, self.conditions, params))}

    def _dists(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return {n: self.distributions[n] for n in known} if self.conditions else self.distributions

    def outcome(self, result: Result) -> tuple[list[float] | None, dict[str, list[float]]]:
        """(the values the sampler is told, or None: failed; the constraint system attrs) of one result."""
        if not self.measured:
            return ([float(result)] if isinstance(result, int | float) else None), {}
        if not isinstance(result, Mapping):
            return None, {}
        values = [result.get(m) for m, _ in self.objectives]
        constraints = optuna_constraint_attrs(self.constraints, result)
        if any(v is None for v in values) or constraints is None:
            return None, {}
        return [float(v) for v in values if v is not None], constraints

    def _trial(self, params: Mapping[str, Any], result: Result, attrs: Mapping[str, Any] | None = None) -> Any:
        from optuna.trial import TrialState, create_trial

        values, constraints = self.outcome(result)
        known = self._known(params)
        if values is None:
            return create_trial(params=known, distributions=self._dists(known), state=TrialState.FAIL,
                                system_attrs=dict(attrs or {}))
        return create_trial(params=known, distributions=self._dists(known), values=values,
                            system_attrs={**(attrs or {}), **constraints})

    def _prior_trials(self) -> list[Any]:
        return [self._trial(p, v) for p, v in self.priors if self.outcome(v)[0] is not None]

    def _propose(self, index: int, told: Sequence[Told], pending: Sequence[Pending]) -> dict[str, Any]:
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if not self._learning(index):
            told, pending = (), ()  # random (start-up): nothing to learn from
        directions: list[Any] = ["maximize" if d == "max" else "minimize" for _, d in self.objectives] or \
            ["maximize" if self.mode == "max" else "minimize"]
        storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=storage, study_name="proposal", directions=directions,
                                    sampler=self.sampler(index))
        d = self.distributions

        def attrs(j: int) -> dict[str, Any]:
            return dict(self.attrs.get(j, {})) if self.remembers else {}

        trials = self._prior_trials() if self._in_study() else []
        first = len(trials)  # the number of configuration told[0]'s trial in this study
        trials += [self._trial(p, v, attrs(j)) for j, p, v in told]
        trials += [create_trial(params=(k := self._known(p)), distributions=self._dists(k), state=TrialState.RUNNING,
                                system_attrs=attrs(j)) for j, p in pending]
        study.add_trials(trials)
        self.study = study  # the latest proposal's study: what the sampler was told, for inspection
        if self.algorithm == "nsga2":
            self._restore_parents(storage, study.study_name, first, [j for j, _, _ in told] + [j for j, _ in pending])
        if self.conditions:  # define-by-run: each parameter only where it applies, its condition first
            trial = study.ask()
            for n in self.order:
                if active(n, self.conditions, trial.params):
                    suggest(trial, n, d[n])
        else:
            trial = study.ask(d)
        if self.remembers:  # CMA-ES's generation, and its optimizer where this proposal told it a generation
            asked = next(t for t in reversed(study.get_trials(deepcopy=False)) if t.number == trial.number)
            self.attrs[index] = dict(asked.system_attrs)
        if self.algorithm == "nsga2":
            self._keep_parents(storage, study.study_name, first, [j for j, _, _ in told] + [j for j, _ in pending])
        return dict(trial.params)

    def _restore_parents(self, storage: Any, name: str, first: int, indices: Sequence[int]) -> None:
        """Put the parents each NSGA-II generation was bred from (chosen by an earlier proposal) into this
        proposal's study, as the study system attrs NSGA-II caches them in (their trial ids in this study)."""
        sid = storage.get_study_id_from_name(name)
        number = {j: first + n for n, j in enumerate(indices)}
        for key, parents in self.parents.items():
            if all(j in number for j in parents):
                storage.set_study_system_attr(sid, key, [storage.get_trial_id_from_study_id_trial_number(
                    sid, number[j]) for j in parents])

    def _keep_parents(self, storage: Any, name: str, first: int, indices: Sequence[int]) -> None:
        """Remember the parents of a generation this proposal chose first, by configuration index."""
        sid = storage.get_study_id_from_name(name)
        for key, ids in storage.get_study_system_attrs(sid).items():
            if key.startswith(NSGA2_PARENTS) and key not in self.parents:
                numbers = [storage.get_trial_number_from_id(t) - first for t in ids]
                self.parents[key] = [indices[n] for n in numbers]


class QMCProposer(_Proposer):
    """Quasi-Monte Carlo: proposal ``len(start_points) + i`` is point ``i`` of scipy's Sobol or Halton sequence
    (``qmc_type``; ``scramble``d with the search seed, the default, or not: then its first point is every range's
    low end), one dimension per sampled parameter in the space's order, mapped onto each parameter's range
    (uniform, or uniform in the log on a log range; a step or an int range takes the ``floor`` of its grid
    points' share, a categorical the choice whose share holds the coordinate). It needs no results, so point ``i``
    is drawn directly (``fast_forward(i)``), the same in every session."""

    def __init__(self, distributions: Mapping[str, Any], seed: int, options: Mapping[str, Any] | None = None,
                 start_points: Sequence[Mapping[str, Any]] = (),
                 conditions: Mapping[str, tuple[str, Sequence[Any]]] | None = None) -> None:
        self.distributions = dict(distributions)
        self.conditions = {n: (str(o), tuple(c)) for n, (o, c) in (conditions or {}).items()}
        self.seed = seed
        options = dict(options or {})
        self.qmc_type = str(options.get("qmc_type", QMC_TYPE))
        self.scramble = bool(options.get("scramble", QMC_SCRAMBLE))
        self.start_points = [dict(p) for p in start_points]

    def unit_point(self, i: int) -> list[float]:
        """Point ``i`` (from 0) of the sequence, in the unit cube."""
        import warnings

        from scipy.stats import qmc

        engine = qmc.Sobol if self.qmc_type == "sobol" else qmc.Halton
        sequence = engine(d=len(self.distributions), scramble=self.scramble, rng=self.seed)
        with warnings.catch_warnings():  # Sobol notes that its balance needs 2^m points: we draw them one by one
            warnings.simplefilter("ignore", UserWarning)
            if i:
                sequence.fast_forward(i)
            return [float(u) for u in sequence.random(1)[0]]

    def _propose(self, index: int, told: Sequence[Told], pending: Sequence[Pending]) -> dict[str, Any]:
        u = self.unit_point(index - len(self.start_points))
        point = {n: from_unit(d, x) for (n, d), x in zip(self.distributions.items(), u, strict=True)}
        # a conditional parameter keeps its coordinate where it applies and is left out where it does not
        return {n: v for n, v in point.items() if not self.conditions or active(n, self.conditions, point)}


def active(name: str, conditions: Mapping[str, tuple[str, Sequence[Any]]], values: Mapping[str, Any]) -> bool:
    """Whether parameter ``name`` applies given ``values``: every condition up its chain holds."""
    if name not in conditions:
        return True
    other, choices = conditions[name]
    return other in values and active(other, conditions, values) and \
        any(same_value(c, values[other]) for c in choices)


def _condition_order(names: Sequence[str], conditions: Mapping[str, tuple[str, Sequence[Any]]]) -> list[str]:
    """``names``, each after the parameter its condition names."""
    order: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if n not in conditions or conditions[n][0] in order]
        if not ready:
            raise ValueError(f"conditions in a cycle: {pending}")
        order += ready
        pending = [n for n in pending if n not in ready]
    return order


def suggest(trial: Any, name: str, d: Any) -> Any:
    """Suggest ``name`` from distribution ``d`` through the trial's public API (define-by-run)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
    return trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)


def from_unit(distribution: Any, u: float) -> Any:
    """The value of an Optuna distribution at ``u`` in [0, 1) (``QMCProposer``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    d = distribution
    if isinstance(d, CategoricalDistribution):
        return d.choices[min(int(u * len(d.choices)), len(d.choices) - 1)]
    if d.log:
        top = d.high if isinstance(d, FloatDistribution) else d.high + 1  # an int range: [low, high + 1), floored
        v = math.exp(math.log(d.low) + u * (math.log(top) - math.log(d.low)))
        return min(max(v, d.low), d.high) if isinstance(d, FloatDistribution) else min(int(v), d.high)
    if isinstance(d, IntDistribution) or d.step is not None:
        n = int(math.floor((d.high - d.low) / d.step + 1e-9)) + 1
        v = d.low + min(int(u * n), n - 1) * d.step
        return int(v) if isinstance(d, IntDistribution) else round(v, 12)
    return d.low + u * (d.high - d.low)


class _InOrder:
    """A proposer whose proposals do not depend on results: the next point of its own order, never waiting."""

    if TYPE_CHECKING:
        def suggest(self, trial_id: str) -> dict | str | None: ...  # the subclass's, a Searcher's

    def needs(self, index: int) -> int:
        return 0

    def propose(self, index: int, told: Sequence[Any], pending: Sequence[Any]) -> dict | str | None:
        return self.suggest(f"inner-{config_id(index)}")


class FixedSearcher(_InOrder, Searcher):
    """For spaces with no sampled parameter: one empty configuration."""

    def __init__(self, mode: str) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self.done = False

    # Ray annotates Searcher.suggest Optional[Dict], but Tune takes Searcher.FINISHED (a str) from it too
    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        if self.done:
            return Searcher.FINISHED
        self.done = True
        return {}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


class GridSearcher(_InOrder, Searcher):
    """Grid search: every point of the grid once, in an order shuffled by ``seed``; with ``limit`` (``--samples``)
    only the first ``limit`` points of that order. ``start_points`` (grid points: ``search.start_points`` are
    checked to be) come first, in their order, and are not run again in the grid's. Points the study already
    holds are skipped (``skip``), so a resumed sweep runs exactly the points that are missing, whatever the
    earlier session got through."""

    def __init__(self, grid: Mapping[str, Sequence[Any]], mode: str, seed: int, limit: int | None = None,
                 start_points: Sequence[Mapping[str, Any]] = (),
                 points: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        names = list(grid)
        if points is None:  # the full product; ``points``: a conditional space's (each with the names that apply)
            points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
        points = [dict(p) for p in points]
        random.Random(seed).shuffle(points)
        first = [{n: p[n] for n in names if n in p} for p in start_points]
        points = first + [p for p in points if not any(_same(p, q) for q in first)]
        self.points = points[:limit] if limit else points

    def skip(self, params: Mapping[str, Any]) -> bool:
        """Drop the grid point equal to ``params``; False if it is not (or no longer) among the points to run."""
        for i, p in enumerate(self.points):
            if _same(p, params):
                del self.points[i]
                return True
        return False

    # Ray annotates Searcher.suggest Optional[Dict], but Tune takes Searcher.FINISHED (a str) from it too
    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        if not self.points:
            return Searcher.FINISHED
        return dict(self.points.pop(0))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list[float] | None = None) -> None:
        self.skip(parameters)


def _same(point: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """``params`` holds ``point``'s values (numbers compared as floats: Parquet may have widened an int), and no
    other value that applies (a conditional space's points differ in which names they have)."""
    return all(k in params and same_value(v, params[k]) for k, v in point.items()) and \
        all(k in point for k, v in params.items() if not _null(v))


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
