"""The comparison statistics of hyperswitch.figures._stats (issue 16) against independent numbers: scipy.stats
(ttest_rel's interval, binomtest's Wilson interval, bootstrap), closed forms and hand-computed small cases, and
the published examples of Newcombe (1998)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hyperswitch.figures._stats import paired_difference, rate_difference, split_outcome, wilson


def test_paired_t_interval_matches_scipy_ttest_rel_and_the_closed_form():
    a = {0: 0.93, 1: 0.94, 2: 0.97, 3: 0.98}
    b = {0: 0.90, 1: 0.92, 2: 0.94, 3: 0.96}
    d = paired_difference(a, b)
    ci = stats.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert (d.n, d.method, d.keys, d.dropped) == (4, "t", [0, 1, 2, 3], [])
    assert d.mean == pytest.approx(0.025) and d.sd == pytest.approx(math.sqrt(4 * 0.005**2 / 3))
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # by hand: t(0.975, 3) = 3.182446305284263; half width = t * sd / sqrt(4)
    assert d.high - d.mean == pytest.approx(3.182446305284263 * math.sqrt(4 * 0.005**2 / 3) / 2)
    assert d.excludes_zero and d.diffs == pytest.approx([0.03, 0.02, 0.03, 0.02])


def test_paired_t_by_hand_three_pairs():
    d = paired_difference({"s0": 1.0, "s1": 2.0, "s2": 3.0}, {"s0": 0.0, "s1": 0.0, "s2": 0.0})
    assert (d.mean, d.sd) == (2.0, 1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) s / sqrt(n)
    assert (d.low, d.high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert d.excludes_zero is False  # -0.48 .. 4.48


def test_unpaired_and_non_finite_seeds_are_dropped_with_the_reason():
    arm = {0: 0.95, 1: math.nan, 2: 0.91, 3: 0.99, 4: 0.90}
    ref = {0: 0.90, 1: 0.92, 2: 0.94, 3: 0.96, 5: 0.5}
    d = paired_difference(arm, ref, arm_name="mixer", reference_name="sgdm")
    assert d.keys == [0, 2, 3] and d.n == 3
    assert d.dropped == [(1, "no finite value in mixer"), (4, "only in mixer"), (5, "only in sgdm")]
    assert d.mean == pytest.approx((0.05 - 0.03 + 0.03) / 3)
    both = paired_difference({0: math.inf}, {0: math.nan})
    assert both.n == 0 and both.dropped == [(0, "no finite value in arm and reference")]
    assert math.isnan(both.mean) and math.isnan(both.low) and not both.excludes_zero
    one = paired_difference({0: 1.0}, {0: 0.5})
    assert one.mean == 0.5 and math.isnan(one.sd) and math.isnan(one.low)


def test_bootstrap_interval_is_reproducible_and_agrees_with_scipy():
    rng = np.random.default_rng(7)
    ref = rng.normal(0.9, 0.02, 12)
    arm = ref + rng.normal(0.01, 0.01, 12)
    a, b = dict(enumerate(arm)), dict(enumerate(ref))
    d1 = paired_difference(a, b, method="bootstrap")
    d2 = paired_difference(a, b, method="bootstrap")
    assert (d1.low, d1.high) == (d2.low, d2.high)  # a fixed generator: the same interval every time
    assert d1.low < d1.mean < d1.high
    sp = stats.bootstrap((arm - ref,), np.mean, method="percentile", n_resamples=10_000,
                         rng=np.random.default_rng(1)).confidence_interval
    width = sp.high - sp.low
    assert abs(d1.low - sp.low) < 0.1 * width and abs(d1.high - sp.high) < 0.1 * width
    # two differences, 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    tiny = paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 1.0}, method="bootstrap")
    assert (tiny.low, tiny.high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="method must be one of t, bootstrap"):
        paired_difference(a, b, method="z")


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (3, 7), (0, 1), (17, 40)])
def test_wilson_interval_matches_scipy_binomtest(k, n):
    r = wilson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert r.rate == k / n and (r.low, r.high) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high))


def test_wilson_closed_form_cases():
    assert wilson(0, 10).high == pytest.approx(0.27753, abs=1e-5) and wilson(0, 10).low == 0.0
    assert wilson(10, 10).low == pytest.approx(1 - 0.27753, abs=1e-5)
    r = wilson(0, 0)
    assert r.n == 0 and math.isnan(r.rate) and math.isnan(r.low)
    with pytest.raises(ValueError):
        wilson(3, 2)


@pytest.mark.parametrize(("a", "b", "low", "high"), [
    ((56, 70), (48, 80), 0.0524, 0.3339),  # Newcombe (1998) Table II, example (a), method 10
    ((9, 10), (3, 10), 0.1705, 0.8090),  # example (b)
    ((0, 10), (0, 20), -0.1611, 0.2775),  # example (e)
])
def test_rate_difference_is_newcombes_method_10(a, b, low, high):
    d = rate_difference(wilson(*a), wilson(*b))
    assert d.diff == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert (round(d.low, 4), round(d.high, 4)) == (low, high)
    assert d.excludes_zero == (low > 0)


def test_rate_difference_without_runs_is_nan():
    d = rate_difference(wilson(0, 0), wilson(1, 3))
    assert math.isnan(d.diff) and not d.excludes_zero


def test_bimodal_rule_reports_the_rate_and_the_finite_runs_separately():
    o = split_outcome(np.array([0.9, np.nan, 0.8, 0.7]), np.array([False, True, False, True]))
    assert o.bimodal and o.n == 4 and (o.failed.k, o.failed.n) == (2, 4)  # NaN and a diverged run with a value
    assert o.values.tolist() == [0.9, 0.8] and o.mean == pytest.approx(0.85)
    assert o.sd == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert o.failed.low == pytest.approx(stats.binomtest(2, 4).proportion_ci(method="wilson").low)
    plain = split_outcome(np.array([1.0, 2.0, 3.0]))
    assert not plain.bimodal and plain.failed.k == 0 and (plain.mean, plain.sd) == (2.0, 1.0)
    none = split_outcome(np.array([np.nan]))
    assert none.bimodal and math.isnan(none.mean) and len(none.values) == 0
