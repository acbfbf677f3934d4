"""K-FAC under torch.distributed: 2 gloo workers on half batches equal 1 process on the whole batch.

Each worker computes the mean loss on its half and the test averages the gradients by hand (what DDP
does); K-FAC averages its batch factors with one all-reduce per factor refresh. With step control
(``batch_step``) the model is DDP-wrapped and K-FAC also averages its quadratic-model products and losses.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from hyperswitch.optim.kfac import KFAC

STEPS = 5
BATCH = 8
KW = {"lr": 0.1, "momentum": 0.9, "damping": 0.01, "factor_interval": 2, "inverse_interval": 2,
      "inverse": "cholesky"}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 5 * 5, 4)).double()


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return (torch.randn(BATCH, 2, 5, 5, generator=g, dtype=torch.float64),
            torch.randint(0, 4, (BATCH,), generator=g))


def _train(rank: int, world: int) -> tuple[list[torch.Tensor], list[int]]:
    model = _model()
    opt = KFAC(model.parameters(), model, **KW)
    calls: list[int] = []
    real = dist.all_reduce
    for s in range(STEPS):
        x, y = _data(s)
        x, y = x.chunk(world)[rank], y.chunk(world)[rank]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if world > 1:
            for p in model.parameters():
                real(p.grad)
                p.grad /= world
            count = [0]

            def counting(*args, count=count, **kwargs):
                count[0] += 1
                return real(*args, **kwargs)

            dist.all_reduce = counting
            try:
                opt.step()
            finally:
                dist.all_reduce = real
            calls.append(count[0])
        else:
            opt.step()
    factors = [opt.state[la.weight][k] for la in opt.layers for k in ("A", "G")]
    return [p.detach().clone() for p in model.parameters()] + factors, calls


CONTROL = {"lr": 1.0, "momentum": 0.9, "damping": 0.01, "inverse_interval": 2, "inverse": "eigen",
           "rescale": True, "adaptive_damping": True, "damping_interval": 2, "pi_correction": True}


def _train_controlled(rank: int, world: int) -> tuple[list[torch.Tensor], list[float]]:
    module = _model()
    model = nn.parallel.DistributedDataParallel(module) if world > 1 else module
    opt = KFAC(module.parameters(), model, loss_fn=F.cross_entropy, **CONTROL)
    seen = []
    for s in range(STEPS):
        x, y = _data(s)
        opt.batch_step(x.chunk(world)[rank], y.chunk(world)[rank])
        seen += [opt.alpha, opt.mu, opt.damping]
    return [p.detach().clone() for p in module.parameters()], seen


def _worker(rank: int, world: int, port: int, out_dir: str, controlled: bool = False) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        if controlled:
            tensors, seen = _train_controlled(rank, world)
            torch.save({"tensors": tensors, "seen": seen}, os.path.join(out_dir, f"rank{rank}.pt"))
        else:
            tensors, calls = _train(rank, world)
            torch.save({"tensors": tensors, "calls": calls}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~10 s: each spawned worker imports torch and hyperswitch (~4 s on 2 cores)
def test_two_workers_equal_one_process_on_whole_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single, _ = _train(0, 1)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["calls"] == [1, 0, 1, 0, 1]  # one all-reduce per factor refresh (factor_interval 2)
        for a, b in zip(got["tensors"], single, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.slow  # ~10 s, as above
def test_step_control_two_workers_equal_one_process_on_whole_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), True), nprocs=2, join=True)
    single, seen = _train_controlled(0, 1)
    assert len(set(seen[2::3])) > 1  # λ was adapted
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["seen"] == pytest.approx(seen, rel=1e-9)
        for a, b in zip(got["tensors"], single, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
