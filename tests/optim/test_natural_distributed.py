"""iEF under data parallelism: 2 gloo workers with half the batch each = 1 process with the whole batch.

The workers are started by ``torch.multiprocessing.start_processes`` (``mp.spawn``'s engine) with the
``fork`` start method after the single-process reference has run: they inherit the imported and warmed-up
modules, which keeps the test in a few seconds (``spawn`` re-imports torch in every worker, 10-20 s on a
loaded 2-core machine). Each worker uses one intra-op thread.
"""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim import build_optimizer

STEPS = 3
N = 12


def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (N,), generator=g)
    return model, x, y


def train(model, x, y, spec):
    opt = build_optimizer(spec, model, F.cross_entropy)
    losses = [opt.batch_step(x, y) for _ in range(STEPS)]
    return [p.detach().clone() for p in model.parameters()], torch.stack(losses)


def worker(rank: int, world: int, port: int, spec: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, x, y = problem()
        half = N // world
        sl = slice(rank * half, (rank + 1) * half)
        params, losses = train(model, x[sl], y[sl], spec)
        torch.save({"params": params, "losses": losses}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_match_one_process_on_the_whole_batch(tmp_path):
    spec = {"name": "ief", "lr": 0.5, "momentum": 0.5}
    out = str(tmp_path / "result")
    model, x, y = problem()
    params, losses = train(model, x, y, spec)
    mp.start_processes(worker, args=(2, free_port(), spec, out), nprocs=2, join=True, start_method="fork")
    for rank in range(2):
        got = torch.load(f"{out}.{rank}")
        for a, b in zip(got["params"], params, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["losses"], losses, rtol=1e-12, atol=1e-14)  # the global mean loss
