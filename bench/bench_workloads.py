"""Step time of every built-in workload at its documented defaults, measured side by side in one run (not a test).

For each workload: build it at its defaults (data generation and the first build timed apart), then time
``--steps`` updates of SGD with momentum and of K-FAC (forward, backward, update; no evaluation) on one torch
thread, as a sweep trial with ``cpus_per_worker: 1`` runs. Prints ms/step, seconds per 1,000 steps and the
K-FAC / SGD ratio. Workloads that read the user's files (cifar10, image_folder) are left out.

    python bench/bench_workloads.py                  # 30 timed steps after 5 warm-up steps
    python bench/bench_workloads.py --steps 100 --only mlp_wide text_lm
    python bench/bench_workloads.py --device cuda    # the same on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from hyperswitch.switching import Policy
from hyperswitch.workloads import build_workload, workload_names

NEEDS_FILES = {"cifar10", "image_folder"}
OPTIMIZERS = {"sgdm": {"name": "sgdm", "lr": 0.01, "momentum": 0.9},
              "kfac": {"name": "kfac", "lr": 0.01, "damping": 0.1}}


def time_steps(name: str, opt: dict, steps: int, warmup: int, device: str,
               options: dict | None = None) -> tuple[float, float]:
    """(build seconds, ms per step); ``options``: the workload's options over its defaults (scripts/gpu_check.py
    sizes them so that a GPU is busy)."""
    t0 = time.perf_counter()
    wl = build_workload({"name": name, **(options or {})}, seed=0)
    build_s = time.perf_counter() - t0
    model = wl.model.to(device)
    stepper = Policy.from_spec({"type": "single", "optimizer": opt}).build(model, wl.loss_fn)
    batches = iter(wl.train)

    def one() -> None:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(wl.train)
            x, y = next(batches)
        stepper.step(x.to(device), y.to(device))

    for _ in range(warmup):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    return build_s, 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in sorted(workload_names()) if n not in NEEDS_FILES and (not args.only or n in args.only)]
    print(f"{'workload':20s} {'build s':>8s} {'sgdm ms':>9s} {'kfac ms':>9s} {'kfac/sgdm':>9s} {'s/1000 (sgdm)':>14s}")
    for name in names:
        build_s, sgd_ms = time_steps(name, OPTIMIZERS["sgdm"], args.steps, args.warmup, args.device)
        _, kfac_ms = time_steps(name, OPTIMIZERS["kfac"], args.steps, args.warmup, args.device)
        print(f"{name:20s} {build_s:8.2f} {sgd_ms:9.1f} {kfac_ms:9.1f} {kfac_ms / sgd_ms:9.2f} {sgd_ms:14.0f}",
              flush=True)


if __name__ == "__main__":
    main()
