"""Benchmark K-FAC's inverse methods and its cost relative to SGD with momentum (CPU or CUDA).

Part 1: for square factors of each size n (a layer with n inputs and n outputs, float32), the time of one
inverse update (decomposing both damped factors ``A`` and ``G``), the time of applying the cached
preconditioner to an n×n gradient, and the optimizer state per layer (factors + cache), for
eigen / cholesky / triangular; medians over ``--reps`` repetitions, ratios to eigen.

Part 2: the time of one training step (forward, backward, optimizer step on 4 cycled random batches) at equal
work: the same model, batch and number of steps for every optimizer; K-FAC's factors every step and inverses every
10 steps (inverse_interval 10, the default here), Shampoo's statistics every step and roots every 10
steps; the time includes the amortised inverse updates. Thread CPU time per step (``time.thread_time``; wall time
beside it), median of ``--rounds`` processes x ``--reps`` runs of ``--steps`` steps, relative to SGD with momentum,
on an MLP 784-512-512-10 (batch 128) and (``--models cnn``) a small CNN (3 convs 32-64-64, 3x32x32, batch 64).
With ``--base DIR`` (a checkout of the code before, e.g. ``git worktree add /tmp/kfac_base <commit>``) the code
there is timed beside this tree's: each (code, optimizer) in its own process, the two alternating, so that both
see the same load (printed).

Part 3 (``--split``): where one step's time goes (forward/backward, factor statistics, running averages,
inverses, preconditioning, KL clip, rescale, adaptive damping, SGD update, the rest), before and after.

``--check N`` (with ``--base``): every optimizer path (``CHECKS``) for N steps from one seed under both codes;
prints max |Δ| of the parameters and whether they are equal to the bit.

Prints Markdown tables. Example: ``python bench/bench_kfac.py --base /tmp/kfac_base --check 30 --split``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
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


MODELS = {"mlp": ("mlp 784-512-512-10 b128", _mlp), "cnn": ("cnn 3x32x32 b64", _cnn)}


def _kfac(**kw: object) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda m: KFAC(m.parameters(), m, **{"lr": 1e-3, "inverse_interval": 10, **kw})  # type: ignore[arg-type]


# Small lr: the timed runs repeat a few batches, and the figures should not depend on a divergence. Equal work:
# every optimizer does one forward and one backward per step on the same batch; K-FAC refreshes its factors every
# step and its inverses every 10 steps, Shampoo its statistics every step and its roots every 10 steps.
OPTIMIZERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "sgdm": lambda m: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9),
    "kfac-eigen": _kfac(inverse="eigen"),
    "kfac-cholesky": _kfac(inverse="cholesky"),
    "kfac-triangular": _kfac(inverse="triangular"),
    "kfac-shared": _kfac(inverse="cholesky", shared_storage=True),
    "foof-cholesky": _kfac(variant="foof"),
    "shampoo": lambda m: Shampoo(m.parameters(), lr=1e-3, inverse_interval=10),
    "kfac-klclip": _kfac(kl_clip=1e-3),
    "kfac-rescale": _kfac(rescale=True, loss_fn=F.cross_entropy),
    "kfac-adaptive": _kfac(adaptive_damping=True, loss_fn=F.cross_entropy),
}
DEFAULT_OPTIMIZERS = ["sgdm", "kfac-eigen", "kfac-cholesky", "kfac-shared", "foof-cholesky", "shampoo",
                      "kfac-klclip", "kfac-rescale", "kfac-adaptive"]
# The equality check (--check): every path of the optimizers, 30 steps from one seed, lr large enough to move.
CHECKS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "kfac-eigen": _kfac(inverse="eigen", lr=0.05, weight_decay=1e-3),
    "kfac-cholesky": _kfac(lr=0.05),
    "kfac-triangular": _kfac(inverse="triangular", lr=0.05),
    "kfac-shared": _kfac(shared_storage=True, lr=0.05),
    "kfac-shared-triangular": _kfac(shared_storage=True, inverse="triangular", lr=0.05, pi_correction=True),
    "foof-eigen": _kfac(variant="foof", inverse="eigen", lr=0.05),
    "foof-cholesky": _kfac(variant="foof", lr=0.05, momentum=0.0),
    "kfac-interval-3": _kfac(lr=0.05, factor_interval=3, inverse_interval=5),
    "kfac-accumulate": _kfac(lr=0.05),  # two forward/backward passes per step
    "kfac-klclip": _kfac(lr=0.05, kl_clip=1e-4),
    "kfac-rescale": _kfac(rescale=True, lr=1.0, loss_fn=F.cross_entropy, weight_decay=1e-3),
    "kfac-adaptive": _kfac(adaptive_damping=True, lr=0.05, loss_fn=F.cross_entropy, damping_interval=2,
                           weight_decay=1e-3),
    "kfac-sampled": _kfac(fisher="categorical", lr=0.05, loss_fn=F.cross_entropy, pi_correction=True),
    "shampoo": lambda m: Shampoo(m.parameters(), lr=0.05, inverse_interval=5),
    "shampoo-adam-klclip": lambda m: Shampoo(m.parameters(), lr=0.05, graft="adam", kl_clip=1e-4,
                                             weight_decay=1e-3),
}


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    own = getattr(opt, "state_bytes", None)
    if callable(own):
        return int(own())
    return sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
               if isinstance(t, torch.Tensor))


def _stepper(model: nn.Module, opt: torch.optim.Optimizer, accumulate: int = 1) -> Callable[[torch.Tensor,
                                                                                            torch.Tensor], None]:
    batch_step = getattr(opt, "batch_step", None) if getattr(opt, "step_control", False) else None

    def one(x: torch.Tensor, y: torch.Tensor) -> None:
        if batch_step is not None:
            batch_step(x, y)
            return
        opt.zero_grad(set_to_none=True)
        for chunk_x, chunk_y in zip(x.chunk(accumulate), y.chunk(accumulate), strict=True):
            (F.cross_entropy(model(chunk_x), chunk_y) / accumulate).backward()
        opt.step()

    return one


def _setup(model_key: str, build: Callable[[nn.Module], torch.optim.Optimizer], device: torch.device,
           dtype: torch.dtype = torch.float32) -> tuple[nn.Module, torch.optim.Optimizer, list]:
    torch.manual_seed(0)
    model, shape, classes = MODELS[model_key][1]()
    model.to(device=device, dtype=dtype)
    opt = build(model)
    data = [(torch.randn(shape, device=device, dtype=dtype), torch.randint(0, classes, (shape[0],), device=device))
            for _ in range(4)]
    return model, opt, data


def worker_time(model_key: str, opt_name: str, steps: int, reps: int, device: torch.device) -> dict:
    """Per-step wall and thread CPU seconds of ``reps`` runs of ``steps`` steps (after one warm-up run)."""
    model, opt, data = _setup(model_key, OPTIMIZERS[opt_name], device)
    one = _stepper(model, opt)
    wall, cpu = [], []
    for rep in range(reps + 1):
        _sync(device)
        t0, c0 = time.perf_counter(), time.thread_time()
        for s in range(steps):
            one(*data[s % len(data)])
        _sync(device)
        if rep:  # the first run warms up
            wall.append((time.perf_counter() - t0) / steps)
            cpu.append((time.thread_time() - c0) / steps)
    return {"wall": wall, "cpu": cpu, "state": _state_bytes(opt)}


def worker_trajectory(model_key: str, steps: int, dtype: torch.dtype) -> dict[str, list[torch.Tensor]]:
    """The parameters after ``steps`` steps of every ``CHECKS`` optimizer (seed 0, CPU)."""
    out = {}
    for name, build in CHECKS.items():
        model, opt, data = _setup(model_key, build, torch.device("cpu"), dtype)
        one = _stepper(model, opt, accumulate=2 if name == "kfac-accumulate" else 1)
        torch.manual_seed(1)  # the sampled Fisher's draws
        for s in range(steps):
            one(*data[s % len(data)])
        out[name] = [p.detach().clone() for p in model.parameters()]
    return out


# Part 3 (--split): where one step's thread CPU time goes. Methods timed by wrapping (names shared by the code
# before and after this changes); "fwd+bwd" is the forward and backward passes without the factor hooks,
# "step, other" the rest of the optimizer step (Python, dict building, splitting [∇W | ∇b]).
SPLIT_METHODS = {
    "A stats": [("KFAC", "_on_forward")], "G stats": [("KFAC", "_on_output_grad")],
    "running avg": [("KFAC", "_update_factors"), ("Shampoo", "_accumulate")],
    "inverses": [("KFAC", "_update_inverses"), ("Shampoo", "_update_roots")],
    "precondition": [("KFAC", "_directions"), ("Shampoo", "_direction")],
    "KL clip": [("KFAC", "_clip"), ("Shampoo", "_clip")],
    "rescale": [("KFAC", "_rescaled_update")], "adaptive damping": [("KFAC", "_adapt_damping")],
}
SPLIT_PARTS = ["fwd+bwd", *SPLIT_METHODS, "SGD update", "step, other"]


def worker_split(model_key: str, opt_name: str, steps: int) -> dict[str, float]:
    """Thread CPU ms per step of each part (see ``SPLIT_PARTS``), over ``steps`` steps after 10 warm-up steps."""
    import hyperswitch.optim._preconditioned as pre
    import hyperswitch.optim.kfac as kfac_mod
    import hyperswitch.optim.shampoo as shampoo_mod

    spent: dict[str, float] = {}
    depth = [0]

    def timed(fn: Callable, key: str) -> Callable:
        def run(*a: object, **k: object) -> object:
            if depth[0]:  # nested (e.g. the hooks during rescale's passes): counted by the outer part
                return fn(*a, **k)
            depth[0] += 1
            c0 = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent[key] = spent.get(key, 0.0) + time.thread_time() - c0
                depth[0] -= 1
        return run

    classes = {"KFAC": kfac_mod.KFAC, "Shampoo": shampoo_mod.Shampoo}
    for part, methods in SPLIT_METHODS.items():
        for cls, name in methods:
            setattr(classes[cls], name, timed(getattr(classes[cls], name), part))
    kfac_mod.sgd_update = pre.sgd_update = timed(pre.sgd_update, "SGD update")
    model, opt, data = _setup(model_key, OPTIMIZERS[opt_name], torch.device("cpu"))
    batch_step = getattr(opt, "batch_step", None) if getattr(opt, "step_control", False) else None
    fb = st = 0.0
    for s in range(10 + steps):
        if s == 10:
            spent.clear()
            fb = st = 0.0
        x, y = data[s % len(data)]
        c0 = time.thread_time()
        if batch_step is not None:
            batch_step(x, y)
            st += time.thread_time() - c0
            continue
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        c1 = time.thread_time()
        opt.step()
        fb, st = fb + c1 - c0, st + time.thread_time() - c1
    hooks = spent.get("A stats", 0.0) + spent.get("G stats", 0.0)
    out = {k: 1e3 * v / steps for k, v in spent.items()}
    if batch_step is not None:  # forward and backward run inside batch_step: "step, other" holds them
        out["step, other"] = 1e3 * (st - sum(spent.values())) / steps
    else:
        out["fwd+bwd"] = 1e3 * (fb - hooks) / steps
        out["step, other"] = 1e3 * (st - (sum(spent.values()) - hooks)) / steps
    out["total"] = 1e3 * (fb + st) / steps
    return out


def bench_split(trees: dict[str, str], names: list[str], steps: int, threads: int) -> list[dict]:
    rows = []
    for opt_name in names:
        for tree, root in trees.items():
            got = _run_worker(root, ["--worker", "split", "--optimizer", opt_name, "--steps", str(steps),
                                     "--threads", str(threads)])
            row = {"optimizer": opt_name, "code": tree, "load": os.getloadavg()[0], "total": got["total"]}
            row.update({part: got.get(part, 0.0) for part in SPLIT_PARTS})
            rows.append(row)
    return rows


def _run_worker(root: str, args: list[str]) -> dict:
    """Run this script's worker mode in a fresh process that imports ``hyperswitch`` from ``root``."""
    env = {**os.environ, "PYTHONPATH": root}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pt")
        res = subprocess.run([sys.executable, os.path.abspath(__file__), *args, "--worker-out", out], env=env,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"worker {args} under {root} failed:\n{res.stderr[-3000:]}")
        return torch.load(out)


def bench_models(steps: int, reps: int, rounds: int, device: torch.device, names: list[str], models: list[str],
                 trees: dict[str, str], threads: int) -> list[dict]:
    """Part 2, each (tree, optimizer) in its own process; the trees alternate within each round, so that they see
    the same load. Times: medians over ``rounds × reps`` runs of thread CPU time (wall beside it)."""
    rows = []
    for model_key in models:
        times: dict[tuple[str, str], dict[str, list[float]]] = {}
        state: dict[tuple[str, str], int] = {}
        loads = [os.getloadavg()[0]]
        for rnd in range(rounds):
            for opt_name in names:
                order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
                for tree in order:
                    got = _run_worker(trees[tree], ["--worker", "time", "--model", model_key, "--optimizer",
                                                    opt_name, "--steps", str(steps), "--reps", str(reps),
                                                    "--threads", str(threads), "--device", str(device)])
                    acc = times.setdefault((tree, opt_name), {"wall": [], "cpu": []})
                    acc["wall"] += got["wall"]
                    acc["cpu"] += got["cpu"]
                    state[(tree, opt_name)] = got["state"]
                    loads.append(os.getloadavg()[0])
        load = statistics.mean(loads)
        for opt_name in names:
            row: dict = {"model": MODELS[model_key][0], "optimizer": opt_name, "load": load,
                         "state_mib": state[(list(trees)[-1], opt_name)] / 2**20}
            for tree in trees:
                t = times[(tree, opt_name)]
                row[f"{tree}_cpu"] = 1e3 * statistics.median(t["cpu"])
                row[f"{tree}_wall"] = 1e3 * statistics.median(t["wall"])
                base = times[(tree, names[0])]
                row[f"{tree}_ratio"] = statistics.median(t["cpu"]) / statistics.median(base["cpu"])
            if "before" in trees:
                row["speedup"] = row["before_cpu"] / row["after_cpu"]
            rows.append(row)
    return rows


def check_equal(base: str, here: str, models: list[str], steps: int) -> list[dict]:
    """max |Δ| of the parameters after ``steps`` steps, the code under ``base`` vs the code here (float32)."""
    rows = []
    for model_key in models:
        args = ["--worker", "trajectory", "--model", model_key, "--steps", str(steps), "--threads", "1"]
        before, after = _run_worker(base, args), _run_worker(here, args)
        for name in CHECKS:
            diff = max(float((a - b).abs().max()) for a, b in zip(after[name], before[name], strict=True))
            moved = max(float((a - b).abs().max()) for a, b in zip(after[name], _initial(model_key), strict=True))
            bitwise = all(torch.equal(a, b) for a, b in zip(after[name], before[name], strict=True))
            rows.append({"model": MODELS[model_key][0], "optimizer": name, "max_diff": diff, "moved": moved,
                         "bitwise": "yes" if bitwise else "no"})
    return rows


def _initial(model_key: str) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [p.detach().clone() for p in MODELS[model_key][1]()[0].parameters()]


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
    ap.add_argument("--steps", type=int, default=20,
                    help="training steps per timed run (default 20: two inverse updates per run)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="part 2: processes per (code, optimizer), alternating before/after (default 2)")
    ap.add_argument("--damping", type=float, default=0.1, help="damping for the inverse updates")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1; 0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--optimizers", nargs="+", default=DEFAULT_OPTIMIZERS, choices=list(OPTIMIZERS),
                    help="optimizers of part 2; the first is the baseline (default: all but kfac-triangular)")
    ap.add_argument("--models", nargs="+", default=["mlp"], choices=list(MODELS),
                    help="models of part 2 and of --check (default: mlp)")
    ap.add_argument("--base", default=None,
                    help="a checkout of the code before (e.g. `git worktree add /tmp/kfac_base <commit>`): part 2 "
                         "times it beside this tree's, and --check compares their trajectories")
    ap.add_argument("--check", type=int, default=0, metavar="STEPS",
                    help="with --base: max |Δ| of the parameters after STEPS steps of every optimizer path, "
                         "before vs after (float32, seed 0)")
    ap.add_argument("--split", action="store_true",
                    help="part 3: thread CPU ms per step of each part of a step (fwd+bwd, factor statistics, running "
                         "averages, inverses, preconditioning, KL clip, rescale, adaptive damping, SGD update, "
                         "the rest), for the code before (--base) and after")
    ap.add_argument("--skip-inverse", action="store_true", help="skip part 1")
    ap.add_argument("--skip-models", action="store_true", help="skip part 2")
    ap.add_argument("--worker", choices=["time", "trajectory", "split"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    ap.add_argument("--optimizer", default="sgdm", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.worker == "time":
        torch.save(worker_time(args.model, args.optimizer, args.steps, args.reps, device), args.worker_out)
        return
    if args.worker == "split":
        torch.save(worker_split(args.model, args.optimizer, args.steps), args.worker_out)
        return
    if args.worker == "trajectory":
        torch.save(worker_trajectory(args.model, args.steps, torch.float32), args.worker_out)
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, reps {args.reps}, "
          f"load {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
    t0 = time.perf_counter()
    if args.check:
        if args.base is None:
            ap.error("--check needs --base")
        print(f"\nBefore ({args.base}) vs after ({here}): parameters after {args.check} steps, float32, seed 0\n")
        rows = check_equal(args.base, here, args.models, args.check)
        print(_table(rows, [("model", "model", "s"), ("optimizer", "path", "s"), ("max_diff", "max |Δ|", ".3g"),
                            ("bitwise", "bitwise equal", "s"), ("moved", "max |w - w0|", ".3g")]))
    if not args.skip_inverse:
        print("\nInverse update (both factors of an n->n layer) and preconditioner apply, float32\n")
        rows = bench_inverse(args.sizes, args.reps, device, args.damping)
        print(_table(rows, [("n", "n", "d"), ("method", "method", "s"), ("inv_ms", "inverse ms", ".2f"),
                            ("inv_ratio", "vs eigen", ".3f"), ("apply_ms", "apply ms", ".2f"),
                            ("apply_ratio", "vs eigen", ".2f"), ("state_mib", "state MiB", ".2f"),
                            ("state_ratio", "vs eigen", ".3f")]))
    if not args.skip_models:
        trees = {"before": args.base, "after": here} if args.base else {"after": here}
        print(f"\nTraining step (fwd+bwd+step, {args.steps} steps/run, factors every step, inverses every 10), "
              f"float32; thread CPU ms/step, medians of {args.rounds}x{args.reps} runs (wall beside)\n")
        rows = bench_models(args.steps, args.reps, args.rounds, device, args.optimizers, args.models, trees,
                            args.threads)
        vs = f"vs {args.optimizers[0]}"
        cols = [("model", "model", "s"), ("optimizer", "optimizer", "s")]
        for tree in trees:
            cols += [(f"{tree}_cpu", f"{tree} ms", ".1f"), (f"{tree}_wall", "(wall)", ".1f"),
                     (f"{tree}_ratio", vs, ".2f")]
        if args.base:
            cols.append(("speedup", "before/after", ".2f"))
        cols += [("state_mib", "state MiB", ".2f"), ("load", "load", ".1f")]
        print(_table(rows, cols))
    if args.split:
        trees = {"before": args.base, "after": here} if args.base else {"after": here}
        print(f"\nSplit of one step, {MODELS['mlp'][0]}: thread CPU ms per step over {args.steps} steps after 10 "
              "warm-up steps (rescale/adaptive: forward and backward are inside the step, under 'step, other')\n")
        rows = bench_split(trees, [n for n in args.optimizers if n != "sgdm"], args.steps, args.threads)
        print(_table(rows, [("optimizer", "optimizer", "s"), ("code", "code", "s"), ("total", "total", ".1f"),
                            *[(p, p, ".1f") for p in SPLIT_PARTS], ("load", "load", ".1f")]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s, load {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
