"""``--warm-start`` into a multi-objective and into a constrained TPE study: the earlier study's configurations
are told to every proposal's sampler as prior trials carrying the seeds' mean of each objective, and the constraint
values from the seeds' mean of each constrained metric (hand numbers), read back through the study.json record the
sweep keeps (``read_warm_start``, ``_priors``). Searcher level: no Ray, no training."""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from hyperswitch.results.schema import COMPLETED
from hyperswitch.search.runner import _priors, build_searcher, prepare_study, read_warm_start
from hyperswitch.search.seeds import search_lag
from hyperswitch.search.trial import trial_row
from tests.search.test_warm_start import SPACE, space

NAN = float("nan")
MO = "metric: [val_accuracy, wall_time_s]\nmode: [max, min]\n"
P = [{"lr": 0.1, "momentum": 0.9, "switch_at": 10, "batch": 64}, {"lr": 0.02, "momentum": 0.6, "switch_at": 0,
                                                                   "batch": 32},
     {"lr": 0.05, "momentum": 0.7, "switch_at": 5, "batch": 32}]


def earlier(storage, s, rows: dict[str, tuple[dict, list[dict]]]):
    """A finished study written through the real store: config id -> (params, each seed's metrics)."""
    store = prepare_study(s, storage, None, False)
    for cid, (params, seeds) in rows.items():
        for seed, metrics in enumerate(seeds):
            cfg = {"params": params, "config_id": cid, "seed": seed, "trial_id": f"{cid}-s{seed}"}
            store.write_trial_parts(trial_row(s, cfg, None, COMPLETED, metrics), [], [])
    store.compact()
    return store.root


def first_proposal_study(s, record):
    """The Optuna study the first proposal of ``s`` was asked from, warm-started with ``record`` (as study.json
    keeps it)."""
    searcher = build_searcher(s, [], search_lag(s.max_concurrent, len(s.seeds)),
                              _priors(json.loads(json.dumps(record))))
    cfg = searcher.suggest("t1")
    assert isinstance(cfg, dict) and cfg["config_id"] == "c0000"
    return searcher.proposer.study


def test_a_multi_objective_study_is_told_the_earlier_seeds_means_of_each_objective(tmp_path):
    before = space("{algorithm: random, samples: 3}", "before", SPACE + MO)
    earlier(tmp_path / "runs", before, {
        "c0000": (P[0], [{"val_accuracy": 0.80, "wall_time_s": 10.0}, {"val_accuracy": 0.84, "wall_time_s": 14.0}]),
        # seed 1 has no wall time: the mean of seed 0's alone, as the sweep tells a configuration
        "c0001": (P[1], [{"val_accuracy": 0.70, "wall_time_s": 5.0}, {"val_accuracy": 0.76, "wall_time_s": NAN}]),
        "c0002": (P[2], [{"val_accuracy": 0.90, "wall_time_s": 20.0}, {"val_accuracy": 0.92, "wall_time_s": 30.0}]),
    })
    s = space("{algorithm: tpe, samples: 4, seed: 0, n_startup: 2}", "warm", SPACE + MO)
    record = read_warm_start(s, "before", tmp_path / "runs")
    assert record["metric"] == ["val_accuracy", "wall_time_s"]
    assert [c["means"] for c in record["configurations"]] == [
        pytest.approx({"val_accuracy": 0.82, "wall_time_s": 12.0}),
        pytest.approx({"val_accuracy": 0.73, "wall_time_s": 5.0}),
        pytest.approx({"val_accuracy": 0.91, "wall_time_s": 25.0})]
    study = first_proposal_study(s, record)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    priors = study.get_trials(deepcopy=False)[:3]
    assert [t.state for t in priors] == [TrialState.COMPLETE] * 3
    assert [t.values for t in priors] == [pytest.approx([0.82, 12.0], abs=1e-12), pytest.approx([0.73, 5.0], abs=1e-12),
                                          pytest.approx([0.91, 25.0], abs=1e-12)]
    assert [t.params for t in priors] == [pytest.approx(p) for p in P]
    assert all(t.constraints == {} for t in priors)
    assert len(study.trials) == 4  # the priors, then the proposal asked (TPE past its start-up: n_startup 2)


def test_a_constrained_study_is_told_the_earlier_constraint_values(tmp_path):
    # the earlier study: single-objective, unconstrained; it recorded peak memory, which this study constrains
    before = space("{algorithm: random, samples: 3}", "before")
    earlier(tmp_path / "runs", before, {
        "c0000": (P[0], [{"val_accuracy": 0.80, "peak_memory_bytes": 2000}, {"val_accuracy": 0.84,
                                                                             "peak_memory_bytes": 2400}]),
        "c0001": (P[1], [{"val_accuracy": 0.70, "peak_memory_bytes": 3500}, {"val_accuracy": 0.76,
                                                                             "peak_memory_bytes": 3700}]),
        # no peak memory on either seed: no constraint value, so not told (as a configuration of this study
        # would be told as failed)
        "c0002": (P[2], [{"val_accuracy": 0.90}, {"val_accuracy": 0.92}]),
    })
    s = space("{algorithm: tpe, samples: 4, seed: 0, n_startup: 2}", "warm",
              SPACE + "constraints: [peak_memory_bytes <= 3000]\n")
    record = read_warm_start(s, "before", tmp_path / "runs")
    assert [c["means"] for c in record["configurations"]] == [
        pytest.approx({"val_accuracy": 0.82, "peak_memory_bytes": 2200.0}),
        pytest.approx({"val_accuracy": 0.73, "peak_memory_bytes": 3600.0}),
        {"val_accuracy": pytest.approx(0.91), "peak_memory_bytes": None}]
    study = first_proposal_study(s, record)
    assert [d.name for d in study.directions] == ["MAXIMIZE"]
    trials = study.get_trials(deepcopy=False)
    priors = trials[:2]
    assert [t.state for t in priors] == [TrialState.COMPLETE] * 2  # told as results, not as failed trials
    assert [t.values for t in priors] == [pytest.approx([0.82], abs=1e-12), pytest.approx([0.73], abs=1e-12)]
    # mean peak memory - 3000: c0000 feasible, c0001 not
    assert [t.constraints for t in priors] == [{"0": pytest.approx(-800.0)}, {"0": pytest.approx(600.0)}]
    assert len(trials) == 3 and trials[2].state == TrialState.RUNNING  # c0002 not told; then the proposal


def test_a_single_objective_constrained_study_tells_its_own_configurations_as_results():
    # (the sweep told every configuration of such a study as failed: its results are mappings by metric name, and
    # the proposer looked for an "objective" key in them)
    from ray.tune.search import Searcher

    from hyperswitch.search.seeds import OBJECTIVE
    from tests.search.test_multi_objective import outcome
    from tests.search.test_multi_objective import space as mo_space

    s = mo_space("{algorithm: tpe, n_startup: 3, samples: 6, seed: 1}", metric="val_accuracy", mode="max",
                 extra="seeds: 2\nmax_concurrent: 2\nconstraints: [peak_memory_bytes <= 2900]\n")
    searcher = build_searcher(s, [], search_lag(s.max_concurrent, len(s.seeds)))
    got: dict[str, list[dict]] = {}
    for n in range(1, 100):
        cfg = searcher.suggest(f"t{n}")
        if cfg == Searcher.FINISHED:
            break
        assert isinstance(cfg, dict)
        m = outcome(cfg)
        searcher.on_trial_complete(f"t{n}", {OBJECTIVE: m["val_accuracy"], **m})
        got.setdefault(cfg["config_id"], []).append(m)
    told = [t for t in searcher.proposer.study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING]
    assert len(told) == 4 and all(t.state == TrialState.COMPLETE for t in told)
    for k, t in enumerate(told):
        seeds = got[f"c{k:04d}"]
        assert t.values == pytest.approx([sum(m["val_accuracy"] for m in seeds) / 2], rel=1e-15)
        assert t.constraints == {"0": pytest.approx(sum(m["peak_memory_bytes"] for m in seeds) / 2 - 2900)}
