"""The sweep's searcher driven without Ray, as Tune drives it: trials finish in random orders, and a sweep is
interrupted at random moments and rebuilt from what its Parquet table holds (``runner._carried``) the way
``--resume`` rebuilds it. Every run must propose the same configuration under every config id."""

from __future__ import annotations

import math
import random

import pytest
from ray.tune.search import Searcher

from hyperswitch.results import open_study
from hyperswitch.results.schema import COMPLETED, RUNNING
from hyperswitch.results.store import StudyStore
from hyperswitch.search.runner import _carried, build_searcher
from hyperswitch.search.seeds import OBJECTIVE, search_lag
from hyperswitch.search.space import space_from_text
from hyperswitch.search.trial import trial_row

RANGE = "{type: float, low: 0.01, high: 0.3, log: true}"
MOMENTUM = "{type: float, low: 0.5, high: 0.99}"


def switch_space(name: str, tail: str, *, lr: str = RANGE, momentum: str = MOMENTUM, workload: str = "") -> str:
    """The searcher tests' space: Adam -> SGD-m on digits_mlp, lr x momentum x switch_at (20 steps), then ``tail``
    (search, seeds, metric, ... as YAML). ``workload``: more keys of the workload mapping (", batch_size: 32")."""
    return f"""\
name: {name}
workload: {{name: digits_mlp{workload}}}
policy:
  type: switch
  phase1: {{name: adam, lr: 0.001}}
  phase2: {{name: sgdm, lr: $lr, momentum: $momentum}}
  switch: {{at: $switch_at}}
train: {{steps: 20, eval_every: 10}}
parameters:
  lr: {lr}
  momentum: {momentum}
  switch_at: {{type: int, low: 0, high: 20, step: 5}}
""" + tail


CHOICES = "{type: categorical, choices: [0.01, 0.03, 0.1, 0.3]}"  # grid: 4 x 5 x 5 points, 16 run (--samples)


def make_space(algorithm: str):
    grid = algorithm == "grid"
    text = switch_space("proposals", f"search: {{algorithm: {algorithm}, samples: 16, seed: 7}}\nseeds: 2\n"
                        "max_concurrent: 3\n", lr=CHOICES if grid else RANGE,
                        momentum="{type: float, low: 0.5, high: 0.9, step: 0.1}" if grid else MOMENTUM)
    return space_from_text(text, f"{algorithm}.yaml").with_overrides(samples=16)


def value(cfg: dict) -> float:
    """A made-up objective with an optimum inside the space, a little different per seed."""
    p = cfg["params"]
    return -math.log(p["lr"] / 0.05) ** 2 - (p["momentum"] - 0.9) ** 2 - 0.01 * abs(p["switch_at"] - 10) \
        + 0.001 * cfg["seed"]


def drive(searcher, rng: random.Random, slots: int, stop=None, objective=None):
    """Tune's loop: fill the free slots from ``suggest``, finish one running trial picked by ``rng`` with
    ``objective(cfg)`` (default :func:`value`); ``stop`` (finished, running) -> True interrupts. Returns (proposed
    config_id -> params, finished trial configs, running trial configs)."""
    objective = objective or value
    proposed, finished, running = {}, [], {}
    exhausted = False
    n = 0
    while True:
        while not exhausted and len(running) < slots:
            n += 1
            cfg = searcher.suggest(f"t{n}")
            if cfg is None:
                break
            if cfg == Searcher.FINISHED:
                exhausted = True
                break
            proposed.setdefault(cfg["config_id"], cfg["params"])
            assert proposed[cfg["config_id"]] == cfg["params"]
            running[f"t{n}"] = cfg
        if stop is not None and stop(finished, list(running.values())):
            return proposed, finished, list(running.values())
        if not running:
            assert exhausted, "the searcher waits with nothing running"
            return proposed, finished, []
        tid = rng.choice(sorted(running))
        cfg = running.pop(tid)
        searcher.on_trial_complete(tid, {OBJECTIVE: objective(cfg)})
        finished.append(cfg)


def gap(done: set[str], running: list) -> str | None:
    """A configuration all of whose trials run, below another running configuration."""
    ids = sorted({cfg["config_id"] for cfg in running})
    return next((c for c in ids[:-1] if c not in done), None)


def store_rows(store: StudyStore, space, finished: list, running: list, done: set[str]) -> None:
    """What the study's files hold after an interruption: finished trials, and running ones that had reached
    an evaluation, except those of ``gap(...)``: none had (its config id is free again, below configurations
    the study holds; --resume proposes it again)."""
    for cfg in finished:
        store.write_trial_parts(trial_row(space, cfg, None, COMPLETED, {"val_accuracy": value(cfg)}), [], [])
    skipped = gap(done, running)
    for cfg in running:
        if cfg["config_id"] != skipped:
            store.write_trial_parts(trial_row(space, cfg, None, RUNNING, {"val_accuracy": 0.0}), [], [])


def resume(store: StudyStore, space, lag: int):
    """``run_sweep``'s rebuild on --resume: running parts dropped, finished compacted, configurations carried."""
    every = open_study(store.root, include_running=True).trials
    running = every[every.status == RUNNING] if len(every) else None
    store.discard_unfinished_parts()
    store.compact()
    carried, _, _ = _carried(open_study(store.root), space, running)
    return build_searcher(space, carried, lag)


@pytest.mark.parametrize("algorithm", ["tpe", "random", "grid"])
def test_same_configurations_in_any_completion_order_and_after_interruptions(algorithm, tmp_path):
    space = make_space(algorithm)
    lag = search_lag(space.max_concurrent, len(space.seeds))
    reference, finished, _ = drive(build_searcher(space, [], lag), random.Random(0), slots=1)
    assert len(reference) == 16 and len(finished) == 32
    assert len({tuple(p.values()) for p in reference.values()}) == 16  # 16 different configurations
    for r in range(1, 4):  # other completion orders, 3 trials at a time
        assert drive(build_searcher(space, [], lag), random.Random(r), slots=3)[0] == reference, r

    gaps = 0
    for r in range(4):  # interrupted once or twice at random moments, rebuilt from the study's files
        rng = random.Random(100 + r)
        store = StudyStore(tmp_path / f"{algorithm}-{r}")
        store.root.mkdir(parents=True)
        store.write_meta({"name": store.name, "metric": "val_accuracy", "mode": "max"})
        searcher, seen, done = build_searcher(space, [], lag), {}, set()
        for i in range(1 + r % 2):
            n = rng.randrange(1, 12)
            # every other interruption waits for a moment that leaves a free config id below held ones
            stop = (lambda f, run, n=n: len(f) >= n) if (r + i) % 2 else \
                (lambda f, run, n=n, done=done: len(f) >= n and gap(done | {c["config_id"] for c in f}, run))
            proposed, finished, running = drive(searcher, rng, slots=3, stop=stop)
            seen.update(proposed)
            gaps += gap(done | {c["config_id"] for c in finished}, running) is not None
            store_rows(store, space, finished, running, done | {c["config_id"] for c in finished})
            done |= {c["config_id"] for c in finished}
            searcher = resume(store, space, lag)
        proposed, _, _ = drive(searcher, rng, slots=3)
        seen.update(proposed)
        final = open_study(store.root).trials
        from_table = {cid: {n: g.iloc[0][n] for n in space.sampled_names} for cid, g in final.groupby("config_id")}
        assert {**from_table, **proposed} == reference, (algorithm, r)
        assert {cid: p for cid, p in seen.items()} == {cid: reference[cid] for cid in seen}
    assert gaps >= 2
