"""IOMT overhead (compression + GP update + acquisition) as a fraction of training time, before and after
issue 15 (not a test).

The cycle-boundary work (``_start_cycle``: compress the model state, fit/query each candidate's GP, choose;
``_end_cycle``: score the cycle, record the surrogate point, update weights) is timed inside the same run as
the training steps it interleaves with. Each model is trained with three versions of that work, alternating,
``--repeats`` times (medians reported):

- ``old``: the code before issue 15, kept below as ``LegacyCompressor``/``LegacySurrogates``: float32
  ``torch.linalg.svdvals`` and, per candidate, a scikit-learn ``GaussianProcessRegressor`` fitted when its
  data changed and queried one candidate at a time, BLAS at its default thread count;
- ``old, 1 BLAS thread``: the same inside ``threadpool_limits(1, "blas")``, to separate the thread-pool
  effect from the rest;
- ``new``: ``hyperswitch.switching._iomt_score`` as it is;
- ``no GP (random)``: ``select: random``, the boundary work without any surrogate (compression, weighted
  choice, scoring, building each candidate on first use): the floor under ``new``.

The runs start from the same weights and batches, so where the versions choose the same candidates they
train identically; the script says whether they did. ``fraction`` is wall-clock boundary time over the run's
wall-clock time; ``CPU fraction`` the same in this thread's CPU time (``time.thread_time``), which leaves out
the time other processes on a shared machine take from this one.

    python bench/bench_iomt.py                       # tau 25, n_ini 20, 1000 steps, both models
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from hyperswitch.switching import Policy
from hyperswitch.switching._iomt_score import Compressor, selected_weights


class LegacyCompressor(Compressor):
    """``pca`` before issue 15: ``torch.linalg.svdvals`` in the weights' dtype."""

    def __call__(self, model: nn.Module) -> np.ndarray:
        if self.method != "pca":
            return super().__call__(model)
        parts = []
        for w in selected_weights(model, self.layers):
            sv = torch.linalg.svdvals(w).cpu().numpy().astype(np.float64)[: self.k]
            parts.append(np.pad(sv, (0, self.k - sv.shape[0])))
        return np.concatenate(parts)


def legacy_gp() -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (1e-3, 1e3), nu=2.5)
              + WhiteKernel(1e-2, (1e-6, 1e1)))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0, random_state=0)


class LegacySurrogates:
    """The surrogates before issue 15: one scikit-learn GP per candidate, refitted when its data changed."""

    def __init__(self, n: int) -> None:
        self.x: list[list[list[float]]] = [[] for _ in range(n)]
        self.y: list[list[float]] = [[] for _ in range(n)]
        self._fitted: dict[int, Any] = {}

    def add(self, j: int, v: np.ndarray, s: float) -> None:
        self.x[j].append([float(a) for a in v])
        self.y[j].append(float(s))
        self._fitted.pop(j, None)

    def predict(self, j: int, v: np.ndarray) -> tuple[float, float]:
        if len(self.y[j]) < 2:
            return 0.0, 1.0
        gp = self._fitted.get(j)
        if gp is None:
            from sklearn.exceptions import ConvergenceWarning

            gp = legacy_gp()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(np.asarray(self.x[j], dtype=np.float64), np.asarray(self.y[j], dtype=np.float64))
            self._fitted[j] = gp
        mu, sd = gp.predict(np.asarray(v, dtype=np.float64).reshape(1, -1), return_std=True)
        return float(mu[0]), float(sd[0])

    def predict_all(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, sd = zip(*(self.predict(j, v) for j in range(len(self.y))), strict=True)
        return np.array(mu), np.array(sd)


def mlp(sizes: list[int]) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def run(sizes: list[int], batch: int, args: argparse.Namespace, version: str) -> dict[str, Any]:
    """One training run: wall-clock and this thread's CPU seconds, in all (``total``, ``total_cpu``) and at
    the cycle boundaries (``overhead``, ``overhead_cpu``); the chosen candidates."""
    model = mlp(sizes)
    spec = {"type": "iomt", "tau": args.tau, "n_ini": args.n_ini, "n_components": 2, "compress": args.compress}
    if version == "random":
        spec["select"] = "random"
    stepper: Any = Policy.from_spec(spec).build(model, nn.functional.cross_entropy)
    if version.startswith("old"):
        full = stepper.spec
        stepper.compressor = LegacyCompressor(full.compress, full.n_components, full.layers, full.seed)
        stepper.surrogates = LegacySurrogates(len(stepper.candidates))
    spent = [0.0, 0.0]
    for name in ("_start_cycle", "_end_cycle"):
        inner: Callable[..., Any] = getattr(stepper, name)

        def timed(*a: Any, _inner: Callable[..., Any] = inner) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return _inner(*a)
            finally:
                spent[0] += time.perf_counter() - t
                spent[1] += time.thread_time() - c

        setattr(stepper, name, timed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (batch,), generator=g)
    choices = []
    limit = threadpool_limits(1, "blas") if version == "old1" else None
    try:
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(args.steps):
            r = stepper.step(x, y)
            choices += [e.detail["candidate"] for e in r.events]
        total, total_cpu = time.perf_counter() - t0, time.thread_time() - c0
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return {"total": total, "overhead": spent[0], "total_cpu": total_cpu, "overhead_cpu": spent[1],
            "cycles": stepper.cycle, "choices": choices}


MODELS = {"digits": ([64, 128, 10], 64), "mnist": ([784, 512, 512, 10], 128)}
VERSIONS = {"old": "old", "old1": "old, 1 BLAS thread", "new": "new", "random": "no GP (random)"}


def load() -> str:
    return " ".join(f"{a:.2f}" for a in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tau", type=int, default=25)
    p.add_argument("--n-ini", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--compress", default="pca", choices=("pca", "rp"))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="digits,mnist", help="comma-separated: digits (64-128-10, batch 64), "
                   "mnist (784-512-512-10, batch 128)")
    p.add_argument("--versions", default=",".join(VERSIONS), help="comma-separated, of " + ", ".join(VERSIONS))
    args = p.parse_args()
    versions = {v: VERSIONS[v] for v in args.versions.split(",")}
    torch.set_num_threads(args.threads)
    print(f"IOMT tau {args.tau}, n_ini {args.n_ini}, {args.compress}, {args.steps} steps, 15 candidates, "
          f"{torch.get_num_threads()} torch intra-op thread(s), {args.repeats} repeats (medians); "
          f"load average {load()}")
    warm = argparse.Namespace(**{**vars(args), "steps": args.tau * (args.n_ini + 3)})
    for version in versions:
        run([64, 32, 10], 16, warm, version)  # imports and first fits, not counted
    print(f"{'model':<16} {'batch':>5} {'version':<20} {'total s':>8} {'overhead s':>10} {'fraction':>9} "
          f"{'CPU fraction':>12} {'CPU ms/cycle':>12}")
    for key in args.models.split(","):
        sizes, batch = MODELS[key]
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
        for i in range(args.repeats):
            order = list(versions) if i % 2 == 0 else list(versions)[::-1]
            for version in order:
                results[version].append(run(sizes, batch, args, version))
        name = "-".join(map(str, sizes))
        for version, label in versions.items():
            rs = results[version]
            med = {k: statistics.median(r[k] for r in rs) for k in ("total", "overhead", "overhead_cpu")}
            frac = statistics.median(r["overhead"] / r["total"] for r in rs)
            frac_cpu = statistics.median(r["overhead_cpu"] / r["total_cpu"] for r in rs)
            print(f"{name:<16} {batch:>5} {label:<20} {med['total']:>8.2f} {med['overhead']:>10.3f} {frac:>9.2%} "
                  f"{frac_cpu:>12.2%} {1e3 * med['overhead_cpu'] / max(rs[0]['cycles'], 1):>12.2f}")
        gp = [v for v in versions if v != "random"]
        if len(gp) > 1:
            first = results[gp[0]][0]["choices"]
            same = all(r["choices"] == first for v in gp for r in results[v])
            print(f"{'':<16} same candidates chosen by {', '.join(gp)} in all repeats: {'yes' if same else 'NO'}")
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
