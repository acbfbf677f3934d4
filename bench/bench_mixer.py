"""Mixer memory by phase vs SGD and K-FAC alone (eigen, the kfac-pytorch default, and cholesky), measured side
by side in one run (not a test); Mixer with and without ``shared_storage``.

Memory is counted as hyperswitch's trials count it on CPU: parameter + gradient bytes plus every optimizer
state tensor (``Stepper.state_bytes()``: factors, Cholesky caches, momentum, the corrector's velocity). On a
GPU (``--device cuda``) it is ``torch.cuda.max_memory_allocated`` per phase instead.

    python bench/bench_mixer.py                   # MLP 784-1024-1024-10, batch 128, switch at step 40
    python bench/bench_mixer.py --width 512 --steps 120
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from hyperswitch.switching import Policy


def mlp(width: int, depth: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    d = 784
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 10))


def run(spec: dict, args: argparse.Namespace) -> dict[str, tuple[int, float]]:
    """Peak bytes and mean step time (ms) per phase label."""
    device = torch.device(args.device)
    model = mlp(args.width, args.depth).to(device)
    stepper = Policy.from_spec(spec).build(model, nn.functional.cross_entropy)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 784, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    params = sum(p.numel() * p.element_size() for p in model.parameters()) * 2
    out: dict[str, list] = {}
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        r = stepper.step(x, y)
        dt = time.perf_counter() - t
        mem = torch.cuda.max_memory_allocated() if device.type == "cuda" else params + stepper.state_bytes()
        peak, times = out.setdefault(r.optimizer, [0, []])
        out[r.optimizer][0] = max(peak, mem)
        times.append(dt)
    return {k: (v[0], 1e3 * sorted(v[1])[len(v[1]) // 2]) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--switch-at", type=int, default=40)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kfac = {"name": "kfac", "inverse": "cholesky", "lr": 0.01, "damping": 0.1, "inverse_interval": 10}
    eigen = {**kfac, "inverse": "eigen"}
    shared = {**kfac, "shared_storage": True}
    sgd = {"name": "sgdm", "lr": 0.01, "momentum": 0.9}

    def mixer(phase1: dict) -> dict:
        return {"type": "mixer", "phase1": phase1, "phase2": sgd, "switch": {"at": args.switch_at},
                "corrector": {"T1": 10}}

    rows = {
        "sgdm": run({"type": "single", "optimizer": sgd}, args),
        "kfac eigen": run({"type": "single", "optimizer": eigen}, args),
        "kfac cholesky": run({"type": "single", "optimizer": kfac}, args),
        "mixer": run(mixer(kfac), args),
        "mixer shared": run(mixer(shared), args),
    }
    base = rows["sgdm"]["sgdm"][0]
    ref = rows["kfac eigen"]["kfac"][0]
    print(f"MLP 784-{args.width}x{args.depth}-10, batch {args.batch}, {args.steps} steps, switch at "
          f"{args.switch_at}, T1 10, device {args.device}, load average {os.getloadavg()[0]:.1f}")
    print("mixer: phase 1 K-FAC cholesky; mixer shared: the same with shared_storage (a factor's running average "
          "and its Cholesky factor in one buffer)")
    print(f"{'run':<14} {'phase':<7} {'peak MiB':>9} {'vs SGD':>7} {'vs eigen K-FAC':>15} {'ms/step':>8}")
    for run_name, phases in rows.items():
        for phase, (peak, ms) in phases.items():
            print(f"{run_name:<14} {phase:<7} {peak / 2**20:>9.2f} {peak / base:>7.2f} {peak / ref:>15.2f} "
                  f"{ms:>8.2f}")


if __name__ == "__main__":
    main()
