"""The one rule for a configuration's value over its seeds (the sampler's and the Optuna export's)."""

import math

from hyperswitch.results.select import finite_values, seed_mean


def test_only_finite_numbers_count():
    assert finite_values([1, None, float("nan"), "x", float("inf"), -float("inf"), "2.5", 3.0]) == [1.0, 2.5, 3.0]
    assert seed_mean([None, float("nan")]) is None and seed_mean([]) is None
    assert seed_mean([0.5, float("nan"), 0.25]) == 0.375


def test_the_same_float_whatever_order_the_seeds_finished_in():
    values = [1e16, 1.0, -1e16, 1.0, 0.1, 0.2]
    # plain left-to-right sums differ by order; the exact sum is 2.3
    assert sum(values) != sum(reversed(values))
    assert seed_mean(values) == seed_mean(reversed(values)) == math.fsum(values) / 6 == 2.3 / 6
