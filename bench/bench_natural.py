"""Cost of generating an EF / iEF update relative to a plain forward + backward, on an MLP.

The update (docs/algorithms.md#natural-gradient-ef-ief-sf) is: per-sample gradients ``J`` (``torch.func`` vmap),
[iEF: ``s``], the Gram matrix ``J Jᵀ``, the ``N×N`` Cholesky solve, and the product ``Jᵀ c``. 003 reports that the
*solve* adds under 1% to a training step; the per-sample gradients and the ``O(N²P)`` Gram product are what cost.
This script times each part and the whole ``batch_step`` against ``zero_grad`` + forward + backward of the same
batch, with all configurations measured side by side (rotating order) and medians printed.

    python bench/bench_natural.py                  # MLP 784-256-256-10, batches 32 and 128
    python bench/bench_natural.py --batches 32 64 128 --hidden 512 --repeats 9

Not a test: figures depend on the machine and its load (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim.natural import EmpiricalFisher, ImprovedEmpiricalFisher, gram, solve_gram


def timed(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call of ``fn`` (one untimed call, then calls until ``min_time`` passed)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n


def parts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str) -> dict[str, Callable[[], object]]:
    cls = ImprovedEmpiricalFisher if method == "ief" else EmpiricalFisher
    opt = cls(model.parameters(), model=model, loss_fn=F.cross_entropy, lr=0.0)  # lr 0: the model stays put
    _, jac, out = opt.per_sample(x, y)
    rhs = opt.output_grad_norms(out, y) if method == "ief" else torch.ones(x.shape[0])
    k = gram(jac)
    coef = solve_gram(k, rhs, 1e-7)[0].to(jac[0].dtype)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def per_sample() -> None:
        _, _, z = opt.per_sample(x, y)
        if method == "ief":
            opt.output_grad_norms(z, y)

    return {
        "fwd+bwd": fwd_bwd,
        "per-sample J": per_sample,
        "Gram J Jᵀ": lambda: gram(jac),
        "N×N solve": lambda: solve_gram(k, rhs, 1e-7),
        "Jᵀ c": lambda: [b.T @ coef for b in jac],
        "batch_step": lambda: opt.batch_step(x, y),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    p.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers (default 256)")
    p.add_argument("--methods", nargs="+", choices=["ef", "ief"], default=["ief", "ef"])
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement at least")
    p.add_argument("--repeats", type=int, default=5, help="measurements per part; medians printed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on shared cores more threads measure contention)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    h = args.hidden
    model = nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, MLP 784-{h}-{h}-10 "
          f"(P = {n_params:,}), >= {args.min_time} s per measurement x {args.repeats} repeats")
    print(f"{'method':6s} {'N':>4s} {'part':14s} {'ms':>9s} {'/ fwd+bwd':>10s}")
    for method in args.methods:
        for n in args.batches:
            g = torch.Generator().manual_seed(n)
            x, y = torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)
            fns = parts(model, x, y, method)
            keys = list(fns)
            times: dict[str, list[float]] = {k: [] for k in keys}
            ratios: dict[str, list[float]] = {k: [] for k in keys}
            for r in range(args.repeats):
                order = keys[r % len(keys):] + keys[:r % len(keys)]
                got = {k: timed(fns[k], args.min_time) for k in order}
                for k in keys:
                    times[k].append(got[k])
                    ratios[k].append(got[k] / got["fwd+bwd"])
            for k in keys:
                ms = 1e3 * statistics.median(times[k])
                print(f"{method:6s} {n:4d} {k:14s} {ms:9.3f} {statistics.median(ratios[k]):10.2%}")


if __name__ == "__main__":
    main()
