"""GeN's relative speed: steps/s of GeN over steps/s of its base optimizer, at phi = 1, 4, 8.

001 (Section 4.1) reports 60% at phi=1, 86% at phi=4 and 92% at phi=8 on GPUs, in line with
``3/(3 + 2/phi)`` (backward ≈ 2 forwards, two extra forwards every phi steps). This script measures the
same ratio side by side in one run: for each repeat the base and the GeN configurations are timed one after
the other in a rotating order on fresh copies of the model, and the script prints the medians.

    python bench/bench_gen.py                      # digits MLP 64-128-10 (batch 64) and 784-1024-1024-10 (256)
    python bench/bench_gen.py --models large --repeats 7 --base adamw

Not a test: figures depend on the machine and its load (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim import build_optimizer

PAPER = {1: 0.60, 4: 0.86, 8: 0.92}


def digits_problem(batch: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """64-128-10 MLP on scikit-learn's digits (synthetic data of that shape if scikit-learn is missing)."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data[:batch], dtype=torch.float32) / 16.0
        y = torch.tensor(d.target[:batch], dtype=torch.int64)
    except ImportError:  # pragma: no cover
        x, y = torch.rand(batch, 64), torch.randint(0, 10, (batch,))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    return model, x, y


def large_problem(batch: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """784-1024-1024-10 MLP on synthetic MNIST-shaped data."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 784, generator=g), torch.randint(0, 10, (batch,), generator=g)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    return model, x, y


def plain_step(opt: torch.optim.Optimizer, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def time_config(model0: nn.Module, x, y, spec: dict, chunk: int, warmup: int, min_time: float) -> float:
    """Seconds per step of ``spec`` on a fresh copy of ``model0``: after ``warmup`` untimed steps, steps in
    chunks of ``chunk`` (a multiple of every phi, so fits are counted exactly) until ``min_time`` passed."""
    model = copy.deepcopy(model0)
    opt = build_optimizer(spec, model, F.cross_entropy)
    step = getattr(opt, "batch_step", None)
    run = (lambda: step(x, y)) if step is not None else (lambda: plain_step(opt, model, x, y))
    for _ in range(warmup):
        run()
    steps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(chunk):
            run()
        steps += chunk
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / steps


def bench(name: str, model0: nn.Module, x, y, args: argparse.Namespace) -> list[dict]:
    base = {"name": args.base, "lr": args.lr}
    configs = {"base": base}
    for phi in args.phis:
        configs[f"phi={phi}"] = {"name": "gen", "base": args.base, "base_params": {"lr": args.lr}, "phi": phi}
    times: dict[str, list[float]] = {k: [] for k in configs}
    ratios: dict[str, list[float]] = {k: [] for k in configs if k != "base"}
    keys = list(configs)
    chunk = math.lcm(*args.phis)
    for r in range(args.repeats):
        order = keys[r % len(keys):] + keys[:r % len(keys)]  # rotate so no config always runs first
        got = {k: time_config(model0, x, y, configs[k], chunk, args.warmup, args.min_time) for k in order}
        for k, v in got.items():
            times[k].append(v)
        for k in ratios:
            ratios[k].append(got["base"] / got[k])
    rows = []
    base_ms = 1e3 * statistics.median(times["base"])
    for phi in args.phis:
        k = f"phi={phi}"
        rows.append({
            "model": name, "phi": phi, "base_ms": base_ms, "gen_ms": 1e3 * statistics.median(times[k]),
            "relative": statistics.median(ratios[k]), "min": min(ratios[k]), "max": max(ratios[k]),
            "expected": 3 / (3 + 2 / phi), "paper": PAPER.get(phi),
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=["digits", "large"], default=["digits", "large"])
    p.add_argument("--base", default="sgd", help="registered base optimizer (default: sgd)")
    p.add_argument("--lr", type=float, default=0.01, help="base learning rate = GeN's lr0 (default: 0.01)")
    p.add_argument("--phis", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--min-time", type=float, default=0.5,
                   help="seconds per measurement at least (steps in chunks of lcm(phis)); default 0.5")
    p.add_argument("--warmup", type=int, default=8, help="untimed steps before each measurement")
    p.add_argument("--repeats", type=int, default=7, help="measurements per configuration; medians printed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on shared cores more threads measure contention)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # a diverging lr must not turn into a denormal-arithmetic benchmark
    torch.manual_seed(0)
    problems = {"digits": lambda: digits_problem(64), "large": lambda: large_problem(256)}
    labels = {"digits": "digits 64-128-10, batch 64", "large": "784-1024-1024-10, batch 256"}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, base {args.base}, "
          f">= {args.min_time} s per measurement x {args.repeats} repeats")
    print(f"{'model':30s} {'phi':>3s} {'base ms':>8s} {'GeN ms':>8s} {'relative':>8s} {'[min, max]':>14s} "
          f"{'3/(3+2/phi)':>11s} {'paper':>6s}")
    for m in args.models:
        model0, x, y = problems[m]()
        for row in bench(labels[m], model0, x, y, args):
            paper = f"{row['paper']:.0%}" if row["paper"] is not None else "-"
            print(f"{row['model']:30s} {row['phi']:3d} {row['base_ms']:8.2f} {row['gen_ms']:8.2f} "
                  f"{row['relative']:8.0%} [{row['min']:4.0%}, {row['max']:4.0%}] {row['expected']:11.0%} "
                  f"{paper:>6s}")


if __name__ == "__main__":
    main()
