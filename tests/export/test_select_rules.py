"""The export selection rules on hand-made trial tables (numbers worked out by hand in the comments)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.export.select import check_metric, select_configurations


def table(rows: list[tuple]) -> pd.DataFrame:
    """rows: (config_id, seed, status, val_accuracy, wall_time_s)."""
    return pd.DataFrame([{"trial_id": f"{c}_s{s}", "config_id": c, "seed": s, "status": st, "val_accuracy": v,
                          "val_loss": None if v is None else 1 - v, "wall_time_s": w} for c, s, st, v, w in rows])


LUCKY = table([
    ("c1", 0, "completed", 0.99, 10.0), ("c1", 1, "completed", 0.80, 10.0),  # mean 0.895, one lucky seed
    ("c2", 0, "completed", 0.92, 30.0), ("c2", 1, "completed", 0.93, 30.0),  # mean 0.925
    ("c3", 0, "completed", 0.90, 12.0), ("c3", 1, "completed", 0.91, 14.0),  # mean 0.905, wall 13
])


def test_mean_is_not_won_by_one_lucky_seed():
    sel = select_configurations(LUCKY, "val_accuracy", "max")
    (c,) = sel.choices
    assert c.config_id == "c2" and c.seeds == (0, 1) and c.trial_ids == ("c2_s0", "c2_s1")
    assert c.mean == pytest.approx(0.925) and c.std == pytest.approx(math.sqrt(2 * 0.005**2 / 1))  # sample s.d.
    assert c.values == (0.92, 0.93) and c.wall_time_mean == pytest.approx(30.0)


def test_best_takes_the_single_best_trial_and_top_n_are_distinct_configurations():
    sel = select_configurations(LUCKY, "val_accuracy", "max", select="best", top=2)
    assert [c.config_id for c in sel.choices] == ["c1", "c2"]  # 0.99 (c1 s0), then c2's 0.93
    assert sel.choices[0].trial_id == "c1_s0" and sel.choices[0].value == 0.99
    assert sel.choices[0].mean == pytest.approx(0.895)  # provenance still gets the configuration's mean
    assert sel.choices[1].trial_id == "c2_s1"


def test_min_mode_ranks_lowest_first():
    sel = select_configurations(LUCKY, "val_loss", "min", top=3)
    assert [c.config_id for c in sel.choices] == ["c2", "c3", "c1"]  # losses 0.075, 0.095, 0.105


def test_a_failed_seed_rules_a_configuration_out_and_says_so():
    t = table([("c1", 0, "completed", 0.97, 1.0), ("c1", 1, "diverged", None, 1.0),
               ("c2", 0, "completed", 0.90, 1.0), ("c2", 1, "completed", 0.90, 1.0)])
    sel = select_configurations(t, "val_accuracy", "max")
    assert [c.config_id for c in sel.choices] == ["c2"]
    assert any("c1" in n and "left out" in n for n in sel.notes)


def test_configurations_with_fewer_finished_seeds_are_not_compared():
    # c1 has only its first seed (0.99) so far; c2 has both (mean 0.95): c1 cannot win yet.
    t = table([("c1", 0, "completed", 0.99, 1.0), ("c1", 1, "running", None, None),
               ("c2", 0, "completed", 0.94, 1.0), ("c2", 1, "completed", 0.96, 1.0)])
    sel = select_configurations(t, "val_accuracy", "max")
    assert sel.choices[0].config_id == "c2" and sel.choices[0].n == 2
    assert any("fewer than 2" in n for n in sel.notes)


def test_pareto_takes_the_best_mean_within_the_time_budget():
    # fastest mean wall time 10 s (c1); budget 1.5 x 10 = 15 s admits c1 (0.895) and c3 (0.905, 13 s): c3.
    sel = select_configurations(LUCKY, "val_accuracy", "max", select="pareto", max_time_ratio=1.5)
    (c,) = sel.choices
    assert c.config_id == "c3" and c.time_ratio == pytest.approx(1.3)
    # budget 3 x 10 = 30 s admits c2 (30 s): the best mean overall.
    assert select_configurations(LUCKY, "val_accuracy", "max", select="pareto",
                                 max_time_ratio=3).choices[0].config_id == "c2"


def test_ties_go_to_the_smaller_spread_then_the_id():
    t = table([("b", 0, "completed", 0.90, 1.0), ("b", 1, "completed", 0.94, 1.0),
               ("a", 0, "completed", 0.91, 1.0), ("a", 1, "completed", 0.93, 1.0)])
    assert select_configurations(t, "val_accuracy", "max").choices[0].config_id == "a"  # same mean 0.92, s.d. smaller


@pytest.mark.parametrize(("metric", "mode", "key"), [
    ("accuracy", None, "--metric"), ("val_accuracy", "min", "--mode"), ("wall_time_s", "max", "--mode"),
    ("val_loss", "sideways", "--mode")])
def test_bad_metric_or_mode_is_a_config_error(metric, mode, key):
    with pytest.raises(ConfigError) as e:
        check_metric(metric, mode)
    assert e.value.key == key


def test_no_finished_trial_and_bad_options_are_errors():
    with pytest.raises(ConfigError, match="no finished trial"):
        select_configurations(table([("c1", 0, "running", None, None)]), "val_accuracy", "max")
    with pytest.raises(ConfigError, match="--max-time-ratio"):
        select_configurations(LUCKY, "val_accuracy", "max", select="pareto")
    with pytest.raises(ConfigError, match="--top"):
        select_configurations(LUCKY, "val_accuracy", "max", top=0)
