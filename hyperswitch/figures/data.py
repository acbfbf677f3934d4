"""What the figure modules share: :class:`NotApplicable`, readable policy labels, background prefetching of a
study's columns for the dashboard, and small helpers.

Studies are read through :mod:`hyperswitch.results.cache` (cached per study file version, column-selective);
import its names from there.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperswitch.results.cache import study_table, study_version
from hyperswitch.results.fs import ObjectPath, study_path

__all__ = ["NotApplicable", "activity", "finite", "numeric", "policy_family", "policy_labels", "prefetch",
           "second_order_names", "warm_up"]

log = logging.getLogger("hyperswitch.figures")


class NotApplicable(ValueError):
    """A view does not apply to this study (the message says why, in plain words)."""


_PREFETCHING: set[tuple[Any, ...]] = set()
_PREFETCHING_LOCK = threading.Lock()
# Prefetch threads are daemons (a closing dashboard does not wait for a whole study's columns), but one still inside
# pyarrow while the interpreter finalises aborts or hangs the process ("terminate called without an active
# exception"): at exit they are told to stop and joined, which waits at most for the read in progress.
_PREFETCH_STOP = threading.Event()
_PREFETCH_THREADS: list[threading.Thread] = []


@atexit.register
def _stop_prefetching(timeout_s: float = 60.0) -> None:
    _PREFETCH_STOP.set()
    deadline = time.monotonic() + timeout_s
    for thread in list(_PREFETCH_THREADS):
        thread.join(max(0.0, deadline - time.monotonic()))


STEP_COLUMNS_BY_USE = (["step", "loss", "epoch"], ["val_accuracy", "val_loss", "elapsed_s", "lr"],
                       ["optimizer", "memory_bytes"])


_ACTIVITY = {"busy": 0, "last": 0.0}
_ACTIVITY_LOCK = threading.Lock()


def activity(busy: bool) -> None:
    """Views call this when they start (True) and end (False): prefetching waits for idle moments."""
    with _ACTIVITY_LOCK:
        _ACTIVITY["busy"] += 1 if busy else -1
        _ACTIVITY["last"] = time.monotonic()


def _wait_idle(quiet_s: float = 0.5, give_up_s: float = 120.0) -> bool:
    """Wait until no view has been computed for ``quiet_s`` (or ``give_up_s`` passed); False once told to stop."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        with _ACTIVITY_LOCK:
            idle = _ACTIVITY["busy"] <= 0 and time.monotonic() - _ACTIVITY["last"] > quiet_s
        if idle:
            break
        if _PREFETCH_STOP.wait(0.1):
            return False
    return not _PREFETCH_STOP.is_set()


def prefetch(root: str | Path | ObjectPath) -> None:
    """Read a study's step and event columns in a background thread while no view is being computed, a few
    columns at a time, so that the study's next views find them cached (two CPU cores are easily shared badly:
    the page that is open comes first). Once per study file version."""
    root = study_path(root)
    key = (str(root), study_version(root, "steps"), study_version(root, "events"))
    with _PREFETCHING_LOCK:
        if key in _PREFETCHING:
            return
        _PREFETCHING.add(key)

    def run() -> None:
        try:
            if not _wait_idle():
                return
            study_table(root, "events", ["step", "kind"])
            for cols in STEP_COLUMNS_BY_USE:
                if not _wait_idle():
                    return
                study_table(root, "steps", cols)
        except Exception as exc:  # a view will read again and report it
            log.debug("prefetch of %s failed: %s", root, exc)

    thread = threading.Thread(target=run, name=f"prefetch-{root.name}", daemon=True)
    with _PREFETCHING_LOCK:
        _PREFETCH_THREADS[:] = [t for t in _PREFETCH_THREADS if t.is_alive()]
        _PREFETCH_THREADS.append(thread)
    thread.start()


# --- helpers shared by figure modules ----------------------------------------------------------------------

SECOND_ORDER_FALLBACK = frozenset({"kfac", "foof", "shampoo", "ef", "ief", "sf"})
_second_order: frozenset[str] | None = None


def second_order_names() -> frozenset[str]:
    """Names of second-order optimizers, from the optimizer registry (imported once)."""
    global _second_order
    if _second_order is None:
        try:
            from hyperswitch.optim import registry

            _second_order = frozenset(registry.optimizer_names(order="second")) or SECOND_ORDER_FALLBACK
        except Exception:  # labels only: the known names are a fine fallback
            _second_order = SECOND_ORDER_FALLBACK
    return _second_order


def _per_policy(trials: pd.DataFrame, label: Any) -> pd.Series:
    """``label(policy_type, names)`` per trial, computed once per distinct (policy_type, optimizers) pair (a
    study has a handful of policies and may have 10,000 trials)."""
    if not len(trials):
        return pd.Series([], dtype=object, index=trials.index)
    ptype = trials["policy_type"].astype(object).fillna("?").astype(str) if "policy_type" in trials else \
        pd.Series("?", index=trials.index)
    opts = trials["optimizers"].astype(object).fillna("").astype(str) if "optimizers" in trials else \
        pd.Series("", index=trials.index)
    codes, pairs = pd.MultiIndex.from_arrays([ptype.to_numpy(), opts.to_numpy()]).factorize()
    labels = np.array([label(p, [n for n in o.split(",") if n]) for p, o in pairs], dtype=object)
    return pd.Series(labels[codes], index=trials.index)


def _policy_label(p: str, names: list[str]) -> str:
    if p in ("switch", "mixer") and len(names) == 2:
        return f"{p}: {names[0]} \u2192 {names[1]}"
    if names:
        return f"{p}: {', '.join(names)}"
    return p


def policy_labels(trials: pd.DataFrame) -> pd.Series:
    """A readable label per trial: ``switch: adam -> sgdm``, ``mixer: kfac -> sgdm``, ``single: sgdm``."""
    return _per_policy(trials, _policy_label)


def policy_family(trials: pd.DataFrame) -> pd.Series:
    """first-order / second-order / switching (phase 1 -> phase 2) / mixer / iomt, per trial."""
    second = second_order_names()

    def family(p: str, names: list[str]) -> str:
        if p in ("mixer", "iomt"):
            return p
        if p == "switch":
            return "switch (second \u2192 first order)" if names and names[0] in second else "switch"
        if names:
            return "second-order" if all(n in second for n in names) else "first-order"
        return p

    return _per_policy(trials, family)


def warm_up() -> None:
    """Import what the figures import lazily (Optuna's importance evaluators, SciPy's t distribution, the
    optimizer registry, plotly.py's validators) so that a server's first page does not pay for it."""
    import optuna.importance  # noqa: F401
    import scipy.stats  # noqa: F401

    from hyperswitch.figures.parameter import importance_data

    second_order_names()
    tiny = pd.DataFrame({"trial_id": [f"t{i}" for i in range(60)], "config_id": [f"c{i:02d}" for i in range(60)],
                         "status": "completed", "a": np.arange(60.0), "b": np.arange(60.0) % 7,
                         "val_accuracy": np.arange(60.0) % 11})
    for method in ("ped-anova", "fanova"):  # their first call imports and compiles more than the import does
        importance_data(tiny, ["a", "b"], "val_accuracy", "max", method)
    # plotly.py reads its validator table (a large JSON) when the first figure is built: not in a view.
    from hyperswitch.figures._common import figure

    figure([{"type": t} for t in ("scatter", "scattergl", "bar", "box", "heatmap", "parcoords")], {}, "warm-up")


def numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def finite(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[np.isfinite(a)]
