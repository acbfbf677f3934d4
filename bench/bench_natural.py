"""Cost of an EF / iEF / SF update relative to a plain forward + backward, torch.func path vs factored path.

The update (docs/algorithms.md#natural-gradient-ef-ief-sf): per-sample gradients, the Gram matrix, the ``N×N``
Cholesky solve, ``Jᵀc`` and applying the step. ``jacobian: torch.func`` materialises ``J`` by ``vmap(grad)``;
the default factored path (docs/algorithms.md#factored-per-sample-gradients) works from each layer's inputs
and output gradients. This script times, side by side in one run (rotating order, medians of per-repeat
ratios), ``zero_grad`` + forward + backward of the batch, the whole ``batch_step`` of both paths, and the
parts of the factored one:

- ``pass``: the forward with hooks, the per-sample losses, the input-only backward (SF: one more per draw);
- ``Gram``: ``J Jᵀ`` from the factors (SF: ``Js Jsᵀ`` and ``Js Jᵀ``, sharing ``A Aᵀ``);
- ``solve``: the float64 Cholesky solve;
- ``Jᵀc``: the direction (SF: ``(Jᵀ1 − Jsᵀc)/λ`` in one product per layer);
- ``mean grad``: ``Jᵀ1/N`` for ``p.grad``.

Both clocks are reported: wall time and the thread's CPU time (``time.thread_time``). On a machine shared
with other jobs the CPU-time ratios are the steadier ones (time-slicing inflates wall time, not CPU time).

    python bench/bench_natural.py            # MLP 784-256-256-10, batches 32 and 128, ef ief sf, 1 thread
    python bench/bench_natural.py --batches 32 64 128 --methods ief --repeats 9

Not a test: figures depend on the machine and its load (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim import _natural_factored as nf
from hyperswitch.optim import build_optimizer
from hyperswitch.optim.natural import solve_gram

Fn = Callable[[], object]


def timed(fn: Fn, min_time: float) -> tuple[float, float]:
    """``(wall s, thread CPU s)`` per call of ``fn`` (one untimed call, then calls until ``min_time`` passed)."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n, (time.thread_time() - c0) / n


def fresh(rows: nf.FactoredRows) -> nf.FactoredRows:
    """The same factors without cached products (``A Aᵀ``, materialised ``G``)."""
    memo: dict[int, nf.Inputs] = {}
    layers = [nf.Layer(memo.setdefault(id(x.inp), nf.Inputs(x.a)), x.d, x.repeat) for x in rows.layers]
    return nf.FactoredRows(layers, rows.slots)


def parts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str) -> dict[str, Fn]:
    spec = {"name": method, "lr": 0.0}  # lr 0: the model stays put
    if method == "sf":
        spec["sample_seed"] = 0
    fast = build_optimizer(spec, model, F.cross_entropy)
    slow = build_optimizer({**spec, "jacobian": "torch.func"}, model, F.cross_entropy)
    fast.batch_step(x, y)  # the first step's check
    assert fast.jacobian_path == "factored", fast.fallback_reason
    plan = fast._plan
    assert plan is not None
    objectives = fast._objectives(y)
    out = nf.factored_pass(model, plan, x, y, F.cross_entropy, objectives)
    jac, js = out.rows, out.extra
    lam = fast.param_groups[0]["damping"]
    n = x.shape[0]

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def grams() -> tuple[torch.Tensor, torch.Tensor]:
        if js is None:
            k = fresh(jac).gram()
            s = out.output_grads.pow(2).sum(1) if method == "ief" else torch.ones(n)
            return k, s
        js2 = fresh(js)
        jac2 = nf.FactoredRows([nf.Layer(b.inp, a.d) for a, b in zip(jac.layers, js2.layers, strict=True)],
                               jac.slots)
        return js2.gram(), js2.cross_gram(jac2).sum(1)

    k, rhs = grams()
    damp = lam * (fast.defaults.get("n_samples", 1) if js is not None else 1)
    coef = solve_gram(k, rhs, damp)[0]
    ones = torch.full((n,), 1.0 / lam, dtype=torch.float64)

    def direction() -> object:
        if js is None:
            return jac.tmul(coef.to(jac.dtype))
        return nf.tmul_sum([(jac, ones), (js, -coef / lam)])

    return {
        "fwd+bwd": fwd_bwd,
        "torch.func batch_step": lambda: slow.batch_step(x, y),
        "factored batch_step": lambda: fast.batch_step(x, y),
        "  pass": lambda: nf.factored_pass(model, plan, x, y, F.cross_entropy, objectives),
        "  Gram": grams,
        "  solve": lambda: solve_gram(k, rhs, damp),
        "  Jᵀc": direction,
        "  mean grad": jac.mean_row,
    }


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    p.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers (default 256)")
    p.add_argument("--methods", nargs="+", choices=["ef", "ief", "sf"], default=["ef", "ief", "sf"])
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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), {os.cpu_count()} CPUs, "
          f"MLP 784-{h}-{h}-10 (P = {n_params:,}), >= {args.min_time} s per measurement x {args.repeats} repeats")
    print(f"load average (1, 5, 15 min) at start: {load()}")
    print(f"{'method':6s} {'N':>4s} {'part':22s} {'wall ms':>9s} {'/ fwd+bwd':>10s} {'cpu ms':>9s} {'/ fwd+bwd':>10s}")
    for method in args.methods:
        for n in args.batches:
            g = torch.Generator().manual_seed(n)
            x, y = torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)
            fns = parts(model, x, y, method)
            keys = list(fns)
            got: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
            for r in range(args.repeats):
                order = keys[r % len(keys):] + keys[:r % len(keys)]
                now = {k: timed(fns[k], args.min_time) for k in order}
                for k in keys:
                    got[k].append(now[k])
            base = got["fwd+bwd"]
            for k in keys:
                wall = statistics.median(t[0] for t in got[k])
                cpu = statistics.median(t[1] for t in got[k])
                rw = statistics.median(t[0] / b[0] for t, b in zip(got[k], base, strict=True))
                rc = statistics.median(t[1] / b[1] for t, b in zip(got[k], base, strict=True))
                print(f"{method:6s} {n:4d} {k:22s} {1e3 * wall:9.3f} {rw:9.2f}x {1e3 * cpu:9.3f} {rc:9.2f}x",
                      flush=True)
    print(f"load average (1, 5, 15 min) at end: {load()}")


if __name__ == "__main__":
    main()
