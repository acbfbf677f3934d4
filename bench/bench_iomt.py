"""IOMT overhead (compression + GP update + acquisition) as a fraction of training time (not a test).

The cycle-boundary work (``_start_cycle``: compress the model state, fit/query each candidate's GP, choose;
``_end_cycle``: score the cycle, record the surrogate point, update weights) is timed inside the same run as
the training steps it interleaves with, so the fraction is measured side by side.

    python bench/bench_iomt.py                       # tau 25, n_ini 20, 1000 steps, two model sizes
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from hyperswitch.switching import Policy


def mlp(sizes: list[int]) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def run(sizes: list[int], batch: int, args: argparse.Namespace) -> tuple[float, float, int]:
    model = mlp(sizes)
    stepper = Policy.from_spec({"type": "iomt", "tau": args.tau, "n_ini": args.n_ini, "n_components": 2,
                                "compress": args.compress}).build(model, nn.functional.cross_entropy)
    spent = [0.0]
    for name in ("_start_cycle", "_end_cycle"):
        inner = getattr(stepper, name)

        def timed(*a, _inner=inner):
            t = time.perf_counter()
            try:
                return _inner(*a)
            finally:
                spent[0] += time.perf_counter() - t

        setattr(stepper, name, timed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (batch,), generator=g)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        stepper.step(x, y)
    total = time.perf_counter() - t0
    return total, spent[0], stepper.cycle


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tau", type=int, default=25)
    p.add_argument("--n-ini", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--compress", default="pca", choices=("pca", "rp"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"IOMT tau {args.tau}, n_ini {args.n_ini}, {args.compress}, {args.steps} steps, 15 candidates")
    print(f"{'model':<26} {'batch':>5} {'total s':>8} {'overhead s':>10} {'fraction':>9} {'ms/cycle':>9}")
    warm = argparse.Namespace(**{**vars(args), "steps": args.tau * (args.n_ini + 3)})
    run([64, 32, 10], 16, warm)  # imports and first GP fits, not counted
    for sizes, batch in (([64, 128, 10], 64), ([784, 512, 512, 10], 128)):
        total, spent, cycles = run(sizes, batch, args)
        name = "-".join(map(str, sizes))
        print(f"{name:<26} {batch:>5} {total:>8.2f} {spent:>10.3f} {spent / total:>9.1%} "
              f"{1e3 * spent / max(cycles, 1):>9.2f}")


if __name__ == "__main__":
    main()
