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

- ``OptunaProposer`` (``tpe``, ``random``): each proposal asks a fresh Optuna study with a sampler seeded
  from ``(search seed, k)``. Random search never waits. TPE is told the results of configurations
  ``0 .. k-1-L`` (``L`` = configurations allowed in flight unseen, ``search_lag``) and shown ``k-L .. k-1`` as
  running (its constant liar), once ``k - L`` reaches its ``n_startup_trials``; before that it samples at
  random and needs nothing.
- ``GridSearcher``: the grid in an order shuffled by the search seed; points a study already holds are skipped.
- ``FixedSearcher``: one empty configuration (a space with no sampled parameter).

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

from hyperswitch.results.select import same_value

OBJECTIVE = "objective"


# TPE samples at random until this many configurations have results (Optuna's default, pinned here: a
# configuration's proposal must not change with the installed Optuna's default).
TPE_STARTUP = 10


@dataclass
class Carried:
    """A configuration from an earlier session: its sampled values, seeds still to run, objectives so far
    (seed -> value, finite values only)."""

    config_id: str
    params: dict[str, Any]
    missing_seeds: list[int]
    values: Mapping[int, float]


@dataclass
class _Config:
    params: dict[str, Any]
    remaining: set[int]
    values: dict[int, float] = field(default_factory=dict)  # seed -> finite objective

    def mean(self) -> float | None:
        """The mean over the seeds with a finite objective; fsum: independent of the order they finished in."""
        vals = [self.values[s] for s in sorted(self.values)]
        return math.fsum(vals) / len(vals) if vals else None


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
                 carried: Sequence[Carried] = ()) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self.proposer = proposer
        self.seeds = list(seeds)
        self.configs: dict[int, _Config] = {}
        self.queue: deque[tuple[int, int]] = deque()
        self.trials: dict[str, tuple[int, int]] = {}
        self.lost: set[int] = set()  # configurations with a trial Ray cut off: their result is not known yet
        for c in sorted(carried, key=lambda c: config_index(c.config_id)):
            k = config_index(c.config_id)
            self.configs[k] = _Config(dict(c.params), set(c.missing_seeds), dict(c.values))
            self.queue.extend((k, s) for s in c.missing_seeds)
        free = (k for k in itertools.count() if k not in self.configs)
        self.to_propose: deque[int] = deque(itertools.islice(free, max(0, n_new)))

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
        told = [(c.params, c.mean()) for j in range(m) if (c := self.configs.get(j)) is not None]
        pending = [c.params for j in range(m, k) if (c := self.configs.get(j)) is not None] if m else []
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

    def save(self, checkpoint_path: str) -> None:  # our own Parquet files are what resume reads
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


class OptunaProposer:
    """TPE or random search through Optuna's ask interface, one fresh study and sampler per proposal."""

    def __init__(self, distributions: Mapping[str, Any], algorithm: str, seed: int, mode: str, lag: int,
                 n_startup: int = TPE_STARTUP) -> None:
        self.distributions = dict(distributions)
        self.algorithm, self.seed, self.mode, self.lag, self.n_startup = algorithm, seed, mode, lag, n_startup

    def needs(self, index: int) -> int:
        """Configurations whose results proposal ``index`` is made from (0: none)."""
        if self.algorithm != "tpe":
            return 0
        m = index - self.lag
        return m if m >= self.n_startup else 0

    def sampler(self, index: int) -> Any:
        import numpy as np
        import optuna

        seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        if self.algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup)
        return optuna.samplers.RandomSampler(seed=seed)

    def _known(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` as Optuna holds them (a Parquet-widened int choice becomes the choice again)."""
        return {n: d.to_external_repr(d.to_internal_repr(params[n])) for n, d in self.distributions.items()}

    def propose(self, index: int, told: Sequence[tuple[Mapping[str, Any], float | None]],
                pending: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if self.mode == "max" else "minimize",
                                    sampler=self.sampler(index))
        d = self.distributions
        study.add_trials(
            [create_trial(params=self._known(p), distributions=d, value=v) if v is not None
             else create_trial(params=self._known(p), distributions=d, state=TrialState.FAIL) for p, v in told]
            + [create_trial(params=self._known(p), distributions=d, state=TrialState.RUNNING) for p in pending])
        return dict(study.ask(d).params)


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
    only the first ``limit`` points of that order. Points the study already holds are skipped (``skip``), so a
    resumed sweep runs exactly the points that are missing, whatever the earlier session got through."""

    def __init__(self, grid: Mapping[str, Sequence[Any]], mode: str, seed: int, limit: int | None = None) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        names = list(grid)
        points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
        random.Random(seed).shuffle(points)
        self.points = points[:limit] if limit else points

    def skip(self, params: Mapping[str, Any]) -> bool:
        """Drop the grid point equal to ``params``; False if it is not (or no longer) among the points to run."""
        for i, p in enumerate(self.points):
            if all(k in params and same_value(v, params[k]) for k, v in p.items()):
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
