"""LogME, LEEP and omega_t (002 Eq. 6) against direct references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from hyperswitch.workloads._transferability import leep, logme, omega_t


def direct_log_evidence(f, y, log_alpha, log_beta):
    """log p(y | F, alpha, beta) / N of y = F w + e, w ~ N(0, I/alpha), e ~ N(0, I/beta), by the Gaussian
    marginal y ~ N(0, F F^T / alpha + I / beta) (no posterior algebra)."""
    alpha, beta = math.exp(log_alpha), math.exp(log_beta)
    n = f.shape[0]
    cov = f @ f.T / alpha + np.eye(n) / beta
    _, logdet = np.linalg.slogdet(cov)
    quad = float(y @ np.linalg.solve(cov, y))
    return (-0.5 * n * math.log(2 * math.pi) - 0.5 * logdet - 0.5 * quad) / n


def brute_force_max(f, y):
    grid = np.linspace(-8, 8, 41)  # ln alpha, ln beta
    best = max((direct_log_evidence(f, y, a, b), a, b) for a in grid for b in grid)
    res = minimize(lambda p: -direct_log_evidence(f, y, p[0], p[1]), x0=[best[1], best[2]], method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    return best[0], -res.fun


def toy_features(seed=0, n=60, d=4, classes=3):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, d))
    labels = np.argmax(f @ rng.standard_normal((d, classes)) + 0.5 * rng.standard_normal((n, classes)), axis=1)
    return f, labels


def test_logme_is_the_evidence_maximum_found_by_brute_force():
    f, labels = toy_features()
    grid_vals, refined = [], []
    for c in np.unique(labels):
        g, r = brute_force_max(f, (labels == c).astype(np.float64))
        grid_vals.append(g)
        refined.append(r)
    value = logme(f, labels)
    assert value >= np.mean(grid_vals) - 1e-12  # no grid point beats the fixed point
    assert value == pytest.approx(np.mean(refined), abs=1e-7)


def test_logme_prefers_informative_features():
    f, labels = toy_features(seed=1, n=100)
    noise = np.random.default_rng(5).standard_normal(f.shape)
    assert logme(f, labels) > logme(noise, labels)


def test_logme_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="features"):
        logme(np.zeros((5, 2)), np.zeros(4))


def test_leep_hand_computed():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 0, 1, 1])
    # joint P(y, z) = 1/4 * column sums per label: y=0 -> (1.7, 0.3)/4, y=1 -> (0.7, 1.3)/4; P(z) = (0.6, 0.4)
    # P(y=0|z) = (0.425/0.6, 0.075/0.4) = (17/24, 3/16); P(y=1|z) = (7/24, 13/16)
    # EEP: 0.9*17/24 + 0.1*3/16 = 21/32, 0.8*17/24 + 0.2*3/16 = 29/48, 0.3*7/24 + 0.7*13/16 = 21/32,
    #      0.4*7/24 + 0.6*13/16 = 29/48
    expected = (2 * math.log(21 / 32) + 2 * math.log(29 / 48)) / 4
    assert leep(probs, labels) == pytest.approx(expected, rel=1e-12)


def test_leep_label_names_do_not_matter_and_bad_probs_fail():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    assert leep(probs, np.array([7, 7, 3, 3])) == pytest.approx(leep(probs, np.array([0, 0, 1, 1])))
    with pytest.raises(ValueError, match="summing to 1"):
        leep(probs * 2, np.array([0, 0, 1, 1]))


def test_omega_t_formula():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4: 0.3*0.8 + 0.7*(0.5 + 0.75)/2 = 0.6775
    assert omega_t(0.3, 0.8, 0.0, math.log(3)) == pytest.approx(0.6775, rel=1e-12)
    assert omega_t(1.0, 0.42, -50.0, 50.0) == pytest.approx(0.42)
