"""Seeds as trials: every configuration the searcher suggests runs once per seed, under one config id.

``SeedRepeater`` wraps a Tune searcher. Each seed is its own trial (``c0003-s1``); when all seeds of a
configuration have finished, the searcher is told the mean of their objective, so a single lucky seed does
not steer the search. On resume, configurations that finished before are given to the searcher as
evaluated points, and configurations with missing seeds run just those seeds.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

OBJECTIVE = "objective"


@dataclass
class _Config:
    params: dict[str, Any]
    inner_id: str | None  # None: a configuration carried over from an earlier session
    remaining: set[int]
    values: list[float] = field(default_factory=list)


@dataclass
class Carried:
    """A configuration from an earlier session: its sampled values, seeds still to run, objectives so far."""

    config_id: str
    params: dict[str, Any]
    missing_seeds: list[int]
    values: list[float]


def config_id(index: int) -> str:
    return f"c{index:04d}"


def trial_id(cid: str, seed: int) -> str:
    return f"{cid}-s{seed}"


class SeedRepeater(Searcher):
    def __init__(self, inner: Searcher, seeds: Sequence[int], mode: str, *, first_index: int = 0,
                 carried: Sequence[Carried] = ()) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self.inner = inner
        self.seeds = list(seeds)
        self.next_index = first_index
        self.configs: dict[str, _Config] = {}
        self.queue: deque[tuple[str, int]] = deque()
        self.trials: dict[str, tuple[str, int]] = {}
        for c in carried:
            self.configs[c.config_id] = _Config(dict(c.params), None, set(c.missing_seeds), list(c.values))
            self.queue.extend((c.config_id, s) for s in c.missing_seeds)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, tune_trial_id: str) -> dict | None:
        if not self.queue:
            cid = config_id(self.next_index)
            params = self.inner.suggest(f"inner-{cid}")
            if params is None or params == Searcher.FINISHED:
                return params
            self.next_index += 1
            self.configs[cid] = _Config(dict(params), f"inner-{cid}", set(self.seeds))
            self.queue.extend((cid, s) for s in self.seeds)
        cid, seed = self.queue.popleft()
        self.trials[tune_trial_id] = (cid, seed)
        return {"params": dict(self.configs[cid].params), "config_id": cid, "seed": seed,
                "trial_id": trial_id(cid, seed)}

    def on_trial_complete(self, tune_trial_id: str, result: Mapping[str, Any] | None = None,
                          error: bool = False) -> None:
        if tune_trial_id not in self.trials:
            return
        cid, seed = self.trials.pop(tune_trial_id)
        c = self.configs[cid]
        c.remaining.discard(seed)
        value = None if (error or not result) else result.get(OBJECTIVE)
        if value is not None and math.isfinite(float(value)):
            c.values.append(float(value))
        if c.remaining:
            return
        mean = sum(c.values) / len(c.values) if c.values else None
        if c.inner_id is not None:
            self.inner.on_trial_complete(c.inner_id, {OBJECTIVE: mean} if mean is not None else None,
                                         error=mean is None)
        else:
            add_evaluated(self.inner, c.params, mean)

    def save(self, checkpoint_path: str) -> None:  # our own Parquet files are what resume reads
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


def add_evaluated(searcher: Searcher, params: Mapping[str, Any], mean: float | None) -> None:
    """Tell a searcher about a configuration evaluated earlier (no-op for searchers that cannot learn)."""
    adder = getattr(searcher, "add_evaluated_point", None)
    if adder is None:
        return
    try:
        adder(dict(params), mean if mean is not None else 0.0, error=mean is None)
    except (NotImplementedError, TypeError):
        pass


class FixedSearcher(Searcher):
    """For spaces with no sampled parameter: one empty configuration."""

    def __init__(self, mode: str) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self.done = False

    def suggest(self, trial_id: str) -> dict | None:
        if self.done:
            return Searcher.FINISHED
        self.done = True
        return {}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def same_value(a: Any, b: Any) -> bool:
    """Equal parameter values; numbers compared as floats (Parquet may have widened an int choice to a float)."""
    def num(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    a = a.item() if hasattr(a, "item") else a
    b = b.item() if hasattr(b, "item") else b
    if num(a) and num(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


class GridSearcher(Searcher):
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

    def suggest(self, trial_id: str) -> dict | None:
        if not self.points:
            return Searcher.FINISHED
        return dict(self.points.pop(0))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, **kwargs: Any) -> None:
        self.skip(parameters)
