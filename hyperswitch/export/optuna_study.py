"""A study as an Optuna study (``hyperswitch export-optuna``), so that optuna-dashboard and
``optuna.visualization`` open it.

One Optuna trial per configuration, in config order: its sampled parameters with the space's own distributions
(from study.json), and as its values the mean over the configuration's seeds of each objective (the finite ones,
``math.fsum``: what the sweep's sampler was told). The Optuna study has one direction per objective (a
multi-objective study's ``metric``/``mode`` lists; ``--metric`` makes a single-objective export of another metric)
and the objectives as its metric names, so ``Study.best_trials`` and ``plot_pareto_front`` give its Pareto front.

- Constraints (study.json ``constraints``): each trial carries its constraint values (``Constraint.value`` of the
  seeds' mean of each constrained metric: feasible when every value is <= 0) in the ``constraints`` system attr,
  as the sweep's proposals tell Optuna's samplers (``hyperswitch.results.objectives.optuna_constraint_attrs``):
  Optuna reads them as ``FrozenTrial.constraints`` (``best_trials`` then holds feasible trials only, its plots
  mark the infeasible ones) and optuna-dashboard shows them. Its user attribute ``feasible`` says the same.
- A configuration none of whose seeds gave a finite value of some objective, or of some constrained metric, is a
  ``FAIL`` trial (the sampler was told it failed).
- Conditional parameters: a trial has only the parameters that apply to its configuration, each with its
  distribution, as a define-by-run Optuna study records them.

Each trial's user attributes hold the config id, the seeds, their trial ids and statuses, each objective's
values per seed and standard deviation over seeds, and the seeds' mean of the other metrics the study recorded
(wall time, peak memory, switch step, ...). The Optuna study's user attributes name the hyperswitch study, its
metric (a list for several objectives), its constraints and where it came from.

Storages: an Optuna RDB URL (``sqlite:///studies.db``, ``postgresql://...``) or a journal file
(``journal:PATH``, or a path ending in ``.log``/``.jsonl``), as optuna-dashboard opens them.
"""

from __future__ import annotations

import math
import os
import statistics
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hyperswitch.errors import ConfigError
from hyperswitch.export.select import check_metric
from hyperswitch.export.writer import resolve_study, sampled_values
from hyperswitch.results.distributions import sampled_names, study_distributions
from hyperswitch.results.objectives import (
    OPTUNA_CONSTRAINTS_KEY,
    optuna_constraint_attrs,
    study_constraints,
    study_objectives,
)
from hyperswitch.results.reader import open_study
from hyperswitch.results.schema import FINISHED_STATUSES, TRIAL_METRIC_COLUMNS
from hyperswitch.results.select import finite_values, seed_mean

# Other metrics carried as each trial's seeds' mean (user attributes), where the study has them.
CARRIED_METRICS = tuple(n for n, t in TRIAL_METRIC_COLUMNS.items() if str(t) in ("double", "int64")
                        and n not in ("workers", "restarts", "epochs_done"))


@dataclass(frozen=True)
class OptunaExport:
    storage: str
    study_name: str
    n_trials: int
    n_failed: int
    metric: str  # the first objective
    direction: str  # the first objective's
    metrics: tuple[str, ...] = ()  # every objective, in order
    directions: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()  # a constrained study's, as study.json records them
    n_infeasible: int = 0  # complete trials with a constraint value > 0


def optuna_storage(url: str) -> Any:
    """An Optuna storage for ``url``: an RDB URL (``sqlite:///x.db``) or a journal file (``journal:PATH``, or a
    path ending in .log/.jsonl)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if not isinstance(url, str) or not url.strip():
        raise ConfigError("--to", "must name an Optuna storage: sqlite:///FILE.db, another RDB URL, or "
                          "journal:FILE.log", url)
    if url.startswith("journal:") or url.endswith((".log", ".jsonl")):
        path = Path(url.removeprefix("journal:")).expanduser()
        if not path.parent.is_dir():
            raise ConfigError("--to", "the journal file's folder does not exist", str(path))
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError("--to", "must name an Optuna storage: sqlite:///FILE.db, another RDB URL, or "
                          "journal:FILE.log", url)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).expanduser().parent
        if not folder.is_dir():
            raise ConfigError("--to", "the SQLite file's folder does not exist", str(folder))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # a driver that is not installed, a server that is not there
        raise ConfigError("--to", f"cannot open this Optuna storage ({type(exc).__name__}: {exc})", url) from None


def optuna_distribution(d: Mapping[str, Any]) -> Any:
    """The Optuna distribution of one study.json distribution entry (float, int or categorical)."""
    from optuna import distributions as od

    if d["type"] == "float":
        return od.FloatDistribution(float(d["low"]), float(d["high"]), log=bool(d.get("log")),
                                    step=None if d.get("step") is None else float(d["step"]))
    if d["type"] == "int":
        return od.IntDistribution(int(d["low"]), int(d["high"]), log=bool(d.get("log")),
                                  step=1 if d.get("step") is None else int(d["step"]))
    if d["type"] == "categorical":
        return od.CategoricalDistribution([c if c is None or isinstance(c, bool | int | float | str) else str(c)
                                           for c in d["choices"]])
    raise ValueError(f"not a sampled distribution: {d['type']!r}")


def export_optuna(study: str | os.PathLike[str], to: str, *, storage: str | os.PathLike[str] = "runs",
                  metric: str | None = None, name: str | None = None) -> OptunaExport:
    """Write ``study`` (a name under ``storage`` or a study folder) into the Optuna storage ``to`` as a new
    Optuna study named ``name`` (default: the study's name). An Optuna study of that name already there is an
    error: nothing is changed. ``metric``: a single metric to make the trials' value of, instead of the study's
    objectives."""
    import optuna
    from optuna.trial import TrialState, create_trial

    root = resolve_study(study, storage)
    s = open_study(root)
    metrics, modes = study_objectives(s.meta)
    if metric is not None and metrics != [metric]:  # one metric: its mode as the study's objective, else its own
        modes = [modes[metrics.index(metric)] if metric in metrics else check_metric(metric, None)]
        metrics = [metric]
    constraints = study_constraints(s.meta)
    trials = s.trials[s.trials["status"].isin(FINISHED_STATUSES)] if len(s.trials) else s.trials
    if not len(trials):
        raise ConfigError("STUDY", "has no finished trial to export", str(root))
    for m in metrics:
        if m not in trials:
            raise ConfigError("--metric" if metric else "study.json.metric", "is not a column of this study's trials",
                              m)
    dists = study_distributions(s.meta)
    names = sampled_names(dists)
    od = {n: optuna_distribution(dists[n]) for n in names}
    carried = [m for m in CARRIED_METRICS if m in trials and m not in metrics]

    frozen = []
    failed = infeasible = 0
    for cid, group in trials.sort_values(["config_id", "seed"], kind="stable").groupby("config_id", sort=True):
        first = {str(k): v for k, v in group.iloc[0].to_dict().items()}
        # the parameters that apply to this configuration (a conditional one that does not is left out, with its
        # distribution, as define-by-run Optuna records it)
        params = {n: od[n].to_external_repr(od[n].to_internal_repr(v))
                  for n, v in sampled_values(dists, first).items()}
        attrs: dict[str, Any] = {
            "config_id": str(cid), "seeds": [int(x) for x in group["seed"]],
            "trial_ids": [str(x) for x in group["trial_id"]], "statuses": [str(x) for x in group["status"]],
        }
        for m in metrics:
            values = finite_values(group[m])
            attrs[f"{m}_per_seed"] = [None if not math.isfinite(float(v)) else float(v) for v in group[m].astype(float)]
            attrs[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else None
        for m in carried:
            carried_mean = seed_mean(group[m])
            if carried_mean is not None:
                attrs[f"{m}_mean"] = carried_mean
        means = [seed_mean(group[m]) for m in metrics]
        # constraint values as the sweep's samplers were told them (the seeds' mean of each constrained metric)
        system = optuna_constraint_attrs(constraints, {c.metric: seed_mean(group[c.metric]) if c.metric in group
                                                       else None for c in constraints})
        if constraints:
            attrs["feasible"] = system is not None and all(v <= 0 for v in system[OPTUNA_CONSTRAINTS_KEY])
        dist = {n: od[n] for n in params}
        if system is not None and all(v is not None for v in means):
            infeasible += int(constraints != () and not attrs["feasible"])
            frozen.append(create_trial(params=params, distributions=dist, values=[float(v) for v in means
                                                                                   if v is not None],
                                       user_attrs=attrs, system_attrs=system))
        else:  # no finite mean of an objective, or of a constrained metric: failed, as the sampler was told
            failed += 1
            frozen.append(create_trial(params=params, distributions=dist, state=TrialState.FAIL, user_attrs=attrs))

    backend = optuna_storage(to)
    study_name = name or s.name
    if study_name in optuna.study.get_all_study_names(storage=backend):
        raise ConfigError("--name", f"an Optuna study of this name is already in {to}; choose another --name",
                          study_name)
    directions: list[Literal["maximize", "minimize"]] = ["maximize" if m == "max" else "minimize" for m in modes]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = optuna.create_study(storage=backend, study_name=study_name, directions=list(directions))
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and what optuna-dashboard labels axes with
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        out.set_metric_names(list(metrics))
    out.set_user_attr("hyperswitch_study", str(root))
    out.set_user_attr("metric", metrics[0] if len(metrics) == 1 else list(metrics))
    out.set_user_attr("aggregate", "mean over seeds (finite values)")
    out.set_user_attr("parameters", names)
    if constraints:
        out.set_user_attr("constraints", [c.text for c in constraints])
    out.add_trials(frozen)
    return OptunaExport(storage=to, study_name=study_name, n_trials=len(frozen), n_failed=failed, metric=metrics[0],
                        direction=directions[0], metrics=tuple(metrics), directions=tuple(directions),
                        constraints=tuple(c.text for c in constraints), n_infeasible=infeasible)
