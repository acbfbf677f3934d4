"""Multi-objective spaces and constraints: validated on load, and what each proposal's Optuna study is told (the
seeds' means of every objective and constraint values from the seeds' means of the constrained metrics, checked
against numbers computed by hand); NSGA-II's generations carried from proposal to proposal and rebuilt after an
interruption from the study's Parquet table (the --resume path). Driven through the sweep's searcher
(``SeedRepeater``) as Tune drives it: no training, no Ray."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hyperswitch.cli import main
from hyperswitch.errors import ConfigError
from hyperswitch.results import open_study
from hyperswitch.results.schema import COMPLETED, RUNNING
from hyperswitch.results.store import StudyStore
from hyperswitch.search.runner import build_searcher
from hyperswitch.search.seeds import NSGA2_GENERATION, OBJECTIVE, Carried, OptunaProposer, search_lag
from hyperswitch.search.space import space_from_text
from hyperswitch.search.trial import trial_row
from tests.search.test_proposals import drive, gap, resume, switch_space


def space_text(search: str, metric: str, mode: str, extra: str = "") -> str:
    return switch_space("mo", f"search: {search}\nmetric: {metric}\nmode: {mode}\n{extra}")


def space(search: str = "tpe", metric: str = "[val_accuracy, wall_time_s]", mode: str = "[max, min]",
          extra: str = ""):
    return space_from_text(space_text(search, metric, mode, extra), "mo.yaml")


def outcome(cfg: dict) -> dict[str, float]:
    """Made-up metrics of a trial: accuracy and time pull lr in opposite directions (a real trade-off)."""
    p, s = cfg["params"], cfg["seed"]
    u = math.log(p["lr"] / 0.01) / math.log(30)  # 0 .. 1 over lr's range
    return {"val_accuracy": 0.5 + 0.4 * u - 0.2 * (p["momentum"] - 0.9) ** 2 + 0.01 * s,
            "wall_time_s": 1.0 + 4.0 * u ** 2 + 0.1 * p["switch_at"] / 20 + 0.05 * s,
            "peak_memory_bytes": 1000.0 + 2000.0 * p["momentum"] + 10 * s}


def complete(searcher, tid: str, cfg: dict) -> dict[str, float]:
    """Finish a trial as Tune reports it: its metrics by name and the objective (the first metric)."""
    m = outcome(cfg)
    searcher.on_trial_complete(tid, {OBJECTIVE: m["val_accuracy"], **m})
    return m


# --- the space -------------------------------------------------------------------------------------------
def test_a_multi_objective_space_keeps_its_lists_and_a_single_one_its_strings():
    s = space(extra="constraints: [peak_memory_bytes <= 2e9, wall_time_s <= 600]\n")
    assert (s.metric, s.mode, s.objectives, s.objective_modes) == ("val_accuracy", "max",
                                                                   ["val_accuracy", "wall_time_s"], ["max", "min"])
    assert s.multi_objective and s.measures == ["val_accuracy", "wall_time_s", "peak_memory_bytes"]
    assert s.metric_record() == (["val_accuracy", "wall_time_s"], ["max", "min"])
    assert s.summary()["constraints"] == ["peak_memory_bytes <= 2e+09", "wall_time_s <= 600"]
    one = space(metric="val_accuracy", mode="max")
    assert not one.multi_objective and one.metric_record() == ("val_accuracy", "max") and one.constraints == ()
    assert "constraints" not in one.summary()
    assert space(mode="null").objective_modes == ["max", "min"]  # each metric's own direction
    assert space(metric="[val_loss, peak_memory_bytes]", mode="[min, min]").objectives == ["val_loss",
                                                                                            "peak_memory_bytes"]
    s = space("{algorithm: nsga2, population_size: 8, crossover_prob: 0.8, mutation_prob: 0.2, swapping_prob: 0.4}")
    assert s.search_options == {"population_size": 8, "crossover_prob": 0.8, "mutation_prob": 0.2,
                                "swapping_prob": 0.4}


@pytest.mark.parametrize(("kw", "message"), [
    ({"mode": "[max]"}, "mode: must be a list of 2 modes (max or min), one per metric (got ['max'])"),
    ({"mode": "max"}, "mode: must be a list of 2 modes (max or min), one per metric (got 'max')"),
    ({"mode": "[max, max]"}, "mode[1]: wall_time_s is better when it is lower; mode must be min (got 'max')"),
    ({"metric": "[val_accuracy, val_accuracy]", "mode": "[max, max]"},
     "metric: the objectives must be distinct (got ['val_accuracy', 'val_accuracy'])"),
    ({"metric": "[val_accuracy, speed]"}, "metric[1]: must be one of val_accuracy, best_val_accuracy, val_loss, "
                                          "val_recon_error, train_loss, time_to_target_s, steps_to_target, "
                                          "wall_time_s, peak_memory_bytes, switch_step (got 'speed')"),
    ({"metric": "val_accuracy", "mode": "[max]"}, "mode: a single metric takes one mode (max or min); a list of "
                                                  "modes goes with a list of metrics (got ['max'])"),
    ({"search": "cmaes"}, "search.algorithm: cmaes optimises one objective and this space has 2 (val_accuracy, "
                          "wall_time_s); use tpe, nsga2, gp, random, grid or qmc (got 'cmaes')"),
    ({"extra": "scheduler: {type: asha}\n"}, "scheduler.type: asha stops trials by one metric; a space with 2 "
                                             "objectives cannot use it (set scheduler: none) (got 'asha')"),
    ({"search": "{algorithm: nsga2, population_size: 1}"}, "search.population_size: must be >= 2 (got 1)"),
    ({"search": "{algorithm: nsga2, crossover_prob: 1.5}"}, "search.crossover_prob: must be <= 1 (got 1.5)"),
    ({"search": "{algorithm: tpe, population_size: 8}"}, "search.population_size: is an option of algorithm "
                                                         "nsga2, not of tpe"),
    ({"extra": "constraints: [peak_memory <= 2e9]\n"}, "constraints[0]: peak_memory is not a results metric "
     "(one of: val_accuracy, best_val_accuracy, val_loss, val_recon_error, train_loss, time_to_target_s, "
     "steps_to_target, wall_time_s, peak_memory_bytes, switch_step) (got 'peak_memory <= 2e9')"),
    ({"extra": "constraints: [wall_time_s == 600]\n"}, "constraints[0]: must be METRIC <= NUMBER or METRIC >= NUMBER "
                                                       "(e.g. peak_memory_bytes <= 2e9) (got 'wall_time_s == 600')"),
    ({"extra": "constraints: [time_to_target_s <= 5]\n"}, "constraints[0]: measures when a run first reached its "
     "target: give train.target_accuracy or train.target_loss (got 'time_to_target_s')"),
    ({"extra": "constraints: [val_recon_error <= 5]\n"}, "constraints[0]: workload digits_mlp does not report "
                                                         "val_recon_error; only curves_autoencoder do "
                                                         "(got 'val_recon_error')"),
    ({"metric": "val_loss", "mode": "min", "search": "cmaes", "extra": "constraints: [wall_time_s <= 9]\n"},
     "constraints: cmaes does not learn from constraints (Optuna's sampler ignores them); use tpe, nsga2 or gp, or "
     "random, grid or qmc, which record them (got 'cmaes')"),
])
def test_bad_objectives_and_constraints_are_one_line(kw, message):
    with pytest.raises(ConfigError) as e:
        space(**kw)
    assert str(e.value) == f"mo.yaml: {message}"


def test_the_command_exits_2_and_creates_nothing(space_file, tmp_path, capsys):
    path = space_file(space_text("tpe", "[val_accuracy, wall_time_s]", "[max, max]"))
    assert main(["sweep", str(path), "--storage", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == f"hyperswitch: error: {path}: mode[1]: wall_time_s is better when it " \
                                              "is lower; mode must be min (got 'max')"
    assert not (tmp_path / "runs").exists()


# --- what the sampler is told ----------------------------------------------------------------------------
def test_the_sampler_is_told_each_objectives_seed_mean_and_the_constraints_from_seed_means():
    s = space("{algorithm: tpe, n_startup: 3, samples: 9, seed: 1}",
              extra="seeds: 2\nmax_concurrent: 2\nconstraints: [peak_memory_bytes <= 2900, wall_time_s >= 2]\n")
    lag = search_lag(s.max_concurrent, len(s.seeds))
    searcher = build_searcher(s, [], lag)
    proposer = searcher.proposer
    got: dict[str, dict[int, dict[str, float]]] = {}
    n = 0
    while True:  # one trial at a time; seed 1 of c0002 reports no wall time (as a trial without it would)
        n += 1
        cfg = searcher.suggest(f"t{n}")
        if cfg == Searcher.FINISHED:
            break
        assert cfg is not None
        m = outcome(cfg)
        if cfg["trial_id"] == "c0002-s1":
            m["wall_time_s"] = float("nan")
        searcher.on_trial_complete(f"t{n}", {OBJECTIVE: m["val_accuracy"], **m})
        got.setdefault(cfg["config_id"], {})[cfg["seed"]] = m
    assert len(got) == 9
    study = proposer.study  # the last proposal's (c0008's): told c0000 .. c0006, c0007 running
    assert study.directions[0].name == "MAXIMIZE" and study.directions[1].name == "MINIMIZE"
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials[:7]] == [TrialState.COMPLETE] * 7 and trials[7].state == TrialState.RUNNING
    for k, t in enumerate(trials[:7]):
        seeds = got[f"c{k:04d}"]
        acc = (seeds[0]["val_accuracy"] + seeds[1]["val_accuracy"]) / 2
        wall = [v["wall_time_s"] for v in seeds.values() if not math.isnan(v["wall_time_s"])]
        mem = (seeds[0]["peak_memory_bytes"] + seeds[1]["peak_memory_bytes"]) / 2
        assert t.values == pytest.approx([acc, sum(wall) / len(wall)], rel=1e-15), k
        assert t.constraints == pytest.approx({"0": mem - 2900, "1": 2 - sum(wall) / len(wall)}, rel=1e-15), k
    assert len(got["c0002"]) == 2 and trials[2].values[1] == got["c0002"][0]["wall_time_s"]  # the finite seed only
    assert any(v > 0 for t in trials[:7] for v in t.constraints.values())  # infeasible ones are told too


def test_a_configuration_without_an_objective_or_constrained_value_is_told_as_failed():
    p = OptunaProposer(space().optuna_space(), "tpe", 0, "max", 1, objectives=[("val_accuracy", "max"),
                                                                               ("wall_time_s", "min")])
    assert p.outcome({"val_accuracy": 0.5, "wall_time_s": None}) == (None, {})
    assert p.outcome({"val_accuracy": 0.5, "wall_time_s": 2.0}) == ([0.5, 2.0], {})
    c = OptunaProposer(space().optuna_space(), "tpe", 0, "max", 1, constraints=space(
        metric="val_accuracy", mode="max", extra="constraints: [peak_memory_bytes <= 10]\n").constraints)
    assert c.outcome({"objective": 0.5, "peak_memory_bytes": None}) == (None, {})
    # the list Optuna's samplers store (and optuna-dashboard reads), which Optuna reads as {"0": 2.0}
    assert c.outcome({"objective": 0.5, "peak_memory_bytes": 12.0}) == ([0.5], {"constraints": [2.0]})


def reporting(searcher):
    """``searcher`` with each finished trial reporting its metrics by name, as Tune passes a trial's result
    (test_proposals.drive reports its own objective only)."""
    original, suggest, configs = searcher.on_trial_complete, searcher.suggest, {}

    def remembering(tid):
        cfg = suggest(tid)
        if isinstance(cfg, dict):
            configs[tid] = cfg
        return cfg

    searcher.suggest = remembering
    searcher.on_trial_complete = lambda tid, result=None, error=False: original(
        tid, {OBJECTIVE: outcome(configs[tid])["val_accuracy"], **outcome(configs[tid])}, error)
    return searcher


@pytest.mark.parametrize("algorithm", ["random", "qmc", "gp", "tpe"])
def test_every_multi_objective_algorithm_proposes_a_full_study(algorithm):
    n = 5 if algorithm == "gp" else 8  # GP's constrained hypervolume improvement: about 2 s a proposal here
    startup = ", n_startup: 3" if algorithm in ("gp", "tpe") else ""
    s = space(f"{{algorithm: {algorithm}, samples: {n}, seed: 3{startup}}}",
              extra="constraints: [peak_memory_bytes <= 2900]\n")
    searcher = build_searcher(s, [], 1)
    proposed, finished, _ = drive(reporting(searcher), random.Random(0), slots=2)
    assert len(proposed) == n and len({tuple(p.values()) for p in proposed.values()}) == n
    if algorithm != "gp":
        assert drive(reporting(build_searcher(s, [], 1)), random.Random(5), slots=2)[0] == proposed  # any order
    if startup:  # the learning ones were told two objectives and a constraint: c0004 on, all but the last
        told = [t for t in searcher.proposer.study.get_trials() if t.state == TrialState.COMPLETE]
        assert len(told) == n - 2 and all(len(t.values) == 2 and set(t.constraints) == {"0"} for t in told)


# --- NSGA-II ---------------------------------------------------------------------------------------------
MEMORY_BOUND = 2200  # feasible: momentum <= 0.6 (a fifth of its range)


def nsga2(population: int = 6, seed: int = 2):
    s = space(f"{{algorithm: nsga2, population_size: {population}, samples: 40, seed: {seed}}}",
              extra=f"constraints: [peak_memory_bytes <= {MEMORY_BOUND}]\n")
    return s, search_lag(s.max_concurrent, len(s.seeds))


def run(searcher, n_slots: int = 2) -> dict[int, tuple[dict, dict]]:
    """Tune's loop, the oldest trial finishing first: config index -> (params, metrics)."""
    out, running, t, finished = {}, [], 0, False
    while True:
        while len(running) < n_slots and not finished:
            t += 1
            cfg = searcher.suggest(f"t{t}")
            finished = cfg == Searcher.FINISHED
            if cfg is None or finished:
                break
            running.append((f"t{t}", cfg))
        if not running:
            return out
        tid, cfg = running.pop(0)
        out[int(cfg["config_id"][1:])] = (cfg["params"], complete(searcher, tid, cfg))


def test_nsga2_breeds_generations_that_move_the_front():
    s, lag = nsga2()
    searcher = build_searcher(s, [], lag)
    got = run(searcher)
    proposer = searcher.proposer
    gens = [proposer.attrs[k][NSGA2_GENERATION] for k in range(40)]
    # population 6, one configuration unseen (lag 1): a generation's last point is asked with the next one's
    assert gens[:7] == [0] * 7 and gens == sorted(gens) and gens[-1] >= 4, gens
    assert sorted(proposer.parents) == [f"NSGAIISampler:parent:{g}" for g in range(1, gens[-1] + 1)]
    assert all(len(p) == 6 for p in proposer.parents.values())
    # constrained domination: the parents are the feasible points first, and feasible children follow
    feasible = {k for k, (_, m) in got.items() if m["peak_memory_bytes"] <= MEMORY_BOUND}
    last_parents = proposer.parents[f"NSGAIISampler:parent:{gens[-1]}"]
    assert set(last_parents) <= feasible, (last_parents, feasible)
    first = [k in feasible for k in range(40) if gens[k] == 0]
    last = [k in feasible for k in range(40) if gens[k] == gens[-1]]
    assert statistics.mean(last) > 2 * statistics.mean(first), (first, last)


def test_a_rebuilt_nsga2_proposes_what_the_uninterrupted_one_does():
    s, lag = nsga2()
    whole = build_searcher(s, [], lag)
    got = run(whole)
    for cut in (5, 13, 22, 31):  # interrupted after `cut` configurations: rebuilt from their results alone
        carried = [Carried(f"c{k:04d}", got[k][0], [], {0: got[k][1]["val_accuracy"]},
                           {m: {0: v} for m, v in got[k][1].items()}) for k in range(cut)]
        rebuilt = build_searcher(s, carried, lag)
        rest = run(rebuilt)
        assert rest == {k: got[k] for k in range(cut, 40)}, cut
        assert rebuilt.proposer.parents == whole.proposer.parents
    # without the replay the generations are lost: the next proposal is not the uninterrupted one's
    blank = build_searcher(s, [], lag)
    blank.proposer.remembers = False
    carried = [Carried(f"c{k:04d}", got[k][0], [], {0: got[k][1]["val_accuracy"]},
                       {m: {0: v} for m, v in got[k][1].items()}) for k in range(22)]
    from hyperswitch.search.seeds import SeedRepeater

    rep = SeedRepeater(blank.proposer, [0], "max", n_new=18, carried=carried, measures=s.measures)
    assert rep.suggest("next")["params"] != got[22][0]


def store_rows(store: StudyStore, space_, finished: list, running: list, done: set[str]) -> None:
    """The study's files after an interruption (as test_proposals.store_rows, with every metric recorded)."""
    for cfg in finished:
        store.write_trial_parts(trial_row(space_, cfg, None, COMPLETED, outcome(cfg)), [], [])
    skipped = gap(done, running)
    for cfg in running:
        if cfg["config_id"] != skipped:
            store.write_trial_parts(trial_row(space_, cfg, None, RUNNING, {"val_accuracy": 0.0}), [], [])


def test_nsga2_resumes_identically_after_random_interruptions(tmp_path):
    """Trials finishing in random orders, interrupted and rebuilt from the study's Parquet table by the --resume
    path (``runner._carried``): every session proposes what the uninterrupted study does, and the table records
    each trial's feasibility."""
    s, _ = nsga2(population=5, seed=4)
    s = s.with_overrides(samples=30, seeds=2)
    s.max_concurrent = 3
    lag = search_lag(s.max_concurrent, len(s.seeds))

    def drive_all(searcher, rng, stop=None):
        return drive(reporting(searcher), rng, slots=3, stop=stop)

    reference, _, _ = drive_all(build_searcher(s, [], lag), random.Random(0))
    assert len(reference) == 30 and drive_all(build_searcher(s, [], lag), random.Random(1))[0] == reference
    for r in range(3):
        rng = random.Random(300 + r)
        store = StudyStore(tmp_path / f"nsga-{r}")
        store.root.mkdir(parents=True)
        store.write_meta({"name": store.name, "metric": s.objectives, "mode": s.objective_modes})
        searcher, done = build_searcher(s, [], lag), set()
        for i in range(2):
            n = rng.randrange(8, 40)
            stop = (lambda f, run, n=n: len(f) >= n) if (r + i) % 2 else \
                (lambda f, run, n=n, done=done: len(f) >= n and gap(done | {c["config_id"] for c in f}, run))
            _, fin, running = drive_all(searcher, rng, stop=stop)
            store_rows(store, s, fin, running, done | {c["config_id"] for c in fin})
            done |= {c["config_id"] for c in fin}
            searcher = resume(store, s, lag)
        proposed, _, _ = drive_all(searcher, rng)
        final = open_study(store.root).trials
        held = {cid: {n: g.iloc[0][n] for n in s.sampled_names} for cid, g in final.groupby("config_id")}
        assert {**held, **proposed} == reference, r
    assert final["feasible"].dtype == bool
    assert list(final["feasible"]) == [outcome({"params": row, "seed": row["seed"]})["peak_memory_bytes"]
                                       <= MEMORY_BOUND for _, row in final.iterrows()]
