"""The GPU check's body (issue 18): run by scripts/gpu_check.sh on a machine with a CUDA GPU, after its set-up.

Each check prints one line ``CHECK <name>: PASS|FAIL|SKIP <figures>``; at the end one ``SUMMARY`` line says which
checks ran and which could not. Exit status 0 when every required check passed, 1 when one failed or could not
run, 3 when no CUDA device is visible (nothing else is started then).

Checks, in the order they run:

- ``optimizers_vs_cpu``: every registered optimizer, 12 updates of a small tanh MLP in float64 on the device and
  on the CPU from the same weights and data: parameters and losses equal within a relative 1e-6. An optimizer
  whose run depends on torch's seed on the CPU (it draws random numbers: ``sf``) cannot equal the CPU, whose
  generator differs; it must instead repeat itself on the device under the same seed.
- ``policies_vs_cpu``: every policy type, through the contract tests' cases (tests/contracts/test_policies.py
  ``TYPE_CASES``), the same way, on the training loop's protocol (``end_epoch`` every 3 updates); the optimizer
  names, switch flags and events (step, kind) must be identical.
- ``sweep_gpu1``: a real sweep on a local Ray of a few single-worker trials with ``gpus_per_worker: 1``: every
  trial completes and records ``peak_memory_bytes`` from CUDA (``memory_source: cuda_max_allocated``).
- ``sweep_gpu_half``: the same with ``gpus_per_worker: 0.5`` and two trials at a time: Ray's free GPU reaches 0
  while the sweep runs (two trials hold the one GPU together) and, where NVML lists processes, two processes use
  the GPU at once.
- ``workloads``: the new workloads (curves_autoencoder, resnet_small, text_lm, mlp_wide, transfer, char_lm) at
  sizes that keep a GPU busy, SGD-m and K-FAC (bench/bench_workloads.py's ``time_steps``): steps/s.
- ``optimizer_step_times``: every optimizer's step time on a 784-2048-2048-10 MLP (batch 512, float32) and its
  ratio to SGD-m's.
- ``bench_kfac``: ``bench/bench_kfac.py --device cuda`` (inverse methods at n = 1024-4096; step ratios vs SGD-m).
- ``bench_gen``: ``bench/bench_gen.py --device cuda`` (GeN's relative speed at phi 1 / 4 / 8, wall time).

Developer switch: ``--device cpu --quick`` runs the same code paths on the CPU at tiny sizes (the CPU-vs-device
comparison then compares the CPU with itself, which still checks the plumbing; the sweeps declare one GPU to Ray
so that ``gpus_per_worker`` is scheduled, and the trials train on the CPU). The default is ``--device cuda``,
which refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "bench", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

TOL = 1e-6  # relative, float64, after 12 updates
NEW_WORKLOADS = ("curves_autoencoder", "resnet_small", "text_lm", "mlp_wide", "transfer", "char_lm")
# Sizes at which one step keeps a GPU busy (cuda), and tiny ones for --quick.
BUSY = {
    "curves_autoencoder": {"batch_size": 2000},
    "resnet_small": {"depth": 20, "width": 64, "batch_size": 256},
    "text_lm": {"context": 256, "width": 512, "layers": 6, "heads": 8, "batch_size": 64},
    "mlp_wide": {"width": 4096, "depth": 4, "batch_size": 4096},
    "transfer": {"hidden": 2048, "batch_size": 256},
    "char_lm": {"context": 256, "width": 512, "layers": 6, "heads": 8, "batch_size": 64},
}
TINY = {
    "curves_autoencoder": {"n_train": 512, "n_test": 256, "batch_size": 64},
    "resnet_small": {"depth": 8, "width": 8, "batch_size": 16, "n_train": 256, "n_test": 64},
    "text_lm": {"context": 16, "width": 32, "layers": 1, "heads": 2, "batch_size": 8, "max_bytes": 50_000},
    "mlp_wide": {"width": 64, "depth": 2, "batch_size": 32, "n_train": 512, "n_val": 128},
    "transfer": {"hidden": 32, "batch_size": 16, "pretrain_epochs": 2},
    "char_lm": {"context": 16, "width": 32, "layers": 1, "heads": 2, "batch_size": 8, "chars": 20_000},
}
# Rough seconds each check takes on an H100 (cuda) or this project's 2-core CPU (--quick): a check is not started
# when less than this is left of --budget (it then reports SKIP, which fails a required check).
COST = {"optimizers_vs_cpu": (20, 5), "policies_vs_cpu": (20, 5), "sweep_gpu1": (60, 20),
        "sweep_gpu_half": (60, 20), "workloads": (90, 10), "optimizer_step_times": (30, 3),
        "bench_kfac": (40, 5), "bench_gen": (70, 5)}


class Check:
    def __init__(self, name: str, fn: Callable[[argparse.Namespace], tuple[bool, str]], needs_ray: bool = False):
        self.name, self.fn, self.needs_ray = name, fn, needs_ray


def say(line: str) -> None:
    print(line, flush=True)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# -- CPU vs device in float64 --------------------------------------------------------------------------------
def _mlp64(seed: int = 0) -> Any:
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def _data64() -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 8, generator=g, dtype=torch.float64)
    y = torch.arange(48) % 3
    return centers[y] + torch.randn(48, 8, generator=g, dtype=torch.float64), y


def _rel(a: Any, b: Any) -> float:
    """max |a - b| / max(max |b|, 1e-12) over tensors (on the CPU)."""
    a, b = a.detach().cpu(), b.detach().cpu()
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)


def _optimizer_run(name: str, device: str, seed: int, steps: int = 12) -> tuple[list[float], list[Any]]:
    import torch
    import torch.nn.functional as F

    from hyperswitch.optim import build_optimizer

    model = _mlp64().to(device)
    x, y = _data64()
    x, y = x.to(device), y.to(device)
    opt = build_optimizer({"name": name}, model, F.cross_entropy)
    torch.manual_seed(seed)  # CUDA's generators too
    losses = []
    for s in range(steps):
        xb, yb = x[16 * (s % 3):16 * (s % 3 + 1)], y[16 * (s % 3):16 * (s % 3 + 1)]
        batch_step = getattr(opt, "batch_step", None)
        if batch_step is not None:
            losses.append(float(batch_step(xb, yb)))
        else:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return losses, [p.detach().cpu() for p in model.parameters()]


def _compare(a: tuple[list[float], list[Any]], b: tuple[list[float], list[Any]]) -> float:
    import torch

    la, lb = torch.tensor(a[0], dtype=torch.float64), torch.tensor(b[0], dtype=torch.float64)
    if not (torch.isfinite(la).all() and torch.isfinite(lb).all()):
        return math.inf
    return max([_rel(la, lb)] + [_rel(p, q) for p, q in zip(a[1], b[1], strict=True)])


def _vs_cpu(names: list[str], run: Callable[[str, str, int], Any], compare: Callable[[Any, Any], float],
            device: str) -> tuple[bool, str]:
    """``run(name, device, seed)`` on the CPU (seeds 1 and 2) and on ``device`` (seed 1, twice if random)."""
    worst, worst_name, random_names, bad = 0.0, "-", [], []
    for n in names:
        cpu1 = run(n, "cpu", 1)
        dev1 = run(n, device, 1)
        if compare(run(n, "cpu", 2), cpu1) > 0:  # draws random numbers: the device's generator differs from the CPU's
            random_names.append(n)
            d = compare(run(n, device, 1), dev1)
        else:
            d = compare(dev1, cpu1)
        if not d <= TOL:
            bad.append(f"{n} ({d:.1e})")
        if d > worst or worst_name == "-":
            worst, worst_name = d, n
    figures = (f"{len(names)} compared in float64, worst relative difference {worst:.1e} ({worst_name}), tolerance "
               f"{TOL:g}; random, compared with themselves on {device}: {', '.join(random_names) or 'none'}")
    if bad:
        figures += f"; over tolerance: {', '.join(bad)}"
    return not bad, figures


def check_optimizers(args: argparse.Namespace) -> tuple[bool, str]:
    from hyperswitch.optim import optimizer_names

    return _vs_cpu(optimizer_names(), _optimizer_run, _compare, args.device)


def _policy_cases() -> dict[str, dict[str, Any]]:
    from hyperswitch.switching import policy_type_names
    from tests.contracts.test_policies import TYPE_CASES

    missing = [t for t in policy_type_names() if not TYPE_CASES.get(t)]
    if missing:
        raise RuntimeError(f"policy types without cases in tests/contracts/test_policies.py: {missing}")
    return {f"{t}-{n}": {"type": t, **spec} for t, named in TYPE_CASES.items() for n, spec in named.items()}


def _policy_run(spec: dict[str, Any], device: str, seed: int, steps: int = 12) -> tuple[list, list, list]:
    import torch
    import torch.nn.functional as F

    from hyperswitch.switching import Policy

    model = _mlp64().to(device)
    x, y = _data64()
    x, y = x.to(device), y.to(device)
    stepper = Policy.from_spec(spec).build(model, F.cross_entropy)
    torch.manual_seed(seed)
    losses, trace, epoch = [], [], []
    for s in range(1, steps + 1):
        b = (s - 1) % 3
        r = stepper.step(x[16 * b:16 * (b + 1)], y[16 * b:16 * (b + 1)])
        losses.append(r.loss)
        epoch.append(r.loss)
        trace.append((r.step, r.optimizer, r.switched, [(e.step, e.kind) for e in r.events]))
        if s % 3 == 0:
            events = stepper.end_epoch(s // 3, sum(epoch) / 3)
            trace.append(("epoch", s // 3, [(e.step, e.kind) for e in events]))
            epoch = []
    return losses, [p.detach().cpu() for p in model.parameters()], trace


def check_policies(args: argparse.Namespace) -> tuple[bool, str]:
    from hyperswitch.switching import policy_type_names

    cases = _policy_cases()

    def compare(a: tuple, b: tuple) -> float:  # the traces (optimizers, switches, events) must be identical
        return math.inf if a[2] != b[2] else _compare(a[:2], b[:2])

    ok, figures = _vs_cpu(list(cases), lambda n, d, s: _policy_run(cases[n], d, s), compare, args.device)
    return ok, f"{len(policy_type_names())} policy types ({', '.join(policy_type_names())}); {figures}"


# -- sweeps on Ray ---------------------------------------------------------------------------------------------
class Sampler:
    """Polls, every 0.1 s until stopped: Ray's free GPU (the least seen) and, where NVML answers, the number of
    processes using GPU 0 (the most seen, ``None`` where NVML is missing or never lists one) and its utilization."""

    def __init__(self, ray_gpu: bool = True) -> None:
        self.min_free_gpu: float | None = None
        self.max_procs: int | None = None
        self.util: list[int] = []
        self._ray_gpu = ray_gpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
        except Exception:
            self._nvml = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._ray_gpu:
                try:
                    import ray

                    free = float(ray.available_resources().get("GPU", 0.0))
                    self.min_free_gpu = free if self.min_free_gpu is None else min(self.min_free_gpu, free)
                except Exception:
                    pass
            if self._nvml is not None:
                nv, h = self._nvml
                try:
                    n = len({p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(h)} - {os.getpid()})
                    if n:
                        self.max_procs = max(self.max_procs or 0, n)
                    self.util.append(int(nv.nvmlDeviceGetUtilizationRates(h).gpu))
                except Exception:
                    pass
            self._stop.wait(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mean_util(self) -> str:
        return f"{statistics.fmean(self.util):.0f} %" if self.util else "n/a (no NVML)"


_RAY_STARTED = False


def _ray_up(args: argparse.Namespace) -> None:
    """A local Ray on 127.0.0.1 as hyperswitch._ray.connect starts it, with its GPUs stated: on the CPU (--device
    cpu) one GPU is declared so that ``gpus_per_worker`` trials are scheduled at all (they train on the CPU)."""
    global _RAY_STARTED
    import ray
    import torch

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    gpus = torch.cuda.device_count() if args.device == "cuda" else 1
    cpus = 2 if args.quick else max(2, min(8, os.cpu_count() or 2))
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    _RAY_STARTED = True


def _sweep(args: argparse.Namespace, name: str, gpus: float, samples: int, concurrent: int) -> tuple[Any, Sampler]:
    import torch

    import hyperswitch as hs

    if args.device == "cuda":
        torch.cuda.empty_cache()  # this process's cached blocks, before the trials' processes take the GPU
    _ray_up(args)
    if args.quick:
        workload = {"name": "digits_mlp", "batch_size": 64}
        train = {"steps": 40, "eval_every": 20}
    else:
        workload = {"name": "mlp_wide", "width": 1024, "depth": 2, "n_train": 8192, "n_val": 2048, "batch_size": 256}
        train = {"steps": 200, "eval_every": 50}
    space = {
        "name": name, "workload": workload,
        # K-FAC then SGD-m: the peak memory covers K-FAC's factors, the switch frees them
        "policy": {"type": "switch", "phase1": {"name": "kfac", "lr": "$lr", "inverse_interval": 10},
                   "phase2": {"name": "sgdm", "lr": "$lr", "momentum": 0.9},
                   "switch": {"at": train["steps"] // 2, "unit": "step"}},
        "train": train,
        "parameters": {"lr": {"type": "float", "low": 0.001, "high": 0.05, "log": True}},
        "search": {"algorithm": "random", "samples": samples, "seed": 0},
        "seeds": 1, "metric": "val_accuracy", "mode": "max",
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": gpus, "max_failures": 0},
        "max_concurrent": concurrent,
    }
    storage = tempfile.mkdtemp(prefix="gpu_check_runs_")
    with Sampler() as sampler:
        study = hs.sweep(space, storage=storage, progress=lambda line: say(f"  [{name}] {line}"))
    return study, sampler


def _sweep_figures(study: Any, args: argparse.Namespace) -> tuple[bool, str, list[str]]:
    t = study.trials
    want = "cuda_max_allocated" if args.device == "cuda" else "cpu_tensor_bytes"
    problems = []
    done = t[t["status"] == "completed"]
    if len(done) != len(t) or len(t) == 0:
        problems.append(f"{len(done)} of {len(t)} trials completed (statuses {sorted(set(t['status']))})")
    sources = sorted(set(t["memory_source"].dropna()))
    if sources != [want]:
        problems.append(f"memory_source {sources}, expected [{want}]")
    peaks = [int(v) for v in t["peak_memory_bytes"].dropna()]
    if len(peaks) != len(t) or not all(v > 0 for v in peaks):
        problems.append(f"peak_memory_bytes missing or 0: {peaks}")
    mib = "/".join(f"{v / 2**20:.2f}" for v in peaks)
    walls = "/".join(f"{v:.1f}" for v in t["wall_time_s"].dropna())
    figs = f"{len(done)}/{len(t)} trials completed; peak memory {mib} MiB ({want}); trial wall {walls} s"
    return not problems, figs, problems


def check_sweep_gpu1(args: argparse.Namespace) -> tuple[bool, str]:
    study, sampler = _sweep(args, "gpu_check_gpu1", 1, 2 if args.quick else 3, 1)
    ok, figs, problems = _sweep_figures(study, args)
    figs += f"; Ray's free GPU went down to {sampler.min_free_gpu}; GPU utilization {sampler.mean_util()}"
    if problems:
        figs += "; " + "; ".join(problems)
    return ok, figs


def check_sweep_gpu_half(args: argparse.Namespace) -> tuple[bool, str]:
    study, sampler = _sweep(args, "gpu_check_gpu_half", 0.5, 4, 2)
    ok, figs, problems = _sweep_figures(study, args)
    shared = sampler.min_free_gpu is not None and sampler.min_free_gpu <= 1e-9
    if not shared:
        problems.append(f"two trials never held the GPU together (Ray's free GPU at least {sampler.min_free_gpu})")
    procs = sampler.max_procs
    if args.device == "cuda" and procs is not None and procs < 2:
        problems.append(f"NVML saw at most {procs} process on the GPU at once")
    figs += (f"; Ray's free GPU went down to {sampler.min_free_gpu} (two trials of 0.5 at once: "
             f"{'yes' if shared else 'no'}); processes on the GPU at once (NVML): "
             f"{procs if procs is not None else 'n/a'}")
    if problems:
        figs += "; " + "; ".join(problems)
    return ok and not problems, figs


# -- speed -------------------------------------------------------------------------------------------------------
def check_workloads(args: argparse.Namespace) -> tuple[bool, str]:
    import torch
    from bench_workloads import OPTIMIZERS, time_steps

    torch.manual_seed(0)
    steps, warmup = (2, 1) if args.quick else (20, 3)
    sizes = TINY if args.quick else BUSY
    parts = []
    say(f"  {'workload':20s} {'options':60s} {'sgdm steps/s':>12s} {'kfac steps/s':>12s} {'GPU util':>9s}")
    for name in NEW_WORKLOADS:
        with Sampler(ray_gpu=False) as sampler:
            _, sgd_ms = time_steps(name, OPTIMIZERS["sgdm"], steps, warmup, args.device, sizes[name])
            _, kfac_ms = time_steps(name, OPTIMIZERS["kfac"], steps, warmup, args.device, sizes[name])
        if args.device == "cuda":
            torch.cuda.empty_cache()
        opts = " ".join(f"{k}={v}" for k, v in sizes[name].items())
        say(f"  {name:20s} {opts:60s} {1000 / sgd_ms:12.1f} {1000 / kfac_ms:12.1f} {sampler.mean_util():>9s}")
        parts.append(f"{name} {1000 / sgd_ms:.1f}/{1000 / kfac_ms:.1f}")
    return True, "steps/s SGD-m/K-FAC: " + ", ".join(parts)


def check_optimizer_step_times(args: argparse.Namespace) -> tuple[bool, str]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from hyperswitch.optim import build_optimizer, optimizer_names

    hidden, batch, steps, warmup = (64, 32, 3, 1) if args.quick else (2048, 512, 20, 5)
    dev = args.device
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(batch, 784, generator=g).to(dev), torch.randint(0, 10, (batch,), generator=g).to(dev))
            for _ in range(4)]
    ms: dict[str, float] = {}
    for name in ["sgdm"] + [n for n in optimizer_names() if n != "sgdm"]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                              nn.Linear(hidden, 10)).to(dev)
        opt = build_optimizer({"name": name}, model, F.cross_entropy)
        batch_step = getattr(opt, "batch_step", None)

        def one(s: int, model: nn.Module = model, opt: Any = opt, batch_step: Any = batch_step) -> None:
            x, y = data[s % len(data)]
            if batch_step is not None:
                batch_step(x, y)
            else:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()

        for s in range(warmup):
            one(s)
        sync(dev)
        t0 = time.perf_counter()
        for s in range(steps):
            one(s)
        sync(dev)
        ms[name] = 1000 * (time.perf_counter() - t0) / steps
        say(f"  {name:14s} {ms[name]:9.2f} ms/step {ms[name] / ms['sgdm']:7.2f} x sgdm")
    ratios = ", ".join(f"{n} {v / ms['sgdm']:.2f}" for n, v in sorted(ms.items(), key=lambda kv: kv[1]))
    return True, (f"784-{hidden}-{hidden}-10 MLP, batch {batch}, float32, {steps} steps: sgdm {ms['sgdm']:.2f} ms; "
                  f"step time / sgdm: {ratios}")


def _bench(script: str, argv: list[str], args: argparse.Namespace) -> tuple[int, str]:
    left = max(10.0, args.deadline - time.monotonic())
    cmd = [sys.executable, "-u", str(ROOT / "bench" / script), *argv]
    say(f"  $ {' '.join(cmd[2:])}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        for line in out.splitlines():
            say(f"  {line}")
        return 124, out
    for line in (p.stdout + p.stderr).splitlines():
        say(f"  {line}")
    return p.returncode, p.stdout


def check_bench_kfac(args: argparse.Namespace) -> tuple[bool, str]:
    if args.quick:
        argv = ["--device", "cpu", "--sizes", "64", "--reps", "1", "--threads", "1", "--steps", "2",
                "--optimizers", "sgdm", "kfac-cholesky"]
    else:
        argv = ["--device", "cuda", "--sizes", "1024", "2048", "4096", "--reps", "3"]
    rc, out = _bench("bench_kfac.py", argv, args)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| mlp") or line.startswith("| cnn")]
    ratios = "; ".join(f"{r[0].split()[0]} {r[1]} {r[3]}" for r in rows if len(r) > 3 and r[1] != "sgdm")
    return rc == 0 and bool(rows), f"exit {rc}; step time vs sgdm: {ratios or 'none parsed'}"


def check_bench_gen(args: argparse.Namespace) -> tuple[bool, str]:
    if args.quick:
        argv = ["--device", "cpu", "--models", "digits", "--phis", "1", "2", "--rounds", "2", "--warmup", "2",
                "--chunk-time", "0.01"]
    else:
        argv = ["--device", "cuda", "--rounds", "15", "--chunk-time", "0.1"]
    rc, out = _bench("bench_gen.py", argv, args)
    found = []
    for line in out.splitlines():
        m = re.search(r"^(\S+).*?\s(one_sided|symmetric)\s+(\d+)\s+\d+\s+[\d.]+\s+[\d.]+\s+([\d.]+)%", line)
        if m:
            found.append(f"{'large' if m.group(1).startswith('784') else m.group(1)} {m.group(2)} phi {m.group(3)} "
                         f"{m.group(4)} %")
    return rc == 0 and bool(found), f"exit {rc}; GeN relative speed: {', '.join(found) or 'none parsed'}"


CHECKS = [
    Check("optimizers_vs_cpu", check_optimizers),
    Check("policies_vs_cpu", check_policies),
    Check("sweep_gpu1", check_sweep_gpu1, needs_ray=True),
    Check("sweep_gpu_half", check_sweep_gpu_half, needs_ray=True),
    Check("workloads", check_workloads),
    Check("optimizer_step_times", check_optimizer_step_times),
    Check("bench_kfac", check_bench_kfac),
    Check("bench_gen", check_bench_gen),
]


def ray_importable() -> str | None:
    """None if Ray (and Optuna) import, else why not."""
    try:
        import optuna  # noqa: F401
        import ray  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cuda (default; refused without CUDA) or cpu, the developer's dry run of the same code")
    p.add_argument("--quick", action="store_true", help="tiny sizes (with --device cpu: the dry run)")
    p.add_argument("--only", nargs="+", choices=[c.name for c in CHECKS], help="run these checks only")
    p.add_argument("--no-sweeps", action="store_true",
                   help="leave out the checks that need Ray (reported as SKIP, not required)")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for all checks (default 420); a check not started in time is a SKIP")
    args = p.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        say(f"gpu_check: FAIL: no GPU is visible to torch {torch.__version__} (CUDA build {torch.version.cuda}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}); nothing was run. "
            "Run this on a machine with a CUDA GPU (the developer's dry run: --device cpu --quick).")
        return 3
    t_start = time.monotonic()
    args.deadline = t_start + args.budget
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (dry run: the CPU compared with itself)"
    say(f"gpu_check: device {args.device} ({where}), torch {torch.__version__}, python {sys.version.split()[0]}, "
        f"{'quick' if args.quick else 'full'} sizes, budget {args.budget:.0f} s")
    torch.set_num_threads(1 if args.quick else max(1, min(8, os.cpu_count() or 1)))
    why_no_ray: str | None = None  # asked once, only where a check needs Ray
    results: list[tuple[str, str, bool]] = []  # name, status, required
    for c in CHECKS:
        if args.only and c.name not in args.only:
            continue
        required = not (c.needs_ray and args.no_sweeps)
        if c.needs_ray and args.no_sweeps:
            say(f"CHECK {c.name}: SKIP not asked (--no-sweeps)")
            results.append((c.name, "SKIP", False))
            continue
        if c.needs_ray and why_no_ray is None:
            why_no_ray = ray_importable() or ""
        if c.needs_ray and why_no_ray:
            say(f"CHECK {c.name}: SKIP could not run: Ray/Optuna not importable ({why_no_ray}); carry the wheels "
                "that scripts/gpu_wheels.sh downloads (.whl)")
            results.append((c.name, "SKIP", required))
            continue
        need = COST[c.name][1 if args.quick else 0]
        if time.monotonic() + need > args.deadline:
            say(f"CHECK {c.name}: SKIP could not run: {args.deadline - time.monotonic():.0f} s left of the budget, "
                f"it needs about {need} s")
            results.append((c.name, "SKIP", required))
            continue
        say(f"-- {c.name}")
        t0 = time.monotonic()
        try:
            ok, figures = c.fn(args)
        except Exception as exc:
            traceback.print_exc()
            ok, figures = False, f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        status = "PASS" if ok else "FAIL"
        say(f"CHECK {c.name}: {status} ({time.monotonic() - t0:.1f} s) {figures}")
        results.append((c.name, status, required))
    if _RAY_STARTED:
        import ray

        ray.shutdown()
    ran = [n for n, s, _ in results if s != "SKIP"]
    not_run = [n for n, s, _ in results if s == "SKIP"]
    failed = [n for n, s, req in results if req and s != "PASS"]
    say(f"SUMMARY: {'PASS' if not failed else 'FAIL'} in {time.monotonic() - t_start:.0f} s; ran: "
        f"{', '.join(ran) or 'none'}; could not run: {', '.join(not_run) or 'none'}; "
        f"required and not passed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
