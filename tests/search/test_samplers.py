"""The samplers by name (search.algorithm gp | cmaes | qmc) in the one-fresh-study-per-proposal design: their
options validated on load, and each one doing its own job there. The proposers are driven directly through the
sweep's searcher (``SeedRepeater``) on closed-form objectives: no training, no Ray."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.search import Searcher
from scipy.stats import qmc

from hyperswitch.cli import main
from hyperswitch.errors import ConfigError
from hyperswitch.results import open_study
from hyperswitch.results.store import StudyStore
from hyperswitch.search.runner import build_searcher
from hyperswitch.search.seeds import OBJECTIVE, Carried, OptunaProposer, QMCProposer, SeedRepeater, search_lag
from hyperswitch.search.space import space_from_text
from tests.search.test_proposals import drive, gap, make_space, resume, store_rows, switch_space


def space_text(search: str) -> str:
    return switch_space("samplers", f"search: {search}\n")

PLANE = {"x": FloatDistribution(-5.0, 5.0), "y": FloatDistribution(-5.0, 5.0)}
OPTIMUM = (1.3, -2.1)


def bowl(p) -> float:
    """A quadratic in two parameters, its minimum 0 at OPTIMUM, inside the plane."""
    return (p["x"] - OPTIMUM[0]) ** 2 + (p["y"] - OPTIMUM[1]) ** 2


def space(search: str):
    return space_from_text(space_text(search), "samplers.yaml")


def run(proposer, n: int, f=bowl, slots: int = 2, mode: str = "min", carried=()) -> dict[int, tuple[dict, float]]:
    """Tune's loop, one seed per configuration, ``slots`` trials at a time, the oldest finishing first: config
    index -> (params, objective) of the ``n`` configurations proposed (after those ``carried``)."""
    rep = SeedRepeater(proposer, [0], mode, n_new=n, carried=carried)
    out: dict[int, tuple[dict, float]] = {}
    running: list[tuple[str, dict]] = []
    t, finished = 0, False
    while True:
        while len(running) < slots and not finished:
            t += 1
            cfg = rep.suggest(f"t{t}")
            finished = cfg == Searcher.FINISHED
            if cfg is None or finished:
                break
            running.append((f"t{t}", cfg))
        if not running:
            assert finished, "the searcher waits with nothing running"
            return out
        tid, cfg = running.pop(0)
        value = f(cfg["params"])
        out[int(cfg["config_id"][1:])] = (cfg["params"], value)
        rep.on_trial_complete(tid, {OBJECTIVE: value})


# --- options -------------------------------------------------------------------------------------------
def test_each_algorithm_is_one_line_with_its_options():
    s = space("{algorithm: qmc, qmc_type: halton, scramble: false, samples: 4}")
    assert (s.algorithm, s.search_options) == ("qmc", {"qmc_type": "halton", "scramble": False})
    assert space("{algorithm: gp, n_startup: 3}").search_options == {"n_startup": 3}
    s = space("{algorithm: cmaes, sigma0: 0.25, n_startup: 2, popsize: 6}")
    assert s.search_options == {"sigma0": 0.25, "n_startup": 2, "popsize": 6}
    assert space("{algorithm: tpe, n_startup: 4}").search_options == {"n_startup": 4}
    assert space("gp").algorithm == "gp" and space("cmaes").search_options == {}


@pytest.mark.parametrize(("search", "key", "rule"), [
    ("{algorithm: qmc, qmc_type: lattice}", "search.qmc_type", "must be one of sobol, halton (got 'lattice')"),
    ("{algorithm: qmc, scramble: 1}", "search.scramble", "must be true or false (got 1)"),
    ("{algorithm: gp, n_startup: 0}", "search.n_startup", "must be >= 1 (got 0)"),
    ("{algorithm: gp, n_startup: 2.5}", "search.n_startup", "must be an integer (got 2.5)"),
    ("{algorithm: cmaes, sigma0: 2}", "search.sigma0", "must be <= 1 (got 2)"),
    ("{algorithm: cmaes, sigma0: 0}", "search.sigma0", "must be > 0 (got 0)"),
    ("{algorithm: cmaes, popsize: 3}", "search.popsize", "must be >= 4 (got 3)"),
    ("{algorithm: tpe, sigma0: 0.1}", "search.sigma0", "is an option of algorithm cmaes, not of tpe"),
    ("{algorithm: random, n_startup: 3}", "search.n_startup", "is an option of algorithm tpe and gp and cmaes, "
                                                             "not of random"),
    ("{algorithm: gp, n_start: 3}", "search.n_start",
     "unknown key; did you mean n_startup? allowed: algorithm, samples, seed, start_points, n_startup"),
    ("{algorithm: bayes}", "search.algorithm", "must be one of tpe, random, grid, gp, cmaes, qmc, nsga2 (got 'bayes')"),
])
def test_a_bad_option_is_one_line_naming_key_rule_and_value(search, key, rule):
    with pytest.raises(ConfigError) as e:
        space(search)
    assert str(e.value) == f"samplers.yaml: {key}: {rule}"


def test_cmaes_needs_a_numeric_parameter():
    text = space_text("cmaes").replace("  lr: {type: float, low: 0.01, high: 0.3, log: true}\n",
                                                 "  lr: {type: categorical, choices: [0.01, 0.1]}\n")
    text = text.replace("  momentum: {type: float, low: 0.5, high: 0.99}\n", "  momentum: 0.9\n")
    text = text.replace("  switch_at: {type: int, low: 0, high: 20, step: 5}\n", "  switch_at: 10\n")
    with pytest.raises(ConfigError, match=r"search.algorithm: cmaes searches float and int parameters"):
        space_from_text(text, "x.yaml")


def test_the_command_exits_2_with_one_line(space_file, tmp_path, capsys):
    path = space_file(space_text("{algorithm: qmc, qmc_type: lattice}"))
    assert main(["sweep", str(path), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hyperswitch: error: {path}: search.qmc_type: must be one of sobol, halton (got 'lattice')"
    assert not (tmp_path / "runs" / "samplers").exists()


# --- what each proposal waits for ---------------------------------------------------------------------
def test_needs_per_algorithm():
    lag = 2
    tpe = OptunaProposer(PLANE, "tpe", 0, "min", lag, options={"n_startup": 4})
    gp = OptunaProposer(PLANE, "gp", 0, "min", lag, options={"n_startup": 3})
    cma = OptunaProposer(PLANE, "cmaes", 0, "min", lag)  # start-up 1 (Optuna's default, pinned)
    rnd = OptunaProposer(PLANE, "random", 0, "min", lag)
    q = QMCProposer(PLANE, 0)
    assert [tpe.needs(k) for k in range(9)] == [0, 0, 0, 0, 0, 0, 4, 5, 6]  # k - lag >= 4
    assert [gp.needs(k) for k in range(9)] == [0, 0, 0, 0, 0, 3, 4, 5, 6]
    assert [cma.needs(k) for k in range(9)] == [0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert [rnd.needs(k) for k in range(9)] == [0] * 9 and [q.needs(k) for k in range(9)] == [0] * 9
    assert (tpe.n_startup, gp.n_startup, cma.n_startup) == (4, 3, 1)
    assert OptunaProposer(PLANE, "gp", 0, "min", lag).n_startup == 10  # Optuna's default, pinned
    # a warm start's prior trials count towards TPE's and GP's start-up (inside their studies), not CMA-ES's
    priors = [({"x": 0.5 * i, "y": 0.0}, float(i)) for i in range(10)]
    assert [OptunaProposer(PLANE, "gp", 0, "min", lag, priors=priors[:2], options={"n_startup": 3}).needs(k)
            for k in range(5)] == [0, 0, 0, 1, 2]
    assert [OptunaProposer(PLANE, "cmaes", 0, "min", lag, priors=priors).needs(k) for k in range(5)] == \
        [0, 0, 0, 1, 2]


# --- QMC ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "engine", "scramble"), [("sobol", qmc.Sobol, True), ("halton", qmc.Halton, True),
                                                          ("sobol", qmc.Sobol, False)])
def test_qmc_proposals_are_scipys_sequence_distinct_and_the_same_in_every_session(kind, engine, scramble):
    s = space(f"{{algorithm: qmc, qmc_type: {kind}, scramble: {str(scramble).lower()}, samples: 16, seed: 5}}")
    got, _, _ = drive(build_searcher(s, [], 1), random.Random(0), slots=3)
    assert len(got) == 16
    ref = engine(3, scramble=scramble, rng=5).random(16)  # lr (log), momentum, switch_at, in the space's order
    steps = [0, 5, 10, 15, 20]
    for k, u in enumerate(ref):
        p = got[f"c{k:04d}"]
        assert p["lr"] == pytest.approx(math.exp(math.log(0.01) + u[0] * (math.log(0.3) - math.log(0.01))),
                                        rel=1e-12)
        assert p["momentum"] == pytest.approx(0.5 + u[1] * 0.49, rel=1e-12)
        assert p["switch_at"] == steps[int(u[2] * 5)]
    assert len({(p["lr"], p["momentum"]) for p in got.values()}) == 16
    if not scramble:  # the plain sequence starts at the origin: every range's low end
        assert got["c0000"] == {"lr": pytest.approx(0.01), "momentum": 0.5, "switch_at": 0}
    # a resumed study: the first 5 configurations carried, the rest proposed again identically
    carried = [Carried(f"c{k:04d}", got[f"c{k:04d}"], [], {0: 0.5}) for k in range(5)]
    again, _, _ = drive(build_searcher(s, carried, 1), random.Random(1), slots=2)
    assert again == {c: p for c, p in got.items() if int(c[1:]) >= 5}


def test_qmc_maps_every_kind_of_parameter_inside_its_range():
    dists = {"c": CategoricalDistribution(["a", "b", "c"]), "i": IntDistribution(1, 100, log=True),
             "j": IntDistribution(0, 9), "f": FloatDistribution(0.0, 1.0, step=0.25)}
    q = QMCProposer(dists, 3)
    points = [q.propose(k, [], []) for k in range(64)]
    assert {p["c"] for p in points} == {"a", "b", "c"} and {p["f"] for p in points} == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {p["j"] for p in points} == set(range(10))
    assert all(1 <= p["i"] <= 100 and isinstance(p["i"], int) for p in points)
    assert sum(p["i"] <= 10 for p in points) == pytest.approx(32, abs=6)  # log-uniform: half below sqrt(100)


# --- CMA-ES -------------------------------------------------------------------------------------------
def test_cmaes_moves_towards_the_optimum_and_beats_random_on_the_same_budget():
    for seed in range(3):
        cma = OptunaProposer(PLANE, "cmaes", seed, "min", lag=1)
        got = run(cma, 60)
        rnd = run(OptunaProposer(PLANE, "random", seed, "min", lag=1), 60)
        # its state is carried from proposal to proposal: generations advance (a CMA-ES restarted for every
        # proposal would stay in generation 0, drawing around the centre of the plane)
        gens = [cma.attrs[k].get("cma:generation") for k in range(60)]
        assert gens[:2] == [None, None] and gens[2] == 0 and max(g for g in gens if g is not None) >= 6, gens
        assert sum(any(a.startswith("cma:optimizer") for a in attrs) for attrs in cma.attrs.values()) >= 6
        first = [v for k, (_, v) in got.items() if gens[k] == 0]
        last = [v for k, (_, v) in got.items() if k >= 45]
        assert statistics.mean(last) < 0.2 * statistics.mean(first), (seed, first, last)
        assert statistics.mean(last) < 0.1 * statistics.mean(v for k, (_, v) in rnd.items() if k >= 45)
        assert min(v for _, v in got.values()) < min(v for _, v in rnd.values())


def test_a_rebuilt_cmaes_proposes_what_the_uninterrupted_one_does():
    whole = OptunaProposer(PLANE, "cmaes", 4, "min", lag=1, options={"popsize": 4})
    got = run(whole, 30)
    for cut in (7, 12, 19):  # a study interrupted after `cut` configurations: rebuilt from its results alone
        carried = [Carried(f"c{k:04d}", got[k][0], [], {0: got[k][1]}) for k in range(cut)]
        rebuilt = OptunaProposer(PLANE, "cmaes", 4, "min", lag=1, options={"popsize": 4})
        rest = run(rebuilt, 30 - cut, carried=carried)
        assert rest == {k: got[k] for k in range(cut, 30)}, cut
        # (the pickled optimizers are not byte-equal: numpy pickles the garbage of its never-filled arrays)
        assert [sorted(rebuilt.attrs[k].items()) for k in range(cut) if "cma:optimizer:0" not in rebuilt.attrs[k]] \
            == [sorted(whole.attrs[k].items()) for k in range(cut) if "cma:optimizer:0" not in whole.attrs[k]]
    # without the replay, the same proposer knows no generation: its next point is not the uninterrupted one's
    blank = OptunaProposer(PLANE, "cmaes", 4, "min", lag=1, options={"popsize": 4})
    blank.remembers = False
    rep = SeedRepeater(blank, [0], "min", n_new=11,
                       carried=[Carried(f"c{k:04d}", got[k][0], [], {0: got[k][1]}) for k in range(19)])
    assert rep.suggest("next")["params"] != got[19][0]


def test_cmaes_options_reach_the_sampler():
    small = OptunaProposer(PLANE, "cmaes", 0, "min", lag=1, options={"sigma0": 0.01, "popsize": 4})
    got = run(small, 14)
    # popsize 4, and one more per generation: lag 1 leaves a generation's last point unseen when the next is asked
    assert [small.attrs[k].get("cma:generation") for k in range(14)] == [None] * 2 + [0] * 5 + [1] * 5 + [2] * 2
    # sigma0 0.01 of the range: generation 0 is drawn right around the plane's centre
    assert all(abs(got[k][0]["x"]) < 0.6 and abs(got[k][0]["y"]) < 0.6 for k in range(2, 5))


def test_cmaes_resumes_identically_after_random_interruptions(tmp_path):
    """The searcher as Tune drives it, trials finishing in random orders, interrupted and rebuilt from the study's
    Parquet table (the --resume path): every session proposes what the uninterrupted study does."""
    s = make_space("tpe").with_overrides(samples=28)
    s.algorithm, s.search_options = "cmaes", {"popsize": 5}
    lag = search_lag(s.max_concurrent, len(s.seeds))
    reference, finished, _ = drive(build_searcher(s, [], lag), random.Random(0), slots=1)
    assert len(reference) == 28 and len({tuple(p.values()) for p in reference.values()}) == 28
    assert drive(build_searcher(s, [], lag), random.Random(1), slots=3)[0] == reference
    for r in range(3):
        rng = random.Random(200 + r)
        store = StudyStore(tmp_path / f"cma-{r}")
        store.root.mkdir(parents=True)
        store.write_meta({"name": store.name, "metric": "val_accuracy", "mode": "max"})
        searcher, done = build_searcher(s, [], lag), set()
        for i in range(2):
            n = rng.randrange(8, 30)
            stop = (lambda f, run, n=n: len(f) >= n) if (r + i) % 2 else \
                (lambda f, run, n=n, done=done: len(f) >= n and gap(done | {c["config_id"] for c in f}, run))
            _, fin, running = drive(searcher, rng, slots=3, stop=stop)
            store_rows(store, s, fin, running, done | {c["config_id"] for c in fin})
            done |= {c["config_id"] for c in fin}
            searcher = resume(store, s, lag)
        proposed, _, _ = drive(searcher, rng, slots=3)
        final = open_study(store.root).trials
        held = {cid: {n: g.iloc[0][n] for n in s.sampled_names} for cid, g in final.groupby("config_id")}
        assert {**held, **proposed} == reference, r


# --- GP -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "mode"), [(0, "min"), (1, "max")])
def test_gp_beats_random_on_the_same_budget(seed, mode):
    sign = 1.0 if mode == "min" else -1.0  # higher is better: the bowl upside down

    def f(p):
        return sign * bowl(p)

    got = run(OptunaProposer(PLANE, "gp", seed, mode, lag=1, options={"n_startup": 4}), 12, f=f, mode=mode)
    rnd = run(OptunaProposer(PLANE, "random", seed, mode, lag=1), 12, f=f, mode=mode)
    assert [p for p, _ in got.values()][:5] == [p for p, _ in rnd.values()][:5]  # the same random start-up
    best_gp, best_rnd = (min(sign * v for _, v in r.values()) for r in (got, rnd))
    assert best_gp < 0.1 and best_gp < 0.1 * best_rnd, (best_gp, best_rnd)


def test_gp_is_deterministic_for_its_seed():
    def proposals(seed):
        return [p for p, _ in run(OptunaProposer(PLANE, "gp", seed, "min", lag=1, options={"n_startup": 3}), 7)
                .values()]

    first = proposals(0)
    assert proposals(0) == first and proposals(1) != first
    assert first[4:] != [p for p, _ in run(OptunaProposer(PLANE, "random", 0, "min", lag=1), 7).values()][4:]
