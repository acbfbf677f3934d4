"""Transferability of a pre-trained model to a target task (IOMT, 002 Eq. 6): LogME, LEEP and ``omega_t``.

- ``logme(features, labels)`` (You et al. 2021): for each class ``c`` a Bayesian linear model
  ``y_c = F w + noise`` on one-hot targets, prior ``w ~ N(0, alpha^-1 I)``, noise precision ``beta``; ``alpha``
  and ``beta`` maximise the evidence by MacKay's fixed-point iteration
  ``gamma = sum s_i beta / (alpha + beta s_i)``, ``alpha = gamma / |m|^2``, ``beta = (N - gamma) / |y - F m|^2``
  (``s_i`` the eigenvalues of ``F^T F``, ``m`` the posterior mean). The result is the maximised log evidence
  divided by ``N``, averaged over classes. The reference code stops after 11 iterations or a 1% change of
  ``alpha/beta``; here the iteration runs to a relative change of 1e-8 (at most 1000 iterations), so the value
  is the evidence maximum itself.
- ``leep(probs, labels)`` (Nguyen et al. 2020): ``probs`` the source model's predicted distribution over its
  own labels ``z`` for each target example; empirical joint ``P(y, z) = 1/n sum_{i: y_i = y} probs_iz``,
  conditional ``P(y | z) = P(y, z) / P(z)``, LEEP ``= 1/n sum_i log sum_z P(y_i | z) probs_iz``.
- ``omega_t(beta, omega_p, logme, leep) = beta omega_p + (1 - beta) (sigmoid(logme) + sigmoid(leep)) / 2``.
"""

from __future__ import annotations

import math

import numpy as np


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _max_evidence(f: np.ndarray, s: np.ndarray, v: np.ndarray, y: np.ndarray, tol: float, max_iter: int) -> float:
    n, d = f.shape
    proj = v.T @ (f.T @ y)  # F^T y in the eigenbasis of F^T F
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        m = v @ (proj * beta / (alpha + beta * s))
        gamma = float(np.sum(beta * s / (alpha + beta * s)))
        mm = max(float(m @ m), 1e-300)
        resid = max(float(np.sum((y - f @ m) ** 2)), 1e-300)
        new_alpha, new_beta = gamma / mm, (n - gamma) / resid
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m = v @ (proj * beta / (alpha + beta * s))
    resid = float(np.sum((y - f @ m) ** 2))
    ev = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - n / 2 * math.log(2 * math.pi)
          - beta / 2 * resid - alpha / 2 * float(m @ m) - 0.5 * float(np.sum(np.log(alpha + beta * s))))
    return ev / n


def logme(features: np.ndarray, labels: np.ndarray, *, tol: float = 1e-8, max_iter: int = 1000) -> float:
    """LogME of ``features`` (N x D) for integer class ``labels`` (N,): mean over classes of the maximised
    per-sample log evidence."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if f.ndim != 2 or f.shape[0] != y.shape[0] or f.shape[0] < 2:
        raise ValueError(f"features must be N x D with N = len(labels) >= 2, but got {f.shape} and {y.shape}")
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    return float(np.mean([_max_evidence(f, s, v, (y == c).astype(np.float64), tol, max_iter)
                          for c in np.unique(y)]))


def leep(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of a source model's predicted distributions ``probs`` (N x Z, rows sum to 1) for target ``labels``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[0] < 1:
        raise ValueError(f"probs must be N x Z with N = len(labels) >= 1, but got {p.shape} and {y.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("probs must be non-negative with rows summing to 1")
    classes, yi = np.unique(y, return_inverse=True)
    n = p.shape[0]
    joint = np.zeros((len(classes), p.shape[1]))
    np.add.at(joint, yi, p)
    joint /= n
    marginal = joint.sum(axis=0)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y | z)
    eep = np.sum(p * cond[yi], axis=1)
    return float(np.mean(np.log(eep)))


def omega_t(beta: float, omega_p: float, logme_value: float, leep_value: float) -> float:
    """Transferability weight (002 Eq. 6) with the two distribution metrics LogME and LEEP."""
    return beta * omega_p + (1.0 - beta) * (sigmoid(logme_value) + sigmoid(leep_value)) / 2.0
