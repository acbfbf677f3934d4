"""Benchmark K-FAC's inverse methods and its cost relative to SGD with momentum (CPU or CUDA).

Part 1: for square factors of each size n (a layer with n inputs and n outputs, float32), the time of one
inverse update (decomposing both damped factors ``A`` and ``G``), the time of applying the cached
preconditioner to an n×n gradient, and the optimizer state per layer (factors + cache), for
eigen / cholesky / triangular; medians over ``--reps`` repetitions, ratios to eigen.

Part 2: the time of one training step (forward, backward, optimizer step on 4 cycled random batches;
median over ``--reps`` runs of ``--steps`` steps each, inverse_interval 10, factors every step; the time
includes the amortised inverse update) and the optimizer state, relative to SGD with momentum, on an
MLP 784-512-512-10 (batch 128) and a small CNN (3 convs 32-64-64, 3x32x32 input, batch 64).

Prints Markdown tables. Example: ``python bench/bench_kfac.py --threads 1 --reps 5``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim._kfac_inverse import INVERSE_METHODS
from hyperswitch.optim.kfac import KFAC
from hyperswitch.optim.shampoo import Shampoo

METHODS = ("eigen", "cholesky", "triangular")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], reps: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _factor(n: int, device: torch.device, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(2 * n, n, generator=g).to(device)
    return x.t() @ x / (2 * n)


def bench_inverse(sizes: list[int], reps: int, device: torch.device, damping: float) -> list[dict]:
    rows = []
    for n in sizes:
        a, g = _factor(n, device, 0), _factor(n, device, 1)
        m = torch.randn(n, n, device=device)
        res = {}
        for name in METHODS:
            method = INVERSE_METHODS[name]
            t_inv = _median_time(partial(method.build, a, g, damping), reps, device)
            cache = method.build(a, g, damping)
            t_apply = _median_time(partial(method.apply, cache, m, True), reps, device)
            state = 2 * n * n * 4 + sum(t.numel() * t.element_size() for t in cache.values())
            res[name] = (t_inv, t_apply, state)
        for name in METHODS:
            t_inv, t_apply, state = res[name]
            rows.append({"n": n, "method": name, "inv_ms": 1e3 * t_inv,
                         "inv_ratio": t_inv / res["eigen"][0], "apply_ms": 1e3 * t_apply,
                         "apply_ratio": t_apply / res["eigen"][1], "state_mib": state / 2**20,
                         "state_ratio": state / res["eigen"][2]})
    return rows


def _mlp() -> tuple[nn.Module, tuple[int, ...], int]:
    return (nn.Sequential(nn.Linear(784, 512), nn.ReLU(inplace=True), nn.Linear(512, 512),
                          nn.ReLU(inplace=True), nn.Linear(512, 10)), (128, 784), 10)


def _cnn() -> tuple[nn.Module, tuple[int, ...], int]:
    return (nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64 * 2 * 2, 10)),
            (64, 3, 32, 32), 10)


# Small lr: the timed runs repeat a few batches, and the figures should not depend on a divergence.
OPTIMIZERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "sgdm": lambda m: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9),
    "kfac-eigen": lambda m: KFAC(m.parameters(), m, lr=1e-3, inverse="eigen", inverse_interval=10),
    "kfac-cholesky": lambda m: KFAC(m.parameters(), m, lr=1e-3, inverse="cholesky", inverse_interval=10),
    "kfac-triangular": lambda m: KFAC(m.parameters(), m, lr=1e-3, inverse="triangular", inverse_interval=10),
    "foof-cholesky": lambda m: KFAC(m.parameters(), m, lr=1e-3, variant="foof", inverse_interval=10),
    "shampoo": lambda m: Shampoo(m.parameters(), lr=1e-3, inverse_interval=10),
}


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    own = getattr(opt, "state_bytes", None)
    if callable(own):
        return int(own())
    return sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
               if isinstance(t, torch.Tensor))


def bench_models(steps: int, reps: int, device: torch.device, names: list[str]) -> list[dict]:
    rows = []
    for model_name, build in (("mlp 784-512-512-10 b128", _mlp), ("cnn 3x32x32 b64", _cnn)):
        base = None
        for opt_name in names:
            torch.manual_seed(0)
            model, shape, classes = build()
            model.to(device)
            opt = OPTIMIZERS[opt_name](model)
            data = [(torch.randn(shape, device=device), torch.randint(0, classes, (shape[0],), device=device))
                    for _ in range(4)]

            def run(model=model, opt=opt, data=data) -> None:
                for s in range(steps):
                    x, y = data[s % len(data)]
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(x), y).backward()
                    opt.step()

            t = _median_time(run, reps, device) / steps
            mem = _state_bytes(opt)
            if base is None:
                base = (t, mem)
            rows.append({"model": model_name, "optimizer": opt_name, "step_ms": 1e3 * t,
                         "time_ratio": t / base[0], "state_mib": mem / 2**20,
                         "mem_ratio": mem / base[1] if base[1] else float("nan")})
    return rows


def _table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(format(r[c[0]], c[2]) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048],
                    help="factor sizes n (default: 256 512 1024 2048)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the median is reported (default 3)")
    ap.add_argument("--steps", type=int, default=10,
                    help="training steps per timed run (default 10: one inverse update per run)")
    ap.add_argument("--damping", type=float, default=0.1, help="damping for the inverse updates")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS),
                    help="optimizers of part 2; the first is the baseline (default: all, sgdm first)")
    ap.add_argument("--skip-inverse", action="store_true", help="skip part 1")
    ap.add_argument("--skip-models", action="store_true", help="skip part 2")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, reps {args.reps}")
    t0 = time.perf_counter()
    if not args.skip_inverse:
        print("\nInverse update (both factors of an n->n layer) and preconditioner apply, float32\n")
        rows = bench_inverse(args.sizes, args.reps, device, args.damping)
        print(_table(rows, [("n", "n", "d"), ("method", "method", "s"), ("inv_ms", "inverse ms", ".2f"),
                            ("inv_ratio", "vs eigen", ".3f"), ("apply_ms", "apply ms", ".2f"),
                            ("apply_ratio", "vs eigen", ".2f"), ("state_mib", "state MiB", ".2f"),
                            ("state_ratio", "vs eigen", ".3f")]))
    if not args.skip_models:
        print(f"\nTraining step (fwd+bwd+step, {args.steps} steps/run, inverse_interval 10), float32\n")
        rows = bench_models(args.steps, args.reps, device, args.optimizers)
        vs = f"vs {args.optimizers[0]}"
        print(_table(rows, [("model", "model", "s"), ("optimizer", "optimizer", "s"),
                            ("step_ms", "step ms", ".1f"), ("time_ratio", vs, ".2f"),
                            ("state_mib", "state MiB", ".2f"), ("mem_ratio", vs, ".1f")]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
