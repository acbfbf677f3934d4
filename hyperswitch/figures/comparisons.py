"""Arms of one study compared with a reference arm, seed by seed: a table and a forest plot.

An *arm* is a value of one factor of the study (a parameter such as ``variant`` or ``optimizer``, the policy, or the
corrector on/off; the factors of :mod:`hyperswitch.figures.ablations`). Two runs are a *pair* when they have the
same seed (same initialisation and batch order) and the same value of every other parameter that varies within an
arm (a task, a learning rate of a grid; never one the arm itself sets, as ``variant`` sets ``T1``). Per arm the
table gives:

- its runs (completed or diverged; running, stopped and error trials are left out and counted),
- the bimodal rule of :func:`hyperswitch.figures._stats.split_outcome`: runs that diverged or have no value of the
  metric are a rate with its Wilson interval, and the mean ± s.d. is over the other runs only,
- against the reference arm: the mean paired difference (arm − reference) with its 95% interval (Student t on the
  differences, or a percentile bootstrap), the number of pairs and the runs that are not pairs and why, the
  difference of the failure rates (Newcombe's interval), and whether each interval excludes 0.

With ``split`` (a task, say) every value of it gets its own arms and pairs: differences are not pooled across it.

*Tuned* comparisons (``tune_over``, :func:`choose_cell`): each arm at its own best cell of the tuning parameters
(``lr_scale`` × ``damping``, say), paired by seed. Per arm (and split value) a *cell* is a combination of the
``tune_over`` values among the arm's runs; the rule:

- a tuning parameter with a single value among the arm's runs (or none: NaN, not set) is not tuned for that arm;
- one the arm does not use (its runs repeat identically across its values: same seed, same values of the other
  tuning parameters and pairing columns, same value of the metric or failed alike, in every such group, and at
  least one group has two runs with a value, as SGD's rows repeat at every damping) is pooled: of each group the
  run at the parameter's smallest value is kept (they are the same run), and the parameter is not part of the
  cell;
- the cells compared are those with the most runs (a cell whose other seeds have not run yet is not compared);
- a cell's score is its mean over its runs with a failed run (diverged, or no value) counted as the arm's worst
  finite value; cells rank by (more than half of their runs failed, score, failure rate, the cell's values in
  order): a cell whose runs mostly fail ranks after every other, and one failure costs what the worst run costs;
- the arm's row is then the chosen cell's runs, and pairs share ``seed`` and the other pairing columns, not the
  tuning parameters nor a column they set (a derived learning rate ``lr_x = base × lr_scale``: a column that takes
  one value in every cell of every arm).

A cell at the first or last of a numeric tuning parameter's sorted values among the arm's runs is *on the grid's
edge*: the optimum may lie outside the grid (extend it). The same seeds that chose a cell measure it, so the
differences are optimistic; ``holdout`` chooses each arm's cell on the first half of the study's sorted seeds and
measures the differences on the other half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hyperswitch.figures import ablations as fa
from hyperswitch.figures._common import METRIC_SCALE, PALETTE, axis, figure, metric_label
from hyperswitch.figures._stats import (
    PAIRED_METHODS,
    RATE_DIFF_METHOD,
    Outcome,
    PairedDiff,
    Rate,
    RateDiff,
    fmt,
    paired_difference,
    rate_difference,
    split_outcome,
    wilson,
)
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.schema import COMPLETED, DIVERGED, METRICS

NONE = fa.NONE
MIN_PAIRS = 10  # a headline comparison needs at least this many pairs (issue 16)
OUTCOME_STATUSES = (COMPLETED, DIVERGED)
_ARM_SETS = {fa.CORRECTOR: ("T1",)}  # columns a derived factor is made of: never a pairing column


WALL_TIME_METRICS = ("wall_time_s", "time_to_target_s", "samples_per_s")
WALL_TIME_NOTE = ("wall times of different trials (run at different moments, under different machine load) are "
                  "not a speed result: use step counts, or runs side by side in one process")


def failure_label(metric: str) -> str:
    """What a run without a value of ``metric`` means."""
    if metric == "time_to_target_s":
        return "diverged or never reached the target"
    if metric == "switch_step":
        return "diverged or never switched"
    return "diverged or no value"


@dataclass(frozen=True)
class TunedCell:
    """An arm's chosen cell in a tuned comparison (:func:`choose_cell`)."""

    values: dict[str, object]  # tuned parameter -> its chosen value
    fixed: dict[str, object]  # tuning parameter with one value (None: not set) among the arm's runs -> it
    unused: dict[str, int]  # tuning parameter the arm does not use (identical runs) -> how many values it takes
    edges: dict[str, str]  # tuned parameter whose chosen value is on the grid's edge -> "smallest" or "largest"
    cells: int  # cells compared (those with the most runs)
    fewer: int  # cells with fewer runs, not compared
    runs: int  # runs per compared cell (among the seeds that choose)
    score: float  # the chosen cell's mean, a failed run counted as the arm's worst finite value
    failed: float  # the chosen cell's failure rate (among the seeds that choose)

    @property
    def cell(self) -> str:
        """``damping=0.0001, lr_scale=30`` (and what was not tuned)."""
        parts = [f"{k}={_value_text(v)}" for k, v in self.values.items()]
        parts += [f"{k}={_value_text(v)} (its only value)" if v is not None else f"{k} not set"
                  for k, v in self.fixed.items()]
        parts += [f"{k} not used (same runs at its {n} values)" for k, n in self.unused.items()]
        return ", ".join(parts) or "-"

    @property
    def short(self) -> str:
        """The chosen values alone (``lr_scale=30, damping=0.0001``), for the forest plot's labels."""
        return ", ".join(f"{k}={_value_text(v)}" for k, v in self.values.items()) or "-"

    @property
    def edge_text(self) -> str:
        if not self.edges:
            return ""
        where = ", ".join(f"{k} {side}" for k, side in self.edges.items())
        return f"on the grid's edge ({where}): extend the grid"

    @property
    def text(self) -> str:
        """The table's "tuned cell": the cell, how many it was chosen from, the edge warning."""
        of = f"best of {self.cells} cell{'s' if self.cells != 1 else ''}"
        if self.fewer:
            of += f" with {self.runs} runs ({self.fewer} with fewer not compared)"
        return f"{self.cell}; {of}" + (f"; {self.edge_text}" if self.edges else "")


def _value_text(v: object) -> str:
    if v is None:
        return "none"
    return v if isinstance(v, str) else fmt(v)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ArmRow:
    split: str  # the value of the split factor ("" when not split)
    arm: str  # the arm's label (as on the Ablations page: "variant = mixer")
    is_reference: bool
    outcome: Outcome  # runs, failure rate, mean ± s.d. over the runs that did not fail
    diverged: Rate  # runs whose status is "diverged"
    paired: PairedDiff | None  # arm - reference (None for the reference itself)
    failed_diff: RateDiff | None  # failure rate of the arm - of the reference
    tuned: TunedCell | None = None  # a tuned comparison: the arm's chosen cell

    @property
    def verdict(self) -> str:
        """A helper for a verdict, not the verdict: which side of 0 the paired interval lies on."""
        p = self.paired
        if p is None:
            return "reference"
        if p.n < 2:
            return "no interval (under 2 pairs)"
        if not p.excludes_zero:
            return "CI includes 0"
        return "higher (CI excludes 0)" if p.mean > 0 else "lower (CI excludes 0)"


@dataclass(frozen=True)
class Comparisons:
    metric: str
    mode: str  # which way the metric is better
    factor: str  # the arm factor
    reference: str  # the reference arm's label
    split: str  # NONE or a factor
    method: str  # "t" or "bootstrap"
    pair_on: list[str]  # what a pair shares: "seed" and the other parameters that vary within an arm
    rows: list[ArmRow]
    left_out: dict[str, int]  # status -> trials that are not an outcome (running, stopped, error)
    tune_over: list[str] = field(default_factory=list)  # a tuned comparison: the tuning parameters
    holdout: bool = False  # cells chosen on ``choose_seeds``, differences over ``measure_seeds``
    choose_seeds: list[object] = field(default_factory=list)  # tuned: the seeds that choose each arm's cell
    measure_seeds: list[object] = field(default_factory=list)  # tuned: the seeds of the rows (all without holdout)
    notes: list[str] = field(default_factory=list)  # arms left out of a tuned comparison, and why

    @property
    def tuned(self) -> bool:
        return bool(self.tune_over)

    @property
    def bimodal(self) -> bool:
        return any(r.outcome.bimodal for r in self.rows)


def arm_labels(trials: pd.DataFrame, factor: str) -> list[str]:
    """The arms of ``factor`` in this study, in the order the table lists them."""
    labels = fa.factor_labels(trials, factor)
    return sorted(labels.dropna().astype(str).unique().tolist(), key=_natural_label)


def _natural_label(s: str) -> tuple[str, float, str]:
    head, _, tail = s.rpartition(" = ")
    try:
        return (head, float(tail), "")
    except ValueError:
        return (head, math.inf, s)


BASELINES = ("first_order", "baseline", "constant", "off", "none", "false", "0", "sgd", "sgdm", "single",
             "corrector off")


def default_reference(labels: Sequence[str]) -> str | None:
    """A baseline-looking arm (its value first_order, baseline, constant, off, none, false, 0, sgd, sgdm, single; the
    corrector off), else the first."""
    if not labels:
        return None
    values = [lab.rpartition(" = ")[2].strip().lower() for lab in labels]
    for hint in BASELINES:
        for lab, v in zip(labels, values, strict=True):
            if v == hint or v.startswith(hint + ":") or v == f"single: {hint}":
                return lab
    return labels[0]


def _label_key(text: str) -> str:
    """``text`` with the spaces around its ``=`` as arm labels write them (``variant=mixer``: ``variant = mixer``)."""
    head, eq, tail = text.strip().partition("=")
    return f"{head.strip()} = {tail.strip()}" if eq else text.strip()


def find_arms(labels: Sequence[str], arm: str) -> list[str]:
    """The arms among ``labels`` that ``arm`` names: the one whose full label it is (``variant = iomt_prose``, the
    spaces around ``=`` optional), else those whose value it is (``iomt_prose``: the label after `` = ``; a label
    with no ``=``, such as ``corrector off`` or a policy, is its own value)."""
    full = [lab for lab in labels if lab == arm.strip() or lab == _label_key(arm)]
    return full or [lab for lab in labels if lab.rpartition(" = ")[2] == arm.strip()]


def outcome_arms(trials: pd.DataFrame, factor: str) -> list[str]:
    """The arms of ``factor`` that :func:`comparison_data` compares: those of the completed or diverged trials."""
    done = trials[trials["status"].astype(str).isin(OUTCOME_STATUSES)] if "status" in trials else trials
    return arm_labels(done, factor) if len(done) else []


def pairing_columns(trials: pd.DataFrame, factor: str, parameters: Sequence[str],
                    arm: pd.Series | None = None) -> list[str]:
    """``seed`` and every parameter (not the factor, nor a column the factor is made of) that takes more than one
    value within some arm: two runs pair when they agree on all of them."""
    arm = fa.factor_labels(trials, factor) if arm is None else arm
    skip = {factor, *_ARM_SETS.get(factor, ())}
    out = ["seed"] if "seed" in trials else []
    for p in parameters:
        if p in skip or p not in trials or p in out:
            continue
        keys = trials[p].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v))
        if (keys.groupby(arm.to_numpy(), dropna=False).nunique(dropna=False) > 1).any():
            out.append(p)
    return out


def _plain(v: object) -> object:
    """A key value that compares equal to itself (NaN -> None, numpy scalars -> Python)."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _key_text(key: object, names: Sequence[str]) -> str:
    vals = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{n} {fmt(v) if not isinstance(v, str) else v}" for n, v in zip(names, vals, strict=True))


def tune_choices(trials: pd.DataFrame, parameters: Sequence[str], factor: str) -> list[str]:
    """The parameters a comparison of ``factor`` can tune over: the study's parameters that are columns of the
    trials, but not the factor, a column the factor is made of (``T1`` of the corrector), nor ``seed``."""
    skip = {factor, "seed", *_ARM_SETS.get(factor, ())}
    return [p for p in dict.fromkeys(parameters) if p in trials.columns and p not in skip]


def check_tune_over(trials: pd.DataFrame, parameters: Sequence[str], factor: str, tune_over: Sequence[str],
                    split: str = NONE) -> list[str]:
    """``tune_over`` without repeats, or a ``ValueError`` naming the first name that cannot be tuned over."""
    names = list(dict.fromkeys(str(n).strip() for n in tune_over))
    choices = tune_choices(trials, parameters, factor)
    for n in names:
        if n == "seed":
            raise ValueError("seed pairs the runs: it cannot be tuned over")
        if n == factor:
            raise ValueError(f"{n} is the factor whose arms are compared: it cannot be tuned over")
        if n in _ARM_SETS.get(factor, ()):
            raise ValueError(f"{n} is what the arms of {factor} set: it cannot be tuned over")
        if n == split:
            raise ValueError(f"{n} is the split (compared separately per value): it cannot also be tuned over")
        if n not in choices:
            raise ValueError(f"{n!r} is not a parameter of this study that can be tuned over; its parameters: "
                             + (", ".join(choices) or "none"))
    return names


def _value_keys(col: pd.Series) -> list[object]:
    return col.map(_plain).tolist()


def _hashable(v: object) -> object:
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return v


def _determined(done: pd.DataFrame, labels: pd.Series, tune: Sequence[str], column: str) -> bool:
    """``column`` takes one value in every cell (arm and ``tune`` values) of ``done``: the tuning parameters set
    it (a derived learning rate), so it is no pairing column of a tuned comparison."""
    keys = done[column].map(lambda v: None if _plain(v) is None else repr(v))
    by = [labels.to_numpy(), *(done[c].map(lambda v: repr(_plain(v))).to_numpy() for c in tune)]
    return bool((keys.groupby(by, dropna=False).nunique(dropna=False) <= 1).all())


def _sort_key(v: object) -> tuple[int, float, str]:
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, bool):
        return (1, 0.0, str(v))
    if isinstance(v, int | float):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def _same_runs(runs: Sequence[int], values: np.ndarray, failed: np.ndarray) -> bool:
    """The runs have the same outcome: all failed, or none failed and equal values (to 1e-9 relative)."""
    if failed[list(runs)].all():
        return True
    if failed[list(runs)].any():
        return False
    v = values[list(runs)]
    return bool(np.all(np.abs(v - v[0]) <= 1e-9 * max(1.0, abs(float(v[0])))))


def choose_cell(idx: Sequence[int], tune: Sequence[str], cols: dict[str, list[object]], pair_keys: Sequence[object],
                values: np.ndarray, failed: np.ndarray, choose: np.ndarray, mode: str
                ) -> tuple[list[int], TunedCell] | None:
    """One arm's tuned cell (the rule of the module's docstring). ``idx``: the arm's runs (rows); ``cols``: each
    tuning parameter's value per row (None: missing); ``pair_keys``: each row's key on the other pairing columns
    (seed first); ``choose``: per row, whether its seed chooses. Returns (the chosen cell's runs, all seeds, one per
    key where a parameter is not used; the cell), or None when no run of the arm has a seed that chooses."""
    runs = list(idx)
    fixed: dict[str, object] = {}
    unused: dict[str, int] = {}
    tuned: list[str] = []
    for p in tune:
        vals = sorted({_hashable(cols[p][i]) for i in runs}, key=_sort_key)
        if len(vals) <= 1:
            fixed[p] = vals[0] if vals else None
            continue
        others = [q for q in tune if q != p and q not in unused]
        groups: dict[object, list[int]] = {}
        for i in runs:
            groups.setdefault((pair_keys[i], *(_hashable(cols[q][i]) for q in others)), []).append(i)
        repeated = [g for g in groups.values() if len(g) > 1]
        if (any(not failed[g].all() for g in repeated)
                and all(_same_runs(g, values, failed) for g in repeated)):
            unused[p] = len(vals)
            runs = sorted(min(g, key=lambda i: _sort_key(_hashable(cols[p][i]))) for g in groups.values())
        else:
            tuned.append(p)
    sign = -1.0 if mode == "max" else 1.0  # smaller sign * value is better
    chosen_runs = [i for i in runs if choose[i]]
    if not chosen_runs:
        return None
    finite = [float(values[i]) for i in chosen_runs if not failed[i]]
    worst = (min(finite) if mode == "max" else max(finite)) if finite else math.nan
    cells: dict[tuple[object, ...], list[int]] = {}
    for i in chosen_runs:
        cells.setdefault(tuple(_hashable(cols[p][i]) for p in tuned), []).append(i)
    most = max(len(v) for v in cells.values())
    candidates = {k: v for k, v in cells.items() if len(v) == most}

    def rank(item: tuple[tuple[object, ...], list[int]]) -> tuple[object, ...]:
        key, members = item
        fail = float(np.mean([failed[i] for i in members]))
        score = float(np.mean([worst if failed[i] else float(values[i]) for i in members]))
        return (fail > 0.5, sign * score if math.isfinite(score) else math.inf, fail,
                tuple(_sort_key(v) for v in key))

    best, members = min(candidates.items(), key=rank)
    fail = float(np.mean([failed[i] for i in members]))
    score = float(np.mean([worst if failed[i] else float(values[i]) for i in members]))
    chosen = dict(zip(tuned, best, strict=True))
    edges: dict[str, str] = {}
    for p in tuned:
        grid = sorted({v for i in runs if isinstance(v := _hashable(cols[p][i]), int | float)
                       and not isinstance(v, bool)})
        v = chosen[p]
        if len(grid) >= 2 and isinstance(v, int | float) and not isinstance(v, bool):
            if v == grid[0]:
                edges[p] = "smallest"
            elif v == grid[-1]:
                edges[p] = "largest"
    kept = [i for i in runs if tuple(_hashable(cols[p][i]) for p in tuned) == best]
    return kept, TunedCell(chosen, fixed, unused, edges, len(candidates), len(cells) - len(candidates), most, score,
                           fail)


def comparison_data(trials: pd.DataFrame, parameters: Sequence[str], factor: str, metric: str,
                    reference: str | None = None, split: str = NONE, method: str = "t",
                    mode: str | None = None, tune_over: Sequence[str] = (), holdout: bool = False) -> Comparisons:
    """Every arm of ``factor`` against ``reference`` (an arm label; default :func:`default_reference`) on
    ``metric`` (see the module's docstring). ``tune_over``: each arm at its own best cell of these parameters
    (:func:`choose_cell`), chosen on the first half of the sorted seeds and measured on the other half when
    ``holdout``. Raises :class:`NotApplicable` when there is nothing to compare, ``ValueError`` for a name
    ``tune_over`` cannot hold (:func:`check_tune_over`) or ``holdout`` without ``tune_over``."""
    if method not in PAIRED_METHODS:
        raise ValueError(f"method must be one of {', '.join(PAIRED_METHODS)}, but got {method!r}")
    if split == factor:
        split = NONE
    tune = check_tune_over(trials, parameters, factor, tune_over, split)
    if holdout and not tune:
        raise ValueError("held-out seeds apply to a tuned comparison: give the parameters to tune over")
    if metric not in trials.columns:
        raise NotApplicable(f"this study has no {metric_label(metric)} ({metric}) column")
    if "status" in trials:
        status = trials["status"].astype(str)
        done = trials[status.isin(OUTCOME_STATUSES)]
        left_out = {str(k): int(v) for k, v in status[~status.isin(OUTCOME_STATUSES)].value_counts().items()}
    else:
        done, left_out = trials, {}
    if not len(done):
        raise NotApplicable("no trial has completed or diverged yet")
    labels = fa.factor_labels(done, factor).astype(str)
    arms = sorted(labels.unique().tolist(), key=_natural_label)
    if len(arms) < 2:
        raise NotApplicable(f"{factor} takes a single value among the finished trials: nothing to compare")
    reference = reference if reference in arms else default_reference(arms)
    assert reference is not None
    pair_on = pairing_columns(done, factor, parameters, labels)
    if "seed" not in pair_on:
        raise NotApplicable("the trials have no seed column: runs cannot be paired")
    mode = mode or METRICS.get(metric) or "max"
    if tune:
        if _factor_set_by(done, labels, tune):
            raise NotApplicable(f"{factor} is set by {', '.join(tune)} (one arm per cell): tuning over them leaves "
                                "nothing to compare")
        pair_on = [c for c in pair_on if c == "seed" or (c not in tune and not _determined(done, labels, tune, c))]
    values = pd.to_numeric(done[metric], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    diverged = (done["status"].astype(str) == DIVERGED).to_numpy() if "status" in done else np.zeros(len(done), bool)
    failed = diverged | ~np.isfinite(values)
    keys = list(zip(*(done[c].map(_plain).tolist() for c in pair_on), strict=True))
    seeds = done["seed"].map(_plain).tolist()
    choose = measure = np.ones(len(done), dtype=bool)
    choose_seeds: list[object] = []
    measure_seeds: list[object] = []
    if tune:
        order = sorted({_hashable(v) for v in seeds if v is not None}, key=_sort_key)
        if holdout:
            if len(order) < 2:
                raise NotApplicable(f"held-out seeds need at least 2 seeds; the finished trials have {len(order)}")
            half = len(order) // 2
            choose_seeds, measure_seeds = order[:half], order[half:]
            first = set(choose_seeds)
            choose = np.array([_hashable(v) in first for v in seeds], dtype=bool)
            measure = ~choose
        else:
            choose_seeds = measure_seeds = order
    cols = {p: _value_keys(done[p]) for p in tune}
    if split == NONE:
        parts = [("", np.ones(len(done), dtype=bool))]
    else:
        sv = fa.factor_labels(done, split).astype(str).to_numpy()
        parts = [(s, sv == s) for s in sorted(set(sv.tolist()), key=_natural_label)]
    lab = labels.to_numpy()
    rows: list[ArmRow] = []
    notes: list[str] = []
    for sname, in_part in parts:
        per_arm: dict[str, tuple[Outcome, Rate, dict[object, float], list[tuple[object, str]], TunedCell | None]] = {}
        for a in arms:
            m = in_part & (lab == a)
            if not m.any():
                continue
            idx = np.flatnonzero(m)
            cell: TunedCell | None = None
            if tune:
                got = choose_cell(idx.tolist(), tune, cols, keys, values, failed, choose, mode)
                where = f"{a} ({sname})" if sname else a
                if got is None:
                    notes.append(f"{where}: no run among the seeds that choose a cell, left out")
                    continue
                kept, cell = got
                idx = np.array([i for i in kept if measure[i]], dtype=int)
                if not len(idx):
                    notes.append(f"{where}: its cell {cell.cell} has no run among the measured seeds, left out")
                    continue
            outcome = split_outcome(values[idx], failed[idx])
            by_key: dict[object, list[float]] = {}
            for i in idx:
                by_key.setdefault(keys[i], []).append(math.nan if failed[i] else float(values[i]))
            single = {k: v[0] for k, v in by_key.items() if len(v) == 1}
            dup = [(k, f"{len(v)} runs of {a} share it") for k, v in by_key.items() if len(v) > 1]
            per_arm[a] = (outcome, wilson(int(diverged[idx].sum()), len(idx)), single, dup, cell)
        if reference not in per_arm:
            continue
        ref_out, _, ref_vals, ref_dup, _ = per_arm[reference]
        for a, (outcome, div, vals, dup, cell) in per_arm.items():
            if a == reference:
                rows.append(ArmRow(sname, a, True, outcome, div, None, None, cell))
                continue
            p = paired_difference(vals, ref_vals, method, a, reference)
            dropped: list[tuple[object, str]] = [(_key_text(k, pair_on), why)
                                                 for k, why in [*p.dropped, *dup, *ref_dup]]
            p = PairedDiff(p.n, p.mean, p.sd, p.low, p.high, p.method, [_key_text(k, pair_on) for k in p.keys],
                           p.diffs, dropped)
            rows.append(ArmRow(sname, a, False, outcome, div, p, rate_difference(outcome.failed, ref_out.failed),
                               cell))
    if not any(not r.is_reference for r in rows):
        raise NotApplicable(f"no arm shares a {split} with the reference {reference}: nothing to compare"
                            if split != NONE else f"the reference {reference} has no finished run"
                            + (" among the measured seeds" if holdout else ""))
    return Comparisons(metric, mode, factor, reference, split, method, pair_on, rows, left_out, tune, holdout,
                       choose_seeds, measure_seeds, notes)


def _factor_set_by(done: pd.DataFrame, labels: pd.Series, tune: Sequence[str]) -> bool:
    """Every cell of the tuning parameters holds a single arm (the factor is derived from them)."""
    by = [done[c].map(lambda v: repr(_plain(v))).to_numpy() for c in tune]
    return bool((labels.groupby(by, dropna=False).nunique(dropna=False) <= 1).all())


# --- the table ------------------------------------------------------------------------------------------------

def _v(metric: str, v: float, signed: bool = False) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v * METRIC_SCALE.get(metric, 1.0):{'+' if signed else ''}.4g}"


def _rate_text(r: Rate) -> str:
    if not r.n:
        return "-"
    return f"{r.k}/{r.n} ({100 * r.rate:.0f}%, CI {100 * r.low:.0f}\u2013{100 * r.high:.0f}%)"


def _unpaired_text(p: PairedDiff) -> str:
    if not p.dropped:
        return ""
    reasons: dict[str, int] = {}
    for _, why in p.dropped:
        reasons[why] = reasons.get(why, 0) + 1
    return "; ".join(f"{n} {why}" for why, n in reasons.items())


TABLE_COLUMNS = ("split", "arm", "tuned cell", "runs", "failed", "mean \u00b1 s.d.", "paired difference [95% CI]",
                 "pairs", "verdict helper", "failure rate difference [95% CI]", "not paired")


def comparison_rows(d: Comparisons) -> list[dict[str, Any]]:
    """The table as rows of text (the dashboard's and the report's): one per arm (and split value)."""
    out = []
    for r in d.rows:
        o = r.outcome
        ms = f"{_v(d.metric, o.mean)} \u00b1 {_v(d.metric, o.sd)}" if math.isfinite(o.sd) else _v(d.metric, o.mean)
        ms += f" (n {len(o.values)}{', runs that did not fail' if o.bimodal else ''})"
        row: dict[str, Any] = {"split": r.split, "arm": r.arm + (" (reference)" if r.is_reference else ""),
                               "tuned cell": r.tuned.text if r.tuned else "", "runs": o.n,
                               "failed": _rate_text(o.failed), "mean \u00b1 s.d.": ms}
        p, fd = r.paired, r.failed_diff
        if p is None or fd is None:
            row.update({"paired difference [95% CI]": "", "pairs": "", "verdict helper": "reference",
                        "failure rate difference [95% CI]": "", "not paired": ""})
        else:
            ci = f" [{_v(d.metric, p.low, True)}, {_v(d.metric, p.high, True)}]" if math.isfinite(p.low) else ""
            row["paired difference [95% CI]"] = _v(d.metric, p.mean, True) + ci
            row["pairs"] = f"{p.n}" + (f" (< {MIN_PAIRS})" if p.n < MIN_PAIRS else "")
            row["verdict helper"] = r.verdict
            row["failure rate difference [95% CI]"] = (
                f"{100 * fd.diff:+.0f} pp [{100 * fd.low:+.0f}, {100 * fd.high:+.0f}]"
                + (" excludes 0" if fd.excludes_zero else "")) if math.isfinite(fd.diff) else "-"
            row["not paired"] = _unpaired_text(p)
        out.append(row)
    for col, drop in (("split", d.split == NONE), ("tuned cell", not d.tuned)):
        if drop:
            for row in out:
                del row[col]
    return out


def _seeds_text(seeds: Sequence[object]) -> str:
    """``0-4`` for consecutive integers, else the list."""
    ints = [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)]
    if len(ints) == len(seeds) and len(ints) >= 2 and ints == list(range(ints[0], ints[0] + len(ints))):
        return f"{ints[0]}-{ints[-1]}"
    return ", ".join(str(s) for s in seeds)


def tuned_text(d: Comparisons) -> str:
    """What a tuned comparison is, and whether its differences are optimistic ("" when not tuned)."""
    if not d.tuned:
        return ""
    what = (f"Tuned over {', '.join(d.tune_over)}: each arm at its own best cell (mean over its runs, a failed run "
            "counted as the arm's worst value; a cell with more than half of its runs failed ranks last; only the "
            "cells with the most runs compete)")
    if d.holdout:
        return (what + f"; held-out seeds: the cells were chosen on seeds {_seeds_text(d.choose_seeds)} and the "
                f"rows and differences are over seeds {_seeds_text(d.measure_seeds)}.")
    return (what + ". The same seeds chose each cell and measure it: the differences are optimistic (use held-out "
            "seeds for an unbiased estimate).")


def edge_notes(d: Comparisons) -> list[str]:
    """``optimizer = adamw: lr_scale=100 the largest`` for each arm whose cell is on the grid's edge."""
    out = []
    for r in d.rows:
        if r.tuned and r.tuned.edges:
            where = f"{r.arm} ({r.split})" if r.split else r.arm
            out.append(where + ": " + ", ".join(f"{k}={_value_text(r.tuned.values[k])} is its {side}"
                                                for k, side in r.tuned.edges.items()))
    return out


def comparison_note(d: Comparisons) -> str:
    """How to read the table: what a pair is, the methods, what was left out."""
    parts = [f"Pairs share {', '.join(d.pair_on)}; difference = arm \u2212 {d.reference} on "
             f"{metric_label(d.metric)} ({d.mode} is better); interval: {PAIRED_METHODS[d.method]}.",
             f"'failed' = {failure_label(d.metric)}, with the Wilson 95% interval; an arm with a failed run is "
             "bimodal: its mean \u00b1 s.d. is over the runs that did not fail, and the failure rates are compared "
             f"by {RATE_DIFF_METHOD}.",
             f"Under {MIN_PAIRS} pairs a comparison is not a headline result."]
    if d.tuned:
        parts.append(tuned_text(d))
        edges = edge_notes(d)
        if edges:
            parts.append("On the grid's edge (the best may lie outside the grid: extend it): " + "; ".join(edges)
                         + ".")
        if d.notes:
            parts.append("Not compared: " + "; ".join(d.notes) + ".")
    if d.metric in WALL_TIME_METRICS:
        parts.append(f"Caution: {WALL_TIME_NOTE}.")
    if d.left_out:
        parts.append("Left out (not an outcome): " + ", ".join(f"{n} {s}" for s, n in sorted(d.left_out.items())) + ".")
    return " ".join(parts)


# --- the forest plot ------------------------------------------------------------------------------------------

def forest_figure(d: Comparisons) -> go.Figure:
    """One row per arm (and split value): the mean paired difference with its 95% interval, a line at 0; when an
    arm is bimodal, a second panel with the difference of the failure rates (Newcombe's interval)."""
    s = METRIC_SCALE.get(d.metric, 1.0)
    rows = [r for r in d.rows if r.paired is not None]
    splits = sorted({r.split for r in rows}, key=_natural_label)
    ylab = [(f"{r.arm} ({r.split})" if r.split else r.arm)
            + (f" [{r.tuned.short}{'; grid edge' if r.tuned.edges else ''}]" if r.tuned else "") for r in rows]
    two = d.bimodal
    data: list[dict[str, Any]] = []
    for i, sp in enumerate(splits):
        sel = [k for k, r in enumerate(rows) if r.split == sp]
        ps = [rows[k].paired for k in sel]
        mean = np.array([p.mean if p else np.nan for p in ps]) * s
        lo = np.array([p.low if p else np.nan for p in ps]) * s
        hi = np.array([p.high if p else np.nan for p in ps]) * s
        color = PALETTE[i % len(PALETTE)]
        name = sp or "paired difference"
        data.append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                     "x": mean.tolist(), "y": [ylab[k] for k in sel], "marker": {"color": color, "size": 10,
                                                                         "symbol": ["circle" if p and p.n >= MIN_PAIRS
                                                                                    else "circle-open" for p in ps]},
                     "error_x": {"type": "data", "symmetric": False, "array": np.nan_to_num(hi - mean).tolist(),
                                 "arrayminus": np.nan_to_num(mean - lo).tolist(), "visible": True, "color": color},
                     "customdata": [[p.n if p else 0, float(lo[j]), float(hi[j])] for j, p in enumerate(ps)],
                     "hovertemplate": "%{y}<br>difference %{x:.4g}<br>95% CI [%{customdata[1]:.4g}, "
                                      "%{customdata[2]:.4g}]<br>pairs %{customdata[0]}<extra></extra>"})
        if two:
            fds = [rows[k].failed_diff for k in sel]
            fm = np.array([f.diff if f else np.nan for f in fds]) * 100
            flo = np.array([f.low if f else np.nan for f in fds]) * 100
            fhi = np.array([f.high if f else np.nan for f in fds]) * 100
            data.append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                         "showlegend": False, "xaxis": "x2", "yaxis": "y", "x": fm.tolist(),
                         "y": [ylab[k] for k in sel],
                         "marker": {"color": color, "size": 10, "symbol": "diamond"},
                         "error_x": {"type": "data", "symmetric": False, "array": np.nan_to_num(fhi - fm).tolist(),
                                     "arrayminus": np.nan_to_num(fm - flo).tolist(), "visible": True, "color": color},
                         "hovertemplate": "%{y}<br>failure rate difference %{x:.0f} pp<extra></extra>"})
    label = metric_label(d.metric)
    layout: dict[str, Any] = {
        "xaxis": axis(f"{label}: arm \u2212 reference", domain=[0, 0.6] if two else [0, 1],
                      zeroline=True, zerolinecolor="#444", zerolinewidth=1),
        "yaxis": axis("", type="category", autorange="reversed"),
        "showlegend": len(splits) > 1,
        "legend": {"title": {"text": d.split}, "orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"},
        "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                    "line": {"color": "#444", "width": 1, "dash": "dot"}}],
    }
    if two:
        layout["xaxis2"] = axis("failure rate: arm \u2212 reference (pp)", domain=[0.7, 1], anchor="y")
        layout["shapes"].append({"type": "line", "xref": "x2", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                                 "line": {"color": "#444", "width": 1, "dash": "dot"}})
    ns = ", ".join(str(r.paired.n) for r in rows[:12] if r.paired) + (" ..." if len(rows) > 12 else "")
    sub = (f"point: mean paired difference (pairs share {', '.join(d.pair_on)}; pairs: {ns}); bar: 95% CI "
           f"({'Student t' if d.method == 't' else 'percentile bootstrap'}); open point: under {MIN_PAIRS} pairs"
           + (f"<br>right: rate of runs that {failure_label(d.metric).replace('or no value', 'or have no value')}, "
              "difference with Newcombe's 95% CI" if two else "")
           + (f"<br>caution: {WALL_TIME_NOTE}" if d.metric in WALL_TIME_METRICS else "")
           + (f"<br>{_tuned_subtitle(d)}" if d.tuned else ""))
    height = max(320, 170 + 44 * len(rows) + (60 if len(splits) > 1 else 0) + (60 if d.tuned else 0))
    layout["margin"] = {"l": 60, "r": 20, "t": (100 if two else 84) + (54 if d.tuned else 0),
                        "b": 110 if len(splits) > 1 else 60}
    return figure(data, layout, f"{label}: paired difference vs {d.reference}", sub, height=height)


def _tuned_subtitle(d: Comparisons) -> str:
    refs = sorted({r.tuned.short for r in d.rows if r.is_reference and r.tuned})
    text = (f"tuned over {', '.join(d.tune_over)}: each arm at its own best cell"
            + (f" (reference at {'; '.join(refs)})" if refs else ""))
    edge = "; grid edge: extend the grid" if any(r.tuned and r.tuned.edges for r in d.rows) else ""
    if d.holdout:
        return text + (f"<br>cells chosen on seeds {_seeds_text(d.choose_seeds)}, differences on seeds "
                       f"{_seeds_text(d.measure_seeds)} (held out)") + edge
    return text + "<br>the same seeds chose the cells and measure them: optimistic" + edge


def table_figure(d: Comparisons) -> go.Figure:
    """The table of :func:`comparison_rows` as a figure (for the report's HTML and PNG files)."""
    rows = comparison_rows(d)
    cols = [c for c in TABLE_COLUMNS if c in rows[0]]
    widths = {"split": 1.2, "arm": 1.6, "tuned cell": 2.6, "runs": 0.5, "failed": 1.5, "mean \u00b1 s.d.": 1.7,
              "pairs": 0.7,
              "paired difference [95% CI]": 1.8, "verdict helper": 1.4, "failure rate difference [95% CI]": 1.5,
              "not paired": 1.8}
    data = [{"type": "table", "columnwidth": [widths[c] for c in cols],
             "header": {"values": [f"<b>{c}</b>" for c in cols], "align": "left", "fill": {"color": "#EBF0F8"},
                        "font": {"size": 11}},
             "cells": {"values": [[str(r[c]) for r in rows] for c in cols], "align": "left", "font": {"size": 11},
                       "height": 24}}]
    height = 150 + (120 if d.tuned else 80) * len(rows) + (54 if d.tuned else 0)
    return figure(data, {"margin": {"l": 10, "r": 10, "t": 84 + (54 if d.tuned else 0), "b": 10}},
                  f"{metric_label(d.metric)}: every arm of {d.factor} vs {d.reference}",
                  f"pairs share {', '.join(d.pair_on)}; 95% CI: {PAIRED_METHODS[d.method]}; failed = "
                  f"{failure_label(d.metric)} (Wilson; differences: Newcombe)"
                  + (f"<br>{_tuned_subtitle(d)}" if d.tuned else ""), height=height)
