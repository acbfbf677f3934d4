"""IOMT's observation and surrogate pieces (docs/algorithms.md#iomt, 002 §3.3-3.4): the cycle score, the
compressed model state ``v`` and one Gaussian process per candidate.

- ``cycle_score(l0, losses, alpha)``: Eq. (2). ``sigma_delta`` is the population standard deviation (ddof 0);
  a ratio whose denominator is 0 counts as 0; a non-finite result (diverging loss) scores -1, the worst.
- ``Compressor``: ``pca`` = the top ``n_components`` singular values of each selected layer's weight matrix
  (conv weights as ``out x (in·k·k)``, zero-padded when a layer has fewer), concatenated; ``rp`` = a fixed
  Gaussian projection ``R`` (``n_components x D``, entries ``N(0, 1/n_components)``, drawn from
  ``numpy.random.default_rng([seed, 1])``) of the flattened selected weights. Selected layers: the last
  ``nn.Linear``/``nn.Conv*`` (``last``) or all of them (``all``); a model with neither uses its parameters
  with 2 or more dimensions. The singular values are computed in float64 (``top_singular_values``): an SVD
  of ``W``, or, for large matrices, the square roots of the top eigenvalues of the smaller Gram matrix
  (``W Wᵀ`` or ``WᵀW``) where those are accurate.
- ``Surrogates``: per candidate, the cycles' ``(v, s)`` pairs and the GP that scikit-learn's
  ``GaussianProcessRegressor(ConstantKernel(1) * Matern(1, nu=2.5) + WhiteKernel(0.01), normalize_y=True)``
  (``alpha`` 1e-10, one L-BFGS-B run, no restarts) fits to them, computed here in numpy (``fit_theta``,
  ``Posterior``): the same log marginal likelihood and gradient, the same start, bounds and scipy call, then
  the posterior at those hyperparameters by a Cholesky solve; refitted, as before, whenever the candidate's
  data changed, so the same GP as scikit-learn's up to rounding. With fewer than 2 points the prediction is
  the prior, mean 0 and standard deviation 1. ``predict_all`` predicts for every candidate in one batched
  computation. The candidate's hyperparameters are not part of ``v``: each GP belongs to one candidate, so
  they would be constant inputs.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

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


EXPLORATIONS = ("printed", "prose")


def exploration_coefficient(cycle: int, n_halve: int, omega_t: float, halving: bool,
                            exploration: str = "printed") -> float:
    """The weight of ``s_sigma`` in the acquisition at cycle ``cycle`` (docs/algorithms.md#selection):

    - ``printed`` (Eq. 7 as printed): ``1 - 2^(-floor(i / n_halve))·omega_t``, which is 1 for every ``i`` when
      ``omega_t = 0`` and grows from ``1 - omega_t`` towards 1 otherwise;
    - ``prose`` (§3.4's "periodic halving of the weight for variance"): ``(1 - omega_t)·2^(-floor(i / n_halve))``,
      halved every ``n_halve`` cycles whatever ``omega_t``.

    Without halving both are Eq. (5)'s ``1 - omega_t``."""
    if not halving:
        return 1.0 - omega_t
    half = 2.0 ** -(cycle // n_halve)
    if exploration == "printed":
        return 1.0 - half * omega_t
    if exploration == "prose":
        return (1.0 - omega_t) * half
    raise ValueError(f"exploration must be one of {EXPLORATIONS}, not {exploration!r}")


def acquisition(mu: float, sigma: float, cycle: int, n_halve: int, omega_t: float, halving: bool,
                exploration: str = "printed") -> float:
    """``e = sigmoid(mu + coef·sigma)``, ``coef = exploration_coefficient(...)``: Eq. (7) as printed,
    ``sigmoid(mu + (1 - 2^(-floor(i / n_halve))·omega_t)·sigma)``, by default; the prose's reading
    ``sigmoid(mu + (1 - omega_t)·2^(-floor(i / n_halve))·sigma)`` with ``exploration="prose"``; without halving
    Eq. (5)'s coefficient ``1 - omega_t``."""
    x = mu + exploration_coefficient(cycle, n_halve, omega_t, halving, exploration) * sigma
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


GRAM_MIN = 64  # matrices whose smaller side is above this: from the Gram matrix, else an SVD
GRAM_RATIO = 1e-2  # ... unless the last singular value wanted is below this fraction of the largest


def top_singular_values(w: torch.Tensor, k: int) -> np.ndarray:
    """The ``k`` largest singular values of the 2-D ``w`` in float64, descending, zero-padded to ``k``.

    ``torch.linalg.svdvals`` of ``w`` in float64; for a matrix whose smaller side exceeds ``GRAM_MIN``, from
    the eigenvalues of the smaller Gram matrix ``G`` (``W Wᵀ`` or ``WᵀW``) instead, ``σ_i = sqrt(λ_i)``,
    about twice as fast there. An eigenvalue's error is about ``eps·λ_1``, so ``σ_i``'s is about
    ``eps·σ_1·(σ_1/σ_i)/2``: where the last one wanted is below ``GRAM_RATIO·σ_1`` (or the matrix is not
    finite) the SVD gives them after all. In torch, so on its intra-op threads."""
    a = w.detach().to("cpu", torch.float64)
    rows, cols = a.shape
    t = min(k, rows, cols)
    out = np.zeros(k)
    if min(rows, cols) > GRAM_MIN and t > 0:
        ev = torch.linalg.eigvalsh(a @ a.T if rows <= cols else a.T @ a).numpy()[::-1][:t]
        if np.all(np.isfinite(ev)) and ev[t - 1] >= GRAM_RATIO**2 * ev[0]:
            out[:t] = np.sqrt(ev)
            return out
    out[:t] = torch.linalg.svdvals(a).numpy()[:t]
    return out


class Compressor:
    """Model state -> the GP input ``v`` (float64 vector)."""

    def __init__(self, method: str, n_components: int, layers: str, seed: int) -> None:
        self.method, self.k, self.layers, self.seed = method, int(n_components), layers, int(seed)
        self._proj: np.ndarray | None = None

    def __call__(self, model: nn.Module) -> np.ndarray:
        weights = selected_weights(model, self.layers)
        if self.method == "pca":
            return np.concatenate([top_singular_values(w, self.k) for w in weights])
        flat = torch.cat([w.reshape(-1) for w in weights]).cpu().numpy().astype(np.float64)
        if self._proj is None or self._proj.shape[1] != flat.shape[0]:
            rng = np.random.default_rng([self.seed, 1])
            self._proj = rng.standard_normal((self.k, flat.shape[0])) / math.sqrt(self.k)
        return self._proj @ flat


# --- the Gaussian process ---------------------------------------------------------------------------------
# theta = log(c, length scale, noise level) of c·Matern_5/2(d / length scale) + noise·[x = x'], scikit-learn's
# order for ConstantKernel(1, (1e-3, 1e3)) * Matern(1, (1e-3, 1e3), nu=2.5) + WhiteKernel(0.01, (1e-6, 10))
THETA0 = np.log([1.0, 1.0, 1e-2])
BOUNDS = np.log([[1e-3, 1e3], [1e-3, 1e3], [1e-6, 1e1]])
JITTER = 1e-10  # GaussianProcessRegressor's default alpha, added to K's diagonal (not to the predictive variance)
SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)


def matern52(r: np.ndarray) -> np.ndarray:
    """``(1 + r + r²/3)·exp(-r)`` for ``r = sqrt(5)·d / length scale``."""
    return (1.0 + r + r * r / 3.0) * np.exp(-r)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def normalise(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``normalize_y``: ``(y - mean) / std`` (population std; 1 where it is 0), the mean and the std."""
    mean, std = float(y.mean()), float(y.std())
    std = std if std != 0.0 else 1.0
    return (y - mean) / std, mean, std


class NegLogMarginalLikelihood:
    """``theta -> (-log p(y | X, theta), its gradient)`` for normalised targets ``y`` at inputs ``x``:
    ``K = c·M + (noise + JITTER)·I``, ``L = chol(K)``, ``a = K⁻¹y``,
    ``log p = -yᵀa/2 - Σ log L_ii - n·log(2π)/2``, ``∂ log p/∂θ_k = tr((a aᵀ - K⁻¹) ∂K/∂θ_k)/2`` with
    ``∂K/∂log c = c·M``, ``∂K/∂log ℓ = c·(r²/3)(1 + r)·exp(-r)``, ``∂K/∂log noise = noise·I``. A ``K`` that is
    not positive definite gives ``(inf, 0)``, as in scikit-learn. The distances are computed once; one call
    is a few small numpy operations and the LAPACK calls scikit-learn makes (``dpotrf``, ``dpotrs``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        from scipy.linalg import lapack

        self.potrf, self.potrs = lapack.dpotrf, lapack.dpotrs
        self.y, self.n = y, y.shape[0]
        self.rd = SQRT5 * pairwise_distances(x)
        self.eye = np.eye(self.n)
        self.const = 0.5 * self.n * LOG_2PI

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        c, ell, noise = (math.exp(t) for t in theta.tolist())
        r = self.rd * (1.0 / ell)
        e = np.exp(-r)
        p = r + 1.0
        r2 = r * r
        r2 /= 3.0
        m = p + r2
        m *= e
        k = m * c
        k.flat[:: self.n + 1] = (c + noise) + JITTER  # M_ii = 1; scikit-learn's order of the sums
        low, info = self.potrf(k, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            return math.inf, np.zeros(3)
        a = self.potrs(low, self.y, lower=1)[0]
        w = np.outer(a, a)
        w -= self.potrs(low, self.eye, lower=1)[0]  # a aᵀ - K⁻¹
        lml = -0.5 * float(self.y @ a) - sum(map(math.log, low.diagonal().tolist())) - self.const
        r2 *= p
        r2 *= e  # (r²/3)(1 + r)·exp(-r)
        grad = np.array([-0.5 * c * float(np.vdot(w, m)), -0.5 * c * float(np.vdot(w, r2)),
                         -0.5 * noise * float(w.diagonal().sum())])
        return -lml, grad


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
# scipy.optimize.minimize(method="L-BFGS-B")'s defaults, which scikit-learn's fit uses
LBFGSB_MAXCOR, LBFGSB_FTOL, LBFGSB_GTOL, LBFGSB_MAXLS = 10, 2.2204460492503131e-09, 1e-5, 20
LBFGSB_MAXITER = LBFGSB_MAXFUN = 15000


def lbfgsb_public(fun: Objective, x0: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``scipy.optimize.minimize(fun, x0, method="L-BFGS-B", jac=True, bounds=bounds).x``."""
    from scipy.optimize import minimize

    return np.asarray(minimize(fun, x0, method="L-BFGS-B", jac=True, bounds=bounds).x, dtype=np.float64)


def lbfgsb_direct(fun: Objective, x0: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The same run as ``lbfgsb_public``: the iteration loop of scipy's ``_minimize_lbfgsb`` (scipy >= 1.15)
    driving the same compiled L-BFGS-B step (``scipy.optimize._lbfgsb.setulb``, a private API) with the same
    defaults and finite bounds, without the per-evaluation bookkeeping of ``minimize`` (its
    ``ScalarFunction``: about 0.1 ms an evaluation, more than this objective takes). Same evaluations in the
    same order, so the same result, bit for bit (``_lbfgsb_impl`` checks it once against ``minimize``)."""
    from scipy.optimize import _lbfgsb

    n, m = x0.shape[0], LBFGSB_MAXCOR
    x = np.clip(np.array(x0, dtype=np.float64), bounds[:, 0], bounds[:, 1])
    low, high = np.array(bounds[:, 0], dtype=np.float64), np.array(bounds[:, 1], dtype=np.float64)
    nbd = np.full(n, 2, dtype=np.int32)  # both bounds finite
    f: Any = np.array(0.0)
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task, ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave, dsave = np.zeros(4, dtype=np.int32), np.zeros(44, dtype=np.int32), np.zeros(29)
    factr = LBFGSB_FTOL / np.finfo(float).eps
    iterations = evaluations = 0
    while True:
        _lbfgsb.setulb(m, x, low, high, nbd, f, g, factr, LBFGSB_GTOL, wa, iwa, task, lsave, isave, dsave,
                       LBFGSB_MAXLS, ln_task)
        if task[0] == 3:  # evaluate at x
            fx, gx = fun(x.copy())
            f, g = float(fx), np.atleast_1d(np.asarray(gx, dtype=np.float64))
            evaluations += 1
        elif task[0] == 1:  # a new iterate
            iterations += 1
            if iterations >= LBFGSB_MAXITER or evaluations > LBFGSB_MAXFUN:
                break
        else:
            break
    return x


_LBFGSB: list[Callable[[Objective, np.ndarray, np.ndarray], np.ndarray]] = []


def _lbfgsb_impl() -> Callable[[Objective, np.ndarray, np.ndarray], np.ndarray]:
    """``lbfgsb_direct`` where it reproduces ``lbfgsb_public`` exactly on a small GP fit (checked once per
    process), else ``lbfgsb_public``: a scipy whose private step differs falls back to the public call."""
    if not _LBFGSB:
        x = np.array([[0.0, 0.1], [0.3, -0.2], [0.35, 0.1], [1.0, 0.4]])
        y, _, _ = normalise(np.array([0.1, -0.3, 0.25, 0.05]))
        fun = NegLogMarginalLikelihood(x, y)
        impl = lbfgsb_public
        try:
            if np.array_equal(lbfgsb_direct(fun, THETA0, BOUNDS), lbfgsb_public(fun, THETA0, BOUNDS)):
                impl = lbfgsb_direct
        except Exception:  # any failure of the private API: the public call
            pass
        _LBFGSB.append(impl)
    return _LBFGSB[0]


def fit_theta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The hyperparameters ``GaussianProcessRegressor.fit`` finds: one L-BFGS-B run from ``THETA0`` within
    ``BOUNDS`` on the normalised targets (not converging within scipy's default limits is accepted, as there)."""
    return _lbfgsb_impl()(NegLogMarginalLikelihood(x, normalise(y)[0]), THETA0, BOUNDS)


class Posterior:
    """The GP on ``(x, y)`` at fixed ``theta``: ``L = chol(K)``, ``a = K⁻¹ y_n``, ``L⁻¹``; at ``v``
    ``mean = std·k·a + mean_y``, ``var = std²·max(c + noise - |L⁻¹k|², 0)`` with ``k = c·M(d(v, x))`` (the
    noise level counts in the predictive variance, as scikit-learn's ``WhiteKernel.diag`` does)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> None:
        from scipy.linalg import lapack

        self.x, self.theta = x, theta
        self.c, self.ell, self.noise = (float(t) for t in np.exp(theta))
        yn, self.mean, self.std = normalise(y)
        n = y.shape[0]
        k = self.c * matern52(pairwise_distances(x) * (SQRT5 / self.ell))
        k.flat[:: n + 1] = (self.c + self.noise) + JITTER
        low, info = lapack.dpotrf(k, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"IOMT's GP kernel matrix is not positive definite (theta {theta})")
        self.alpha = lapack.dpotrs(low, yn, lower=1)[0]
        self.l_inv = lapack.dtrtri(low, lower=1)[0]

    def predict(self, v: np.ndarray) -> tuple[float, float]:
        d = np.sqrt(((self.x - v) ** 2).sum(axis=1))
        k = self.c * matern52(d * (SQRT5 / self.ell))
        u = self.l_inv @ k
        var = max(self.c + self.noise - float(u @ u), 0.0)
        return self.std * float(k @ self.alpha) + self.mean, self.std * math.sqrt(var)


def finite(x: np.ndarray) -> np.ndarray:
    """``x``, or a ValueError where it is not finite (as scikit-learn's input check raised)."""
    if not np.isfinite(x).all():
        raise ValueError("IOMT's surrogate input v is not finite (have the model's weights diverged?)")
    return x


_BLAS_CONTROL: Any = None


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread while it works on these tiny matrices: an OpenBLAS thread pool woken for
    a 15x15 product costs far more than the product (and spins on cores that training uses)."""
    global _BLAS_CONTROL
    if _BLAS_CONTROL is None:
        try:
            for module in ("scipy.linalg", "scipy.optimize"):  # first: it controls the libraries loaded by then
                importlib.import_module(module)
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

            _BLAS_CONTROL = ThreadpoolController()
        except Exception:  # threadpoolctl (scikit-learn's dependency) missing or failing: leave BLAS alone
            _BLAS_CONTROL = False
    if not _BLAS_CONTROL:
        return contextlib.nullcontext()
    return cast(contextlib.AbstractContextManager[Any], _BLAS_CONTROL.limit(limits=1, user_api="blas"))


class Surrogates:
    """One GP per candidate over ``(v, s)`` pairs, recomputed lazily when its data changed; all candidates'
    predictions at one ``v`` in one batched computation (``predict_all``)."""

    def __init__(self, n: int) -> None:
        self.x: list[list[list[float]]] = [[] for _ in range(n)]
        self.y: list[list[float]] = [[] for _ in range(n)]
        self._posterior: dict[int, Posterior] = {}
        self._stale = set(range(n))
        self._batch: dict[str, np.ndarray] = {}

    def add(self, j: int, v: np.ndarray, s: float) -> None:
        self.x[j].append([float(a) for a in v])
        self.y[j].append(float(s))
        self._posterior.pop(j, None)
        self._stale.add(j)

    def theta(self, j: int) -> np.ndarray | None:
        """``log(c, length scale, noise)`` candidate ``j``'s GP uses now (None: the prior, < 2 points)."""
        post = self._fitted(j)
        return None if post is None else post.theta

    def _fitted(self, j: int) -> Posterior | None:
        n = len(self.y[j])
        if n < 2:
            return None
        post = self._posterior.get(j)
        if post is None:
            x, y = np.asarray(self.x[j], dtype=np.float64), np.asarray(self.y[j], dtype=np.float64)
            finite(x)
            post = self._posterior[j] = Posterior(x, y, fit_theta(x, y))
        return post

    def _update_batch(self) -> None:
        """Candidates' posteriors padded into arrays: ``x`` (m, N, d), ``alpha`` (m, N), ``l_inv`` (m, N, N);
        padding has ``alpha`` 0 and zero ``L⁻¹`` rows and columns, so it adds nothing."""
        m = len(self.y)
        posts = {j: self._fitted(j) for j in sorted(self._stale)}
        self._stale.clear()
        b = self._batch
        need = max([len(self.y[j]) for j in range(m)] + [2])
        dim = next((len(xs[0]) for xs in self.x if xs), 1)
        if not b or b["x"].shape[1] < need or b["x"].shape[2] != dim:
            cap = max(need, 2 * b["x"].shape[1] if b else 8)
            b.clear()
            b.update(x=np.zeros((m, cap, dim)), alpha=np.zeros((m, cap)), l_inv=np.zeros((m, cap, cap)),
                     c=np.ones(m), scale=np.ones(m), noise=np.zeros(m), mean=np.zeros(m), std=np.ones(m),
                     fitted=np.zeros(m, dtype=bool))
            posts = {j: self._fitted(j) for j in range(m)}
        for j, post in posts.items():
            b["x"][j], b["alpha"][j], b["l_inv"][j] = 0.0, 0.0, 0.0
            b["fitted"][j] = post is not None
            if post is None:
                continue
            n = post.x.shape[0]
            b["x"][j, :n], b["alpha"][j, :n], b["l_inv"][j, :n, :n] = post.x, post.alpha, post.l_inv
            b["c"][j], b["scale"][j], b["noise"][j] = post.c, SQRT5 / post.ell, post.noise
            b["mean"][j], b["std"][j] = post.mean, post.std

    def predict_all(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate's predictive mean and standard deviation at ``v``, as ``Posterior.predict`` (the
        prior 0, 1 below 2 points)."""
        v = finite(np.asarray(v, dtype=np.float64))
        with one_blas_thread():
            if self._stale:
                self._update_batch()
            b = self._batch
            diff = b["x"] - v
            k = b["c"][:, None] * matern52(np.sqrt(np.einsum("mnd,mnd->mn", diff, diff)) * b["scale"][:, None])
            u = np.einsum("mij,mj->mi", b["l_inv"], k)
            var = np.maximum(b["c"] + b["noise"] - np.einsum("mi,mi->m", u, u), 0.0)
            mu = b["std"] * np.einsum("mn,mn->m", k, b["alpha"]) + b["mean"]
            sd = b["std"] * np.sqrt(var)
        fitted = b["fitted"]
        return np.where(fitted, mu, 0.0), np.where(fitted, sd, 1.0)

    def predict(self, j: int, v: np.ndarray) -> tuple[float, float]:
        """Predictive mean and standard deviation of candidate ``j``'s score at ``v``."""
        v = finite(np.asarray(v, dtype=np.float64))
        with one_blas_thread():
            post = self._fitted(j)
            return (0.0, 1.0) if post is None else post.predict(v)

    def state_dict(self) -> dict[str, Any]:
        return {"x": [[list(r) for r in xs] for xs in self.x], "y": [list(ys) for ys in self.y]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x = [[list(map(float, r)) for r in xs] for xs in state["x"]]
        self.y = [list(map(float, ys)) for ys in state["y"]]
        self._posterior, self._batch = {}, {}  # refitted on demand from the same data: identical predictions
        self._stale = set(range(len(self.y)))
