"""Search efficiency on mixer_thresholds: TPE and random search against the full grid, and what ASHA saves.

Ground truth: a finished sweep of ``search_spaces/mixer_thresholds.yaml`` (70 grid points x its seeds); a
configuration's value is its mean final ``val_accuracy`` over the seeds, and the target is the grid's best mean
minus ``--tolerance`` (0.005 = half a percentage point).

1. Searchers on a lookup table. Optuna's TPE and random samplers, built exactly as the sweep runner builds them
   (``TPESampler(seed=s)`` / ``RandomSampler(seed=s)`` with the space's own distributions, all categorical), ask
   for configurations one after another; each is answered with the grid's measured mean for that point instead of
   training it again (every point they can propose is a grid point). Counted: configurations asked until the first
   one within the tolerance, repeats included (a real sweep would train a repeat again), for ``--searcher-seeds``
   seeds; the median is the figure. A seeded random order of the grid (Optuna's GridSampler; the grid sweep's own
   GridSearcher also runs the grid in a seeded random order) is the reference. Trials = configurations x seeds.
2. ASHA, for real (``--asha``): the same grid swept again on Ray with ``scheduler: {type: asha, grace_period,
   reduction_factor}`` (trials reporting every ``eval_every`` steps, stopped at the rungs). Compute = steps trained
   (and the trials' summed wall time); ASHA's answer = the configuration with the best mean over its seeds that ran
   to the end, judged by its grid mean.

    python bench/bench_search_efficiency.py --storage runs/catalogue               # tables from the grid study
    python bench/bench_search_efficiency.py --storage runs/catalogue --asha        # + a real ASHA sweep
    python bench/bench_search_efficiency.py --storage runs/catalogue --run-grid    # run the grid first if missing
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperswitch.results import open_study  # noqa: E402
from hyperswitch.search.space import SearchSpace, load_space, space_from_text  # noqa: E402

SPACE_FILE = ROOT / "search_spaces" / "mixer_thresholds.yaml"


def key_of(values: dict[str, Any], names: list[str]) -> tuple:
    return tuple(float(values[n]) if isinstance(values[n], int | float) else str(values[n]) for n in names)


def ground_truth(study: Any, space: SearchSpace) -> dict[tuple, float]:
    t = study.finished()
    t = t[t["status"] == "completed"]
    names = space.sampled_names
    means: dict[tuple, float] = {}
    for _, g in t.groupby("config_id"):
        means[key_of(g.iloc[0].to_dict(), names)] = float(g[space.metric].mean())
    return means


def searcher_trials(space: SearchSpace, table: dict[tuple, float], target: float, algorithm: str, seed: int,
                    budget: int) -> tuple[int | None, float]:
    """Configurations asked until one is within the target (None: not within ``budget``), and the best seen."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if algorithm == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif algorithm == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.GridSampler(space.grid(), seed=seed)
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize", sampler=sampler)
    dists = space.optuna_space()
    best = float("-inf")
    for n in range(1, budget + 1):
        trial = study.ask(dists)
        value = table[key_of(trial.params, space.sampled_names)]
        study.tell(trial, value)
        best = max(best, value)
        if value >= target:
            return n, best
    return None, best


def run_asha(space: SearchSpace, storage: Path, name: str, grace: int, rf: float) -> Any:
    from hyperswitch.search.runner import run_sweep

    doc = yaml.safe_load(space.text)
    doc["name"] = name
    doc["scheduler"] = {"type": "asha", "grace_period": grace, "reduction_factor": rf}
    text = yaml.safe_dump(doc, sort_keys=False)
    path = storage / f"{name}.yaml"
    path.write_text(text)
    asha_space = space_from_text(text, str(path))
    if (storage / name / "study.json").exists():
        return run_sweep(asha_space, storage=storage, resume=True, out=lambda s: None)
    return run_sweep(asha_space, storage=storage, out=print)


def sweep_wall_s(study_dir: Path) -> float | None:
    import datetime as dt

    meta = json.loads((study_dir / "study.json").read_text())
    try:
        return (dt.datetime.fromisoformat(meta["updated"]) - dt.datetime.fromisoformat(meta["created"])).total_seconds()
    except (KeyError, ValueError):
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", type=Path, default=ROOT / "runs" / "catalogue")
    p.add_argument("--grid-study", default="mixer_thresholds", help="name of the finished grid study")
    p.add_argument("--run-grid", action="store_true", help="run the grid sweep first when it is missing")
    p.add_argument("--tolerance", type=float, default=0.005, help="0.005 = 0.5 percentage point")
    p.add_argument("--also-tolerance", type=float, default=0.0,
                   help="a second, stricter target for an extra table (default 0: a grid-best point itself)")
    p.add_argument("--searcher-seeds", type=int, default=5)
    p.add_argument("--asha", action="store_true", help="also run (or resume) a real ASHA sweep of the same grid")
    p.add_argument("--grace-period", type=int, default=40)
    p.add_argument("--reduction-factor", type=float, default=3)
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args()

    space = load_space(SPACE_FILE)
    grid_dir = args.storage / args.grid_study
    if not (grid_dir / "study.json").exists():
        if not args.run_grid:
            sys.exit(f"no grid study at {grid_dir}; run `hyperswitch sweep {SPACE_FILE} --storage {args.storage}` "
                     "or pass --run-grid")
        from hyperswitch.search.runner import run_sweep

        run_sweep(space, storage=args.storage, name=args.grid_study, out=print)
    grid = open_study(grid_dir)
    table = ground_truth(grid, space)
    n_grid = space.n_configurations()
    if len(table) < n_grid:
        sys.exit(f"the grid study has {len(table)} of {n_grid} configurations finished; finish it first")
    n_seeds = len(space.seeds)
    best_key = max(table, key=table.get)
    best = table[best_key]
    target = best - args.tolerance
    near = sorted(k for k, v in table.items() if v >= target)
    out: dict[str, Any] = {
        "grid_points": n_grid, "seeds": n_seeds, "grid_trials": n_grid * n_seeds, "best_mean": best,
        "best_config": dict(zip(space.sampled_names, best_key, strict=True)), "tolerance": args.tolerance,
        "points_within_tolerance": len(near), "searchers": {}, "searchers_strict": {},
        "also_tolerance": args.also_tolerance,
    }
    print(f"grid {n_grid} points x {n_seeds} seeds = {n_grid * n_seeds} trials; best mean {space.metric} "
          f"{best:.4f} at {out['best_config']}; {len(near)} of {n_grid} points within {args.tolerance:g}")
    for tol in (args.tolerance, args.also_tolerance):
        goal = best - tol
        n_near = sum(v >= goal for v in table.values())
        print(f"target {space.metric} >= {goal:.4f} (best - {tol:g}; {n_near} of {n_grid} points reach it)")
        print(f"  {'searcher':<8} {'configs to target (per seed)':<32} {'median':>6} {'trials':>7} {'of grid':>8}")
        for algorithm in ("tpe", "random", "grid"):
            counts = []
            for seed in range(args.searcher_seeds):
                n, _ = searcher_trials(space, table, goal, algorithm, seed,
                                       budget=n_grid if algorithm == "grid" else 10 * n_grid)
                counts.append(n)
            found = [c for c in counts if c is not None]
            med = statistics.median(found) if len(found) == len(counts) else None
            entry = {"configs_per_seed": counts, "median_configs": med,
                     "median_trials": med * n_seeds if med is not None else None,
                     "fraction_of_grid": med / n_grid if med is not None else None}
            out["searchers" if tol == args.tolerance else "searchers_strict"].setdefault(algorithm, entry)
            frac = f"{med / n_grid:.1%}" if med is not None else "n/a"
            print(f"  {algorithm:<8} {str(counts):<32} {med if med is not None else 'n/a':>6} "
                  f"{med * n_seeds if med is not None else 'n/a':>7} {frac:>8}")
    tpe = out["searchers"]["tpe"]["median_configs"]
    out["aim_tpe_within_quarter"] = tpe is not None and tpe <= n_grid / 4
    print(f"aim (TPE within {args.tolerance:g} using <= 1/4 of the grid = {n_grid / 4:g} configurations): "
          f"{'met' if out['aim_tpe_within_quarter'] else 'not met'}")

    g = grid.finished()
    grid_steps = int(g["steps_done"].sum())
    grid_wall = float(g["wall_time_s"].sum())
    out["grid_compute"] = {"steps": grid_steps, "trial_wall_s": grid_wall, "sweep_wall_s": sweep_wall_s(grid_dir)}
    if args.asha:
        name = f"{args.grid_study}_asha"
        t0 = time.monotonic()
        study = run_asha(space, args.storage, name, args.grace_period, args.reduction_factor)
        t = study.finished()
        steps = int(t["steps_done"].sum())
        done = t[t["status"] == "completed"]
        per_config = done.groupby("config_id")[space.metric].agg(["mean", "count"])
        full = per_config[per_config["count"] == n_seeds]
        pool = full if len(full) else per_config
        pick = pool["mean"].idxmax()
        pick_key = key_of(done[done["config_id"] == pick].iloc[0].to_dict(), space.sampled_names)
        asha = {
            "grace_period": args.grace_period, "reduction_factor": args.reduction_factor,
            "steps": steps, "steps_fraction_of_grid": steps / grid_steps,
            "trial_wall_s": float(t["wall_time_s"].sum()), "sweep_wall_s": sweep_wall_s(args.storage / name),
            "run_s_this_call": time.monotonic() - t0,
            "trials_stopped": int((t["status"] == "stopped").sum()), "trials": len(t),
            "pick": dict(zip(space.sampled_names, pick_key, strict=True)),
            "pick_mean_in_asha": float(pool.loc[pick, "mean"]), "pick_grid_mean": table[pick_key],
            "pick_within_tolerance": table[pick_key] >= target,
            "configs_with_all_seeds_completed": int(len(full)),
        }
        out["asha"] = asha
        print(f"ASHA (grace {args.grace_period}, rf {args.reduction_factor:g}): {steps} of {grid_steps} steps "
              f"({steps / grid_steps:.1%}), trial wall {asha['trial_wall_s']:.0f} s of {grid_wall:.0f} s, "
              f"{asha['trials_stopped']}/{len(t)} trials stopped; pick {asha['pick']} grid mean "
              f"{asha['pick_grid_mean']:.4f} (best {best:.4f}): "
              f"{'within' if asha['pick_within_tolerance'] else 'NOT within'} {args.tolerance:g}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
