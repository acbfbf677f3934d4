"""GeN's relative speed (steps/s of GeN over steps/s of its base) for both fits, and the noise of their lr*.

001 (Section 4.1) reports 60% at phi=1, 86% at phi=4 and 92% at phi=8 on GPUs, in line with
``3/(3 + 2/phi)`` (backward ≈ 2 forwards, two extra forwards every phi steps: ``fit: symmetric``).
``fit: one_sided`` needs one extra forward, so its model is ``3/(3 + 1/phi)`` (75 / 92 / 96%); see
docs/algorithms.md#gen. This script measures the base, the symmetric fit and the one-sided fit side by side
in one run: every configuration (each on its own copy of the model) runs one chunk of steps per round, in a
rotating order; the script prints the median over rounds of the paired ratios in CPU time (and in wall time)
and the machine's load average. On ``--device cuda`` the medians are in wall time (CPU time there would
count only the kernel launches; each chunk is timed between two ``torch.cuda.synchronize``).

    python bench/bench_gen.py                      # digits MLP 64-128-10 (batch 64) and 784-1024-1024-10 (256)
    python bench/bench_gen.py --models large --rounds 60 --base adamw
    python bench/bench_gen.py --noise              # lr* of both fits over many mini-batches instead of speed
    python bench/bench_gen.py --device cuda        # the same on a GPU (wall time; scripts/gpu_check.py runs it)

Data: the digits cycled through in their 28 mini-batches of 64; for the large MLP, 8 synthetic mini-batches of
256 cycled through. ``rejected``: the share of the run's fits that kept the rate (a rejected one-sided fit
skips its final move, so a run of rejections would flatter it).

``--noise``: on the digits data (a 64-128-10 MLP, batch 64) at a few training stages, both fits' ``lr*``
(gamma 0, no clip, the base's direction at ``--noise-lr``) on 200 mini-batches from the same parameters; each
is compared with the exact minimiser of that mini-batch's loss along the same direction (a line search).

Not a test: figures depend on the machine and its load (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import ctypes.util
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim import build_optimizer
from hyperswitch.optim.gen import FITS, GeN

PAPER = {1: 0.60, 4: 0.86, 8: 0.92}
MODEL = {"symmetric": lambda phi: 3 / (3 + 2 / phi), "one_sided": lambda phi: 3 / (3 + 1 / phi)}


def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits (synthetic data of that shape if scikit-learn is missing)."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        return torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target, dtype=torch.int64)
    except ImportError:  # pragma: no cover
        g = torch.Generator().manual_seed(0)
        return torch.rand(1797, 64, generator=g), torch.randint(0, 10, (1797,), generator=g)


def digits_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


Batches = list[tuple[torch.Tensor, torch.Tensor]]


def digits_problem(batch: int) -> tuple[nn.Module, Batches]:
    """64-128-10 MLP on the digits, cycled through in mini-batches of ``batch`` (the last partial one left out)."""
    x, y = digits_data()
    n = len(x) // batch
    return digits_model(), [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(n)]


def large_problem(batch: int, batches: int = 8) -> tuple[nn.Module, Batches]:
    """784-1024-1024-10 MLP on synthetic MNIST-shaped data, ``batches`` mini-batches cycled through."""
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(batch, 784, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(batches)]
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    return model, data


def plain_step(opt: torch.optim.Optimizer, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


class Runner:
    """``spec`` on a fresh copy of ``model0``, stepped in chunks of ``chunk`` steps (a multiple of every phi, so
    fit steps are counted exactly)."""

    def __init__(self, model0: nn.Module, batches: Batches, spec: dict | None, chunk: int) -> None:
        self.model = copy.deepcopy(model0)
        self.cuda = next(self.model.parameters()).is_cuda
        self.batches, self.i = batches, 0
        self.chunk = chunk
        self.step: Callable[[torch.Tensor, torch.Tensor], object]
        self.opt: torch.optim.Optimizer | None = None
        if spec is None:  # a no-grad forward and the loss, as GeN's extra forward
            self.step = torch.no_grad()(lambda x, y: F.cross_entropy(self.model(x), y))
            return
        opt = build_optimizer(spec, self.model, F.cross_entropy)
        self.opt = opt
        step = getattr(opt, "batch_step", None)
        self.step = step if step is not None else (lambda x, y: plain_step(opt, self.model, x, y))

    def run(self) -> None:
        """One step on the next mini-batch."""
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.step(x, y)

    def time_chunk(self) -> tuple[float, float]:
        """``(CPU seconds, wall seconds)`` per step over one chunk (on a GPU between two synchronizations)."""
        if self.cuda:
            torch.cuda.synchronize()
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(self.chunk):
            self.run()
        if self.cuda:
            torch.cuda.synchronize()
        return (time.process_time() - c0) / self.chunk, (time.perf_counter() - t0) / self.chunk


def bench(name: str, model0: nn.Module, batches: Batches, args: argparse.Namespace) -> list[dict]:
    """Every configuration runs one chunk per round, in a rotating order, so that a change of the machine's
    load hits them all alike. ``relative``: the median over rounds of base/GeN in this process's CPU time
    (one intra-op thread: the time it computed, not the time it waited for a core taken by other jobs), with
    its quartiles; ``wall``: the same median in wall-clock time. A no-grad forward is timed in the same rounds:
    with ``f`` = its median CPU time over the base step's, ``bound`` is the fit's cost model with the measured
    forward, ``1/(1 + f/phi)`` one-sided and ``1/(1 + 2f/phi)`` symmetric (nothing but the extra forwards)."""
    configs: dict[str, dict | None] = {"base": {"name": args.base, "lr": args.lr}, "forward": None}
    for fit in args.fits:
        for phi in args.phis:
            configs[f"{fit} phi={phi}"] = {"name": "gen", "base": args.base, "base_params": {"lr": args.lr},
                                           "phi": phi, "fit": fit}
    lcm = math.lcm(*args.phis)
    probe = Runner(model0, batches, configs["base"], lcm)
    clock = 1 if args.device == "cuda" else 0  # which of time_chunk's (CPU, wall) the figures use
    for _ in range(args.warmup):
        probe.run()
    per_step = min(probe.time_chunk()[clock] for _ in range(3))
    chunk = lcm * max(1, math.ceil(args.chunk_time / (lcm * per_step)))  # chunks of about chunk_time seconds
    runners = {k: Runner(model0, batches, spec, chunk) for k, spec in configs.items()}
    for r in runners.values():
        for _ in range(args.warmup):
            r.run()
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    wall: dict[str, list[float]] = {k: [] for k in configs}
    keys = list(configs)
    for i in range(args.rounds):
        order = keys[i % len(keys):] + keys[:i % len(keys)]  # rotate so no config always runs first
        for k in order:
            c, w = runners[k].time_chunk()
            cpu[k].append(c)
            wall[k].append(w)
    rows = []
    if clock:
        cpu = wall  # on a GPU the process's CPU time counts the launches, not the work
    f = statistics.median(cpu["forward"]) / statistics.median(cpu["base"])
    for fit in args.fits:
        for phi in args.phis:
            k = f"{fit} phi={phi}"
            ratios = [b / g for b, g in zip(cpu["base"], cpu[k], strict=True)]
            q = statistics.quantiles(ratios, n=4)
            rows.append({
                "model": name, "fit": fit, "phi": phi, "chunk": chunk,
                "base_ms": 1e3 * statistics.median(cpu["base"]), "gen_ms": 1e3 * statistics.median(cpu[k]),
                "relative": statistics.median(ratios), "q1": q[0], "q3": q[2],
                "wall": statistics.median(b / g for b, g in zip(wall["base"], wall[k], strict=True)),
                "expected": MODEL[fit](phi), "forward": f,
                "bound": 1 / (1 + (1 if fit == "one_sided" else 2) * f / phi),
                "paper": PAPER.get(phi) if fit == "symmetric" else None,
                "rejected": getattr(runners[k].opt, "fits_rejected", 0) / max(getattr(runners[k].opt, "fits", 0), 1),
            })
    return rows


def steady_malloc() -> str:
    """Stop glibc from returning freed memory to the system (trim) and from mmapping large blocks. Otherwise,
    in some runs and not others, every base step frees and re-faults its 7 MiB of gradients (about 900-1,200
    minor page faults a step were counted for the 784-1024-1024-10 base), which moves its time by about 4%."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        ok = libc is not None and libc.mallopt(-3, 1 << 30) == 1 and libc.mallopt(-1, 1 << 30) == 1  # MMAP, TRIM
    except (OSError, AttributeError):
        ok = False
    return "glibc mallopt: no trim, no mmap" if ok else "default allocator (mallopt unavailable)"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


# -- lr* noise ----------------------------------------------------------------------------------------------
def line_minimum(model: nn.Module, d: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, hi: float) -> float:
    """The exact minimiser of ``η ↦ L(w − η·d)`` on the batch, by a grid on ``[0, hi]`` refined by golden
    section (float64 copy of the model; ``model`` is left as it was)."""
    m = copy.deepcopy(model).double()
    w = [p.detach().clone() for p in m.parameters()]
    xd = x.double()

    @torch.no_grad()
    def f(eta: float) -> float:
        for p, w0, v in zip(m.parameters(), w, d, strict=True):
            p.copy_(w0 - eta * v.double())
        return float(F.cross_entropy(m(xd), y))

    grid = [hi * k / 200 for k in range(201)]
    vals = [f(e) for e in grid]
    k = min(range(len(vals)), key=vals.__getitem__)
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, 200)]
    r = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, e = b - r * (b - a), a + r * (b - a)
        if f(c) < f(e):
            b = e
        else:
            a = c
    return (a + b) / 2


def fit_once(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, fit: str) -> tuple[float | None, list]:
    """One GeN fit (gamma 0, phi 1, SGD base at ``lr``) on a copy of ``model``: ``(lr*, d)``."""
    m = copy.deepcopy(model)
    gen = GeN(m.parameters(), model=m, loss_fn=F.cross_entropy, base=torch.optim.SGD(m.parameters(), lr=lr),
              gamma=0.0, phi=1, fit=fit)
    gen.batch_step(x, y)
    d = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]  # d = g
    return gen.last_fit["lr_star"], d


def noise(args: argparse.Namespace) -> None:
    x_all, y_all = digits_data()
    torch.manual_seed(0)
    model = digits_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    print(f"lr* over {args.noise_batches} mini-batches of 64 digits (64-128-10 MLP), SGD direction at lr "
          f"{args.noise_lr}; 'exact' = the minimiser of the batch loss along the same direction; load {load()}")
    print(f"{'stage':>6s} {'fit':>10s} {'mean lr*':>9s} {'std':>8s} {'std/mean':>8s} {'exact mean':>10s} "
          f"{'median |err|/exact':>18s} {'p90 |err|/exact':>15s} {'rejected':>8s}")
    trained = 0
    for stage in args.noise_stages:
        for _ in range(stage - trained):  # plain SGD up to this stage
            idx = torch.randint(0, len(x_all), (64,), generator=gen)
            plain_step(opt, model, x_all[idx], y_all[idx])
        trained = stage
        stats: dict[str, list[float]] = {f: [] for f in FITS}
        errs: dict[str, list[float]] = {f: [] for f in FITS}
        rejected = dict.fromkeys(FITS, 0)
        exact_all = []
        for _ in range(args.noise_batches):
            idx = torch.randint(0, len(x_all), (64,), generator=gen)
            x, y = x_all[idx], y_all[idx]
            got = {}
            for fit in FITS:
                got[fit], d = fit_once(model, x, y, args.noise_lr, fit)
            ref = [v for v in got.values() if v is not None]
            exact = line_minimum(model, d, x, y, 4 * max(ref + [args.noise_lr]))
            exact_all.append(exact)
            for fit, v in got.items():
                if v is None:
                    rejected[fit] += 1
                    continue
                stats[fit].append(v)
                errs[fit].append(abs(v - exact) / exact)
        for fit in FITS:
            lrs, e = stats[fit], sorted(errs[fit])
            mean, std = statistics.fmean(lrs), statistics.pstdev(lrs)
            print(f"{stage:6d} {fit:>10s} {mean:9.4f} {std:8.4f} {std / mean:8.3f} {statistics.fmean(exact_all):10.4f} "
                  f"{statistics.median(e):18.4f} {e[int(0.9 * (len(e) - 1))]:15.4f} {rejected[fit]:8d}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=["digits", "large"], default=["digits", "large"])
    p.add_argument("--base", default="sgd", help="registered base optimizer (default: sgd)")
    p.add_argument("--lr", type=float, default=0.01, help="base learning rate = GeN's lr0 (default: 0.01)")
    p.add_argument("--phis", nargs="+", type=int, default=[1, 4, 8])
    p.add_argument("--fits", nargs="+", choices=FITS, default=list(FITS[::-1]), help="GeN fits to time")
    p.add_argument("--chunk-time", type=float, default=0.15,
                   help="seconds per timed chunk, about (steps in multiples of lcm(phis)); default 0.15")
    p.add_argument("--warmup", type=int, default=8, help="untimed steps of every configuration first")
    p.add_argument("--rounds", type=int, default=40, help="timed chunks per configuration; medians printed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on shared cores more threads measure contention)")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's default trimming (see steady_malloc); off by default")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the models and batches live (cuda: figures in wall time); default cpu")
    p.add_argument("--noise", action="store_true", help="measure the fits' lr* noise instead of speed")
    p.add_argument("--noise-batches", type=int, default=200)
    p.add_argument("--noise-lr", type=float, default=0.1, help="the lr (step along d) the fits probe at")
    p.add_argument("--noise-stages", nargs="+", type=int, default=[0, 100, 1000],
                   help="SGD steps (lr 0.1, batch 64) before each measurement")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.noise and args.device != "cpu":
        p.error("--noise runs on the CPU only")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # a diverging lr must not turn into a denormal-arithmetic benchmark
    torch.manual_seed(0)
    allocator = "default allocator" if args.default_malloc else steady_malloc()  # before any tensor
    if args.noise:
        noise(args)
        return
    problems = {"digits": lambda: digits_problem(64), "large": lambda: large_problem(256)}
    labels = {"digits": "digits 64-128-10, batch 64", "large": "784-1024-1024-10, batch 256"}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), base {args.base} lr {args.lr}, "
          f"{args.rounds} rounds of ~{args.chunk_time} s chunks; {allocator}; load average {load()} (1/5/15 min); "
          f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"{'model':28s} {'fit':>9s} {'phi':>3s} {'chunk':>5s} {'base ms':>8s} {'GeN ms':>8s} {'relative':>8s} "
          f"{'[q1, q3]':>11s} {'wall':>5s} {'bound':>6s} {'model':>6s} {'paper':>6s} {'rejected':>8s}"
          f"   (ms: {'wall' if args.device == 'cuda' else 'CPU'} time per step)")
    for m in args.models:
        model0, batches = problems[m]()
        model0 = model0.to(args.device)
        batches = [(x.to(args.device), y.to(args.device)) for x, y in batches]
        for row in bench(labels[m], model0, batches, args):
            paper = f"{row['paper']:.0%}" if row["paper"] is not None else "-"
            print(f"{row['model']:28s} {row['fit']:>9s} {row['phi']:3d} {row['chunk']:5d} {row['base_ms']:8.2f} "
                  f"{row['gen_ms']:8.2f} {row['relative']:8.1%} [{row['q1']:4.0%},{row['q3']:4.0%}] "
                  f"{row['wall']:5.0%} {row['bound']:6.1%} {row['expected']:6.0%} {paper:>6s} {row['rejected']:8.0%}",
                  flush=True)
        print(f"{'':28s} a no-grad forward costs {row['forward']:.3f} of a base step")
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()
