"""Warm starts: ``search.start_points`` (proposed first, for every algorithm) and ``--warm-start STUDY`` (an
earlier study's configuration means told to the sampler as prior trials, never this study's). The searcher is
driven directly where no training is needed; one small real sweep runs the command end to end."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from optuna.distributions import FloatDistribution

from hyperswitch.cli import main
from hyperswitch.errors import ConfigError
from hyperswitch.results import open_study
from hyperswitch.results.schema import COMPLETED, ERROR
from hyperswitch.results.store import StudyStore
from hyperswitch.search.runner import _carried, build_searcher, prepare_study, read_warm_start
from hyperswitch.search.seeds import OptunaProposer, search_lag
from hyperswitch.search.space import space_from_text
from hyperswitch.search.trial import trial_row
from tests.search.test_proposals import drive, gap, store_rows
from tests.search.test_samplers import bowl, run

SPACE = """\
name: {name}
workload: {{name: digits_mlp, batch_size: $batch}}
policy:
  type: switch
  phase1: {{name: adam, lr: $adam_lr}}
  phase2: {{name: sgdm, lr: $lr, momentum: $momentum}}
  switch: {{at: $switch_at}}
train: {{steps: 20, eval_every: 10}}
parameters:
  lr: {{type: float, low: 0.01, high: 0.3, log: true}}
  momentum: {{type: float, low: 0.5, high: 0.9, step: 0.1}}
  switch_at: {{type: int, low: 0, high: 20, step: 5}}
  batch: {{type: categorical, choices: [32, 64]}}
  adam_lr: 0.001
search: {search}
seeds: 2
max_concurrent: 3
"""
POINTS = "[{lr: 0.1, momentum: 0.9, switch_at: 10, batch: 64}, {lr: 0.02, momentum: 0.6, switch_at: 0, batch: 32}]"
GRID = SPACE.replace("lr: {{type: float, low: 0.01, high: 0.3, log: true}}",
                    "lr: {{type: categorical, choices: [0.02, 0.1, 0.3]}}")  # 3 x 5 x 5 x 2 = 150 points
START = [{"lr": 0.1, "momentum": 0.9, "switch_at": 10, "batch": 64},
         {"lr": 0.02, "momentum": 0.6, "switch_at": 0, "batch": 32}]


def space(search: str, name: str = "warm", text: str = SPACE):
    return space_from_text(text.format(name=name, search=search), f"{name}.yaml")


# --- start points: validation -------------------------------------------------------------------------
def test_start_points_are_held_as_the_parameters_hold_them():
    s = space("{algorithm: tpe, samples: 4, start_points: [{lr: 1.0e-1, momentum: 0.7000000000001, switch_at: 5.0, "
              "batch: 64.0}]}")
    p = s.start_points[0]
    assert p == {"lr": 0.1, "momentum": 0.7, "switch_at": 5, "batch": 64}  # on the step, as the grid has it
    assert isinstance(p["switch_at"], int) and isinstance(p["batch"], int)  # the choice as written


@pytest.mark.parametrize(("points", "key", "rule"), [
    ("{lr: 0.1}", "search.start_points", "must be a list of mappings (parameter name: value) (got {'lr': 0.1})"),
    ("[3]", "search.start_points[0]", "must be a mapping (got 3)"),
    ("[{lr: 0.5, momentum: 0.9, switch_at: 10, batch: 64}]", "search.start_points[0].lr",
     "must be within parameters.lr's range [0.01, 0.3] (got 0.5)"),
    ("[{lr: 0.1, momentum: 0.85, switch_at: 10, batch: 64}]", "search.start_points[0].momentum",
     "must be on parameters.momentum's step (low 0.5 + a multiple of 0.1) (got 0.85)"),
    ("[{lr: 0.1, momentum: 0.9, switch_at: 7, batch: 64}]", "search.start_points[0].switch_at",
     "must be on parameters.switch_at's step (low 0 + a multiple of 5) (got 7)"),
    ("[{lr: 0.1, momentum: 0.9, switch_at: 2.5, batch: 64}]", "search.start_points[0].switch_at",
     "must be an integer (got 2.5)"),
    ("[{lr: 0.1, momentum: 0.9, switch_at: 10, batch: 48}]", "search.start_points[0].batch",
     "must be one of the choices of parameters.batch (32, 64) (got 48)"),
    ("[{lr: fast, momentum: 0.9, switch_at: 10, batch: 64}]", "search.start_points[0].lr",
     "must be a number (got 'fast')"),
    ("[{lr: 0.1, momentum: 0.9, batch: 64}]", "search.start_points[0].switch_at",
     "is required: a start point gives every sampled parameter"),
    ("[{lrr: 0.1, momentum: 0.9, switch_at: 10, batch: 64}]", "search.start_points[0].lrr",
     "is not a parameter; did you mean lr? the sampled ones: lr, momentum, switch_at, batch"),
    ("[{lr: 0.1, momentum: 0.9, switch_at: 10, batch: 64, adam_lr: 0.01}]", "search.start_points[0].adam_lr",
     "is a fixed parameter; a start point gives the sampled ones only (got 0.01)"),
    ("[{lr: 0.1, momentum: 0.9, switch_at: 10, batch: 64}, {lr: 0.1, momentum: 0.9, switch_at: 10.0, batch: 64}]",
     "search.start_points[1]", "repeats start point 0 (got {'lr': 0.1, 'momentum': 0.9, 'switch_at': 10.0, "
                               "'batch': 64})"),
])
def test_a_bad_start_point_is_one_line(points, key, rule):
    with pytest.raises(ConfigError) as e:
        space(f"{{algorithm: random, samples: 4, start_points: {points}}}")
    assert str(e.value) == f"warm.yaml: {key}: {rule}"


def test_more_start_points_than_samples_is_an_error_but_samples_may_cut_them():
    with pytest.raises(ConfigError, match=r"search.start_points: has more points than search.samples \(1\) \(got 2\)"):
        space(f"{{algorithm: tpe, samples: 1, start_points: {POINTS}}}")
    s = space(f"{{algorithm: tpe, samples: 2, start_points: {POINTS}}}").with_overrides(samples=1)
    got, _, _ = drive(build_searcher(s, [], 1), random.Random(0), slots=2)
    assert got == {"c0000": START[0]}


# --- start points: proposed first ---------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["tpe", "random", "gp", "cmaes", "qmc", "grid"])
def test_start_points_come_first_in_order_for_every_algorithm(algorithm):
    s = space(f"{{algorithm: {algorithm}, samples: 6, seed: 3, start_points: {POINTS}}}",
              text=GRID if algorithm == "grid" else SPACE)
    got, _, _ = drive(build_searcher(s, [], search_lag(s.max_concurrent, len(s.seeds))), random.Random(0), slots=3)
    n = 150 if algorithm == "grid" else 6  # a grid runs whole: its size is unchanged
    assert len(got) == n and [got["c0000"], got["c0001"]] == START
    assert len({tuple(p.values()) for p in got.values()}) == n  # then the algorithm's own, none a start point again
    if algorithm == "qmc":  # the sequence from its first point
        assert got["c0002"] == build_searcher(space("{algorithm: qmc, samples: 6, seed: 3}"), [], 1) \
            .proposer.propose(0, [], [])


def test_on_a_grid_the_start_points_are_the_first_grid_points_and_samples_a_prefix():
    plain = space("{algorithm: grid, seed: 3}", text=GRID)
    order, _, _ = drive(build_searcher(plain, [], 1), random.Random(0), slots=1)
    s = space(f"{{algorithm: grid, seed: 3, start_points: {POINTS}}}", text=GRID)
    got, _, _ = drive(build_searcher(s, [], 1), random.Random(0), slots=1)
    assert s.n_configurations() == plain.n_configurations() == 150
    rest = [p for p in order.values() if p not in START]
    assert list(got.values()) == [*START, *rest]
    cut, _, _ = drive(build_searcher(s.with_overrides(samples=5), [], 1), random.Random(0), slots=1)
    assert list(cut.values()) == [*START, *rest[:3]]


def test_start_points_keep_resume_deterministic(tmp_path):
    s = space(f"{{algorithm: tpe, samples: 14, seed: 7, n_startup: 4, start_points: {POINTS}}}")
    lag = search_lag(s.max_concurrent, len(s.seeds))
    reference = drive(build_searcher(s, [], lag), random.Random(0), slots=1)[0]
    assert [reference["c0000"], reference["c0001"]] == START
    store = new_store(tmp_path / "sp")
    stop = lambda f, run: len(f) >= 11 and gap({c["config_id"] for c in f}, run)  # noqa: E731
    _, fin, running = drive(build_searcher(s, [], lag), random.Random(5), slots=3, stop=stop)
    store_rows(store, s, fin, running, {c["config_id"] for c in fin})
    proposed, _, _ = drive(rebuild(store, s, lag), random.Random(6), slots=3)
    held = held_params(store, s)
    assert proposed and {**held, **proposed} == reference


# --- --warm-start ---------------------------------------------------------------------------------------
def earlier_study(storage, s, configs: dict[str, tuple[dict, list[float | None]]], name: str | None = None):
    """A finished study written through the real store (prepare_study, trial_row): config id -> (params, the
    metric of each seed; None: the trial failed)."""
    store = prepare_study(s, storage, name, False)
    for cid, (params, values) in configs.items():
        for seed, v in enumerate(values):
            cfg = {"params": params, "config_id": cid, "seed": seed, "trial_id": f"{cid}-s{seed}"}
            status = ERROR if v is None else COMPLETED
            store.write_trial_parts(trial_row(s, cfg, None, status, {} if v is None else {"val_accuracy": v}),
                                    [], [])
    store.compact()
    return store.root


def ten_configurations(seed: int = 0) -> dict[str, tuple[dict, list[float | None]]]:
    rng = random.Random(seed)
    out = {}
    for k in range(10):
        p = {"lr": math.exp(rng.uniform(math.log(0.01), math.log(0.3))), "momentum": rng.choice([0.5, 0.6, 0.7, 0.8]),
             "switch_at": rng.choice([0, 5, 10]), "batch": rng.choice([32, 64])}
        out[f"c{k:04d}"] = (p, [0.5 + 0.01 * k, 0.6 + 0.01 * k])
    return out


def test_the_warm_start_record_is_each_configurations_mean_over_its_seeds(tmp_path):
    configs = ten_configurations()
    configs["c0003"] = (configs["c0003"][0], [0.8, None])  # one seed failed: the other's value
    configs["c0004"] = (configs["c0004"][0], [None, None])  # no result: not told
    root = earlier_study(tmp_path / "runs", space("random", "before"), configs)
    rec = read_warm_start(space("{algorithm: tpe, samples: 4}"), "before", tmp_path / "runs")
    assert rec["study"] == str(root.resolve()) and rec["metric"] == "val_accuracy"
    got = {c["config_id"]: c for c in rec["configurations"]}
    assert sorted(got) == [f"c{k:04d}" for k in range(10) if k != 4]
    assert got["c0003"]["value"] == 0.8 and got["c0007"]["value"] == math.fsum([0.5 + 0.01 * 7, 0.6 + 0.01 * 7]) / 2
    for cid, c in got.items():
        assert c["params"] == pytest.approx(configs[cid][0]) and type(c["params"]["switch_at"]) is int
    assert json.loads(json.dumps(rec)) == rec  # as study.json holds it


@pytest.mark.parametrize(("search", "changed", "rule"), [
    ("{algorithm: random}", None, "search.algorithm random does not learn from results; a warm start needs one that "
                                  "does (tpe, gp, cmaes)"),
    ("{algorithm: qmc}", None, "search.algorithm qmc does not learn from results"),
    ("{algorithm: grid}", None, "search.algorithm grid does not learn from results"),
    ("{algorithm: tpe}", ("high: 0.3, log", "high: 0.5, log"),
     "parameter lr is float [0.01, 0.3] log in study before but float [0.01, 0.5] log here"),
    ("{algorithm: tpe}", ("choices: [32, 64]", "choices: [32, 64, 128]"),
     "parameter batch is categorical [32, 64] in study before but categorical [32, 64, 128] here"),
    ("{algorithm: gp}", ("  adam_lr: 0.001", "  adam_lr: {{type: float, low: 0.0001, high: 0.01, log: true}}"),
     "study before searches lr, momentum, switch_at, batch; this space searches lr, momentum, switch_at, batch, "
     "adam_lr"),
    ("{algorithm: tpe}", ("max_concurrent: 3", "max_concurrent: 3\nmetric: val_loss"),
     "study before was run for metric val_accuracy, this space for val_loss"),
    ("{algorithm: cmaes, sigma0: 0.1}", None, "cmaes takes its initial step size from the earlier study when it "
                                              "warm-starts (WS-CMA-ES); remove search.sigma0"),
])
def test_a_mismatched_warm_start_is_one_line(tmp_path, search, changed, rule):
    earlier_study(tmp_path / "runs", space("random", "before"), ten_configurations())
    text = GRID if "grid" in search else SPACE if changed is None else SPACE.replace(*changed)
    with pytest.raises(ConfigError) as e:
        read_warm_start(space(search, text=text), "before", tmp_path / "runs")
    assert str(e.value).startswith(f"--warm-start: {rule}") and str(e.value).endswith("(got 'before')")


def test_warm_start_refusals_about_the_earlier_study(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=r"^--warm-start: no study of this name under .* \(got 'nowhere'\)$"):
        read_warm_start(space("tpe"), "nowhere", runs)
    few = dict(list(ten_configurations().items())[:9])
    earlier_study(runs, space("random", "few"), few)
    with pytest.raises(ConfigError, match=r"^--warm-start: cmaes warm-starts from the best tenth of the earlier "
                       r"configurations and needs at least 10; study few has 9 with a result"):
        read_warm_start(space("cmaes"), "few", runs)
    assert len(read_warm_start(space("tpe"), "few", runs)["configurations"]) == 9
    earlier_study(runs, space("random", "failed"), {"c0000": (few["c0000"][0], [None])})
    with pytest.raises(ConfigError, match=r"^--warm-start: study failed has no finished configuration with a finite "
                       r"val_accuracy"):
        read_warm_start(space("tpe"), "failed", runs)
    with pytest.raises(ConfigError, match=r"^--warm-start: names the study being run"):
        read_warm_start(space("tpe", "few"), runs / "few", runs, study_dir=runs / "few")


PLANE = {"x": FloatDistribution(-5.0, 5.0), "y": FloatDistribution(-5.0, 5.0)}


def priors_near_the_optimum(n: int = 20) -> list[tuple[dict, float]]:
    """An earlier study of the same bowl: random points, and their values."""
    rng = random.Random(11)
    points = [{"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)} for _ in range(n)]
    return [(p, bowl(p)) for p in points]


@pytest.mark.parametrize(("algorithm", "n_startup"), [("tpe", 10), ("gp", 5)])
def test_the_priors_are_learnt_from_and_never_counted_as_this_studys(algorithm, n_startup):
    priors = priors_near_the_optimum()
    opts = {"n_startup": n_startup}
    warm = OptunaProposer(PLANE, algorithm, 0, "min", lag=1, options=opts, priors=priors)
    cold = OptunaProposer(PLANE, algorithm, 0, "min", lag=1, options=opts)
    n = 6
    got, without = run(warm, n), run(cold, n)
    assert sorted(got) == list(range(n))  # n configurations of this study's own: no prior among them
    assert not any(p == q for p, _ in got.values() for q, _ in priors)
    best_prior = min(v for _, v in priors)
    mean_warm, mean_cold = (statistics.mean(v for _, v in r.values()) for r in (got, without))
    assert mean_warm < 0.5 * mean_cold, (mean_warm, mean_cold)
    assert min(v for _, v in got.values()) < best_prior  # it goes on from the earlier study's best


def test_cmaes_starts_from_the_best_tenth_of_the_priors():
    """WS-CMA-ES (Optuna's source_trials): generation 0 is drawn around the mean of the best tenth of the earlier
    configurations, not around the centre of the space; the priors are not this study's configurations."""
    priors = priors_near_the_optimum()
    best = sorted(priors, key=lambda t: t[1])[:2]
    target = (statistics.mean(p["x"] for p, _ in best), statistics.mean(p["y"] for p, _ in best))
    assert math.dist(target, (0.0, 0.0)) > 3

    def generation_0(priors) -> tuple[tuple[float, float], float]:
        """(centre of generation 0's points, their mean distance to target)"""
        proposer = OptunaProposer(PLANE, "cmaes", 2, "min", lag=1, priors=priors, options={"popsize": 10})
        got = run(proposer, 13)
        assert sorted(got) == list(range(13)) and not any(p == q for p, _ in got.values() for q, _ in priors)
        gen0 = [(got[k][0]["x"], got[k][0]["y"]) for k in range(13) if proposer.attrs[k].get("cma:generation") == 0]
        assert len(gen0) == 11  # popsize 10, and one more: lag 1
        centre = (statistics.mean(x for x, _ in gen0), statistics.mean(y for _, y in gen0))
        return centre, statistics.mean(math.dist(p, target) for p in gen0)

    (warm, warm_d), (cold, cold_d) = generation_0(priors), generation_0(())
    assert math.dist(warm, target) < 1.0 and warm_d < 0.6 * cold_d, (warm, warm_d, cold_d)
    assert math.dist(cold, (0.0, 0.0)) < math.dist(cold, target), cold


def test_warm_start_keeps_resume_deterministic(tmp_path):
    s = space("{algorithm: tpe, samples: 12, seed: 2, n_startup: 6}")
    lag = search_lag(s.max_concurrent, len(s.seeds))
    configs = ten_configurations(4)
    priors = [(p, statistics.mean(v)) for p, v in configs.values()]
    reference = drive(build_searcher(s, [], lag, priors), random.Random(0), slots=1)[0]
    assert reference != drive(build_searcher(s, [], lag), random.Random(0), slots=1)[0]
    store = new_store(tmp_path / "ws")
    stop = lambda f, run: len(f) >= 9 and gap({c["config_id"] for c in f}, run)  # noqa: E731
    _, fin, running = drive(build_searcher(s, [], lag, priors), random.Random(3), slots=3, stop=stop)
    store_rows(store, s, fin, running, {c["config_id"] for c in fin})
    proposed, _, _ = drive(rebuild(store, s, lag, priors), random.Random(4), slots=3)
    assert proposed and {**held_params(store, s), **proposed} == reference


def test_the_command_refuses_a_mismatched_warm_start_with_one_line(tmp_path, space_file, capsys):
    runs = tmp_path / "runs"
    earlier_study(runs, space("random", "before"), ten_configurations())
    path = space_file(SPACE.format(name="after", search="{algorithm: tpe}").replace("high: 0.3, log", "high: 0.4, log"))
    assert main(["sweep", str(path), "--storage", str(runs), "--warm-start", "before"]) == 2
    assert capsys.readouterr().err == ("hyperswitch: error: --warm-start: parameter lr is float [0.01, 0.3] log in "
                                       "study before but float [0.01, 0.4] log here (got 'before')\n")
    assert not (runs / "after").exists()


# --- a real sweep ---------------------------------------------------------------------------------------
REAL = """\
name: {name}
workload: {{name: digits_mlp, batch_size: 32, hidden: 16}}
policy:
  type: switch
  phase1: {{name: adam, lr: 0.001}}
  phase2: {{name: sgdm, lr: $lr, momentum: $momentum}}
  switch: {{at: 10}}
train: {{steps: 20, eval_every: 10}}
parameters:
  lr: {{type: float, low: 0.01, high: 0.3, log: true}}
  momentum: {{type: float, low: 0.5, high: 0.99}}
search: {search}
seeds: 1
max_concurrent: 2
"""


@pytest.mark.slow
def test_a_sweep_warm_started_from_an_earlier_one(local_ray, space_file, tmp_path, capsys):
    from hyperswitch.search.runner import run_sweep
    from hyperswitch.search.space import load_space

    runs = tmp_path / "runs"
    before = run_sweep(load_space(space_file(REAL.format(name="before", search="{algorithm: random, samples: 3}"),
                                             "before.yaml")), storage=runs, out=lambda s: None)
    assert len(before.finished()) == 3
    path = space_file(REAL.format(name="after", search="{algorithm: tpe, n_startup: 3, samples: 2, start_points: "
                                  "[{lr: 0.1, momentum: 0.9}]}"), "after.yaml")
    assert main(["sweep", str(path), "--storage", str(runs), "--warm-start", "before"]) == 0
    out = capsys.readouterr().out
    assert f"warm start: 3 configurations of {(runs / 'before').resolve()} told to the sampler first" in out
    after = open_study(runs / "after")
    assert sorted(after.trials["config_id"]) == ["c0000", "c0001"]  # its own 2: none of the earlier 3
    rec = after.meta["warm_start"]
    assert {c["config_id"]: c["value"] for c in rec["configurations"]} == \
        {r.config_id: r.val_accuracy for r in before.finished().itertuples()}
    t = after.trials.set_index("config_id")
    assert (t.loc["c0000", "lr"], t.loc["c0000", "momentum"]) == (0.1, 0.9)  # the start point first
    # c0001 is TPE's from the 3 priors (c0000 running): what the searcher proposes offline from the recorded
    # priors, and not what it proposes without them
    s = load_space(path)
    priors = [(c["params"], c["value"]) for c in rec["configurations"]]
    carried, _, _ = _carried(open_study(runs / "after"), s)
    first = carried[:1]
    lag = after.meta["search_lag"]
    assert lag == 2  # so c0001 waits for no result: it is asked with c0000 running

    def proposals(searcher) -> dict[str, dict]:
        return {(cfg := searcher.suggest("a"))["config_id"]: cfg["params"]}

    held = {"c0001": {n: t.loc["c0001", n] for n in s.sampled_names}}
    assert proposals(build_searcher(s, first, lag, priors)) == held
    assert proposals(build_searcher(s, first, lag)) != held
    # --resume keeps its warm start (study.json); another one is refused
    assert main(["sweep", str(path), "--storage", str(runs), "--resume"]) == 0
    assert "warm start: 3 configurations" in capsys.readouterr().out
    assert main(["sweep", str(path), "--storage", str(runs), "--resume", "--warm-start", str(runs / "after")]) == 2
    assert "--warm-start: a resumed study keeps the warm start it was started with (study " in capsys.readouterr().err


# --- helpers ---------------------------------------------------------------------------------------------
def new_store(root) -> StudyStore:
    store = StudyStore(root)
    store.root.mkdir(parents=True)
    store.write_meta({"name": store.name, "metric": "val_accuracy", "mode": "max"})
    return store


def rebuild(store: StudyStore, s, lag: int, priors=()):
    every = open_study(store.root, include_running=True).trials
    running = every[every.status == "running"] if len(every) else None
    store.discard_unfinished_parts()
    store.compact()
    carried, _, _ = _carried(open_study(store.root), s, running)
    return build_searcher(s, carried, lag, priors)


def held_params(store: StudyStore, s) -> dict[str, dict]:
    final = open_study(store.root).trials
    return {cid: {n: g.iloc[0][n] for n in s.sampled_names} for cid, g in final.groupby("config_id")}
