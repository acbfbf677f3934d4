"""IOMT's observation and surrogate pieces (docs/algorithms.md#iomt, 002 §3.3-3.4): the cycle score, the
compressed model state ``v`` and one Gaussian process per candidate.

- ``cycle_score(l0, losses, alpha)``: Eq. (2). ``sigma_delta`` is the population standard deviation (ddof 0);
  a ratio whose denominator is 0 counts as 0; a non-finite result (diverging loss) scores -1, the worst.
- ``Compressor``: ``pca`` = the top ``n_components`` singular values of each selected layer's weight matrix
  (conv weights as ``out x (in·k·k)``, zero-padded when a layer has fewer), concatenated; ``rp`` = a fixed
  Gaussian projection ``R`` (``n_components x D``, entries ``N(0, 1/n_components)``, drawn from
  ``numpy.random.default_rng([seed, 1])``) of the flattened selected weights. Selected layers: the last
  ``nn.Linear``/``nn.Conv*`` (``last``) or all of them (``all``); a model with neither uses its parameters
  with 2 or more dimensions.
- ``Surrogates``: per candidate, the cycles' ``(v, s)`` pairs and a scikit-learn
  ``GaussianProcessRegressor(ConstantKernel(1) * Matern(1, nu=2.5) + WhiteKernel(0.01), normalize_y=True)``
  fitted (``random_state=0``, no restarts, so a refit on the same data is identical) when it holds 2 or more
  points; with fewer the prediction is the prior, mean 0 and standard deviation 1. The candidate's
  hyperparameters are not part of ``v``: each GP belongs to one candidate, so they would be constant inputs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def cycle_score(l0: float, losses: Sequence[float], alpha: float) -> float:
    """``s = tanh((mu_delta + delta_up + delta_low) / 3 + alpha * sigma_delta)`` for ``l0`` and ``l_1..l_tau``."""
    ls = [float(x) for x in losses]
    tau = len(ls)
    if tau == 0:
        raise ValueError("a cycle needs at least one loss")

    def ratio(num: float, den: float) -> float:
        return num / den if den != 0 else 0.0

    prev = [float(l0)] + ls[:-1]
    deltas = [ratio(a - b, max(a, b)) for a, b in zip(prev, ls, strict=True)]
    mu = sum(deltas) / tau
    sigma = math.sqrt(sum((d - mu) ** 2 for d in deltas) / tau)
    hi, lo = max(ls), min(ls)
    up = ratio(l0 - hi, max(l0, hi) * tau)
    low = ratio(l0 - lo, max(l0, lo) * tau)
    s = math.tanh((mu + up + low) / 3.0 + alpha * sigma)
    return s if math.isfinite(s) else -1.0


def acquisition(mu: float, sigma: float, cycle: int, n_halve: int, omega_t: float, halving: bool) -> float:
    """Eq. (7): ``sigmoid(mu + (1 - 2^(-floor(i / n_halve)) * omega_t) * sigma)``; without halving Eq. (5)'s
    coefficient ``1 - omega_t``."""
    coef = 1.0 - (2.0 ** -(cycle // n_halve) if halving else 1.0) * omega_t
    x = mu + coef * sigma
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def selected_weights(model: nn.Module, layers: str) -> list[torch.Tensor]:
    """The weights IOMT compresses, each as a 2-D matrix."""
    mods = [m for m in model.modules() if isinstance(m, LAYER_TYPES)]
    weights = [m.weight for m in mods] or [p for p in model.parameters() if p.dim() >= 2]
    if not weights:
        raise ValueError("IOMT compresses weight matrices, but the model has no Linear/Conv layer or 2-D parameter")
    if layers == "last":
        weights = weights[-1:]
    return [w.detach().reshape(w.shape[0], -1) for w in weights]


class Compressor:
    """Model state -> the GP input ``v`` (float64 vector)."""

    def __init__(self, method: str, n_components: int, layers: str, seed: int) -> None:
        self.method, self.k, self.layers, self.seed = method, int(n_components), layers, int(seed)
        self._proj: np.ndarray | None = None

    def __call__(self, model: nn.Module) -> np.ndarray:
        weights = selected_weights(model, self.layers)
        if self.method == "pca":
            parts = []
            for w in weights:
                sv = torch.linalg.svdvals(w).cpu().numpy().astype(np.float64)[: self.k]
                parts.append(np.pad(sv, (0, self.k - sv.shape[0])))
            return np.concatenate(parts)
        flat = torch.cat([w.reshape(-1) for w in weights]).cpu().numpy().astype(np.float64)
        if self._proj is None or self._proj.shape[1] != flat.shape[0]:
            rng = np.random.default_rng([self.seed, 1])
            self._proj = rng.standard_normal((self.k, flat.shape[0])) / math.sqrt(self.k)
        return self._proj @ flat


def make_gp() -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (1e-3, 1e3), nu=2.5)
              + WhiteKernel(1e-2, (1e-6, 1e1)))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0, random_state=0)


class Surrogates:
    """One GP per candidate over ``(v, s)`` pairs; fitted lazily, refitted only when its data changed."""

    def __init__(self, n: int) -> None:
        self.x: list[list[list[float]]] = [[] for _ in range(n)]
        self.y: list[list[float]] = [[] for _ in range(n)]
        self._fitted: dict[int, Any] = {}

    def add(self, j: int, v: np.ndarray, s: float) -> None:
        self.x[j].append([float(a) for a in v])
        self.y[j].append(float(s))
        self._fitted.pop(j, None)

    def predict(self, j: int, v: np.ndarray) -> tuple[float, float]:
        """Predictive mean and standard deviation of candidate ``j``'s score at ``v``."""
        if len(self.y[j]) < 2:
            return 0.0, 1.0
        gp = self._fitted.get(j)
        if gp is None:
            from sklearn.exceptions import ConvergenceWarning

            gp = make_gp()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(np.asarray(self.x[j], dtype=np.float64), np.asarray(self.y[j], dtype=np.float64))
            self._fitted[j] = gp
        mu, sd = gp.predict(np.asarray(v, dtype=np.float64).reshape(1, -1), return_std=True)
        return float(mu[0]), float(sd[0])

    def state_dict(self) -> dict[str, Any]:
        return {"x": [[list(r) for r in xs] for xs in self.x], "y": [list(ys) for ys in self.y]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x = [[list(map(float, r)) for r in xs] for xs in state["x"]]
        self.y = [list(map(float, ys)) for ys in state["y"]]
        self._fitted = {}  # refitted on demand from the same data: identical predictions
