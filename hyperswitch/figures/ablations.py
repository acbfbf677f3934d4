"""Ablations: a metric per value of an on/off (or few-valued) factor, with error bars over runs.

Factors are the study's parameters that take 2 to 8 values (``select: random | cyclical | surrogate``,
``halving``, ``use_transferability``, ``compress``, ...), the policy, and ``corrector`` (on where ``T1 > 0``,
off where ``T1 = 0``) when a Mixer study varies ``T1`` through zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hyperswitch.figures._stats import fmt
from hyperswitch.figures.data import NotApplicable, policy_labels
from hyperswitch.figures.memory import GroupBars, group_bars_data

CORRECTOR, POLICY = "corrector", "policy"
MAX_LEVELS = 8
KNOWN = {
    "T1": "corrector length (T1 = 0 turns it off)",
    "select": "candidate selection (random / cyclical / surrogate)",
    "halving": "halving of the exploration weight",
    "use_transferability": "transferability term",
    "compress": "state compression (pca / rp)",
    "unit": "switch unit",
}


def ablation_factors(trials: pd.DataFrame, parameters: Sequence[str]) -> list[tuple[str, str]]:
    """(factor, label) pairs this study can compare."""
    out: list[tuple[str, str]] = []
    if "T1" in trials:
        t1 = pd.to_numeric(trials["T1"], errors="coerce")
        if (t1 == 0).any() and (t1 > 0).any():
            out.append((CORRECTOR, "corrector on / off (T1 > 0 vs T1 = 0)"))
    for p in parameters:
        if p in trials and 2 <= trials[p].nunique(dropna=True) <= MAX_LEVELS:
            out.append((p, f"{p}: {KNOWN[p]}" if p in KNOWN else p))
    if len(trials) and policy_labels(trials).nunique() > 1:
        out.append((POLICY, "policy"))
    return out


def factor_labels(trials: pd.DataFrame, factor: str) -> pd.Series:
    if factor == CORRECTOR:
        t1 = pd.to_numeric(trials["T1"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(np.where(t1 > 0, "corrector on", np.where(t1 == 0, "corrector off", "?")),
                         index=trials.index)
    if factor == POLICY:
        return policy_labels(trials)
    if factor not in trials:
        raise NotApplicable(f"this study has no parameter {factor!r}")
    return trials[factor].map(lambda v: f"{factor} = {fmt(v) if not isinstance(v, str) else v}")


def ablation_data(trials: pd.DataFrame, factor: str, metric: str, spread: str = "std") -> GroupBars:
    labels = factor_labels(trials, factor)
    if labels.nunique() < 2:
        raise NotApplicable(f"{factor} takes a single value in this study: nothing to compare")
    return group_bars_data(trials, labels, metric, spread, by=factor)
