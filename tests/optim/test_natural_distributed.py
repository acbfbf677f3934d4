"""EF / iEF / SF under data parallelism: 2 gloo workers with half the batch each = 1 process with the whole batch.

The workers are started by ``torch.multiprocessing.start_processes`` (``mp.spawn``'s engine) with the
``fork`` start method after the single-process reference has run: they inherit the imported and warmed-up
modules, which keeps the test in a few seconds (``spawn`` re-imports torch in every worker, 10-20 s on a
loaded 2-core machine). Each worker uses one intra-op thread and runs every case in one process group.

Cases: iEF on an MLP by the factored path (the default) and by ``torch.func``; EF on a small CNN (factored:
Conv2d patches gathered). SF draws its labels per worker (``sample_seed + rank``), so its 2-worker run is not
the 1-process run: there the factored and the ``torch.func`` 2-worker runs are compared with each other
(the inputs shared by ``J`` and ``Js`` are gathered once).
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
CASES = {
    "ief-mlp": ("mlp", {"name": "ief", "lr": 0.5, "momentum": 0.5}),
    "ief-mlp-func": ("mlp", {"name": "ief", "lr": 0.5, "momentum": 0.5, "jacobian": "torch.func"}),
    "ef-cnn": ("cnn", {"name": "ef", "lr": 0.05, "momentum": 0.5}),
    "sf-mlp": ("mlp", {"name": "sf", "lr": 0.1, "n_samples": 2, "sample_seed": 3}),
    "sf-mlp-func": ("mlp", {"name": "sf", "lr": 0.1, "n_samples": 2, "sample_seed": 3, "jacobian": "torch.func"}),
}


def problem(kind: str):
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    else:
        model = nn.Sequential(nn.Unflatten(1, (1, 5, 1)), nn.Conv2d(1, 2, (3, 1), padding=(1, 0)), nn.Tanh(),
                              nn.Flatten(), nn.Linear(10, 3))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (N,), generator=g)
    return model.to(torch.float64), x, y


def train(kind, spec, sl=slice(None)):
    model, x, y = problem(kind)
    opt = build_optimizer(spec, model, F.cross_entropy)
    losses = [opt.batch_step(x[sl], y[sl]) for _ in range(STEPS)]
    return {"params": [p.detach().clone() for p in model.parameters()], "losses": torch.stack(losses),
            "path": opt.jacobian_path}


def worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        half = N // world
        sl = slice(rank * half, (rank + 1) * half)
        torch.save({name: train(kind, spec, sl) for name, (kind, spec) in CASES.items()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same(a: dict, b: dict) -> None:
    for p, q in zip(a["params"], b["params"], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a["losses"], b["losses"], rtol=1e-12, atol=1e-14)  # the global mean loss


def test_two_workers_match_one_process_on_the_whole_batch(tmp_path):
    out = str(tmp_path / "result")
    single = {name: train(kind, spec) for name, (kind, spec) in CASES.items() if not name.startswith("sf")}
    mp.start_processes(worker, args=(2, free_port(), out), nprocs=2, join=True, start_method="fork")
    for rank in range(2):
        got = torch.load(f"{out}.{rank}")
        for name, ref in single.items():
            assert got[name]["path"] == ref["path"] == ("torch.func" if name.endswith("func") else "factored")
            same(got[name], ref)
        assert (got["sf-mlp"]["path"], got["sf-mlp-func"]["path"]) == ("factored", "torch.func")
        same(got["sf-mlp"], got["sf-mlp-func"])
