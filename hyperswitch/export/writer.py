"""Writing the chosen configurations of a study as policy files with their provenance.

A policy file written here is the study's own search-space template with the configuration's values filled in
(``SearchSpace.resolve`` + ``instantiate``, exactly as the trials built it), plus the space's ``train`` settings,
so ``hyperswitch train FILE --seed S`` repeats the trial of seed ``S``. The ``provenance`` mapping says where it
came from (study, folder, configuration, trials, the metric's mean, spread and seeds, how it was chosen, the
versions and the date); ``hyperswitch.load_policy`` keeps it as ``Policy.provenance``.

Nothing is half-written: every target is checked before the first file is written (an existing file without
``force`` is an error and no file is touched), each document is validated by loading it back with
``load_policy`` from a temporary file, and each file is moved into place atomically.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperswitch.config.validate import writable_folder
from hyperswitch.errors import ConfigError
from hyperswitch.results.distributions import sampled_names
from hyperswitch.results.fs import StudyPath, display
from hyperswitch.results.select import Choice, Selection, check_metric, same_value, select_configurations

DEFAULT_FOLDER = "policies"


@dataclass
class ExportResult:
    """One written policy file: where, its text, the configuration it holds."""

    path: Path
    text: str
    choice: Choice
    document: dict[str, Any] = field(default_factory=dict)  # the file's content as a mapping
    notes: list[str] = field(default_factory=list)


def resolve_study(study: str | os.PathLike[str], storage: str | os.PathLike[str] = "runs") -> StudyPath:
    """A study folder (one with ``study.json``) given as a path or a URI, or a study name under ``storage`` (a
    folder or a storage URI such as ``s3://bucket/runs``)."""
    from hyperswitch.results.names import find_study

    return find_study(study, storage)


def _plain(value: Any) -> Any:
    """numpy scalars, tuples and nested mappings as plain YAML-safe Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sampled_values(distributions: Mapping[str, Mapping[str, Any]], row: Mapping[str, Any]) -> dict[str, Any]:
    """The sampled parameter values of a trials.parquet row, as the search space's own values (a categorical
    choice as the choice itself: Parquet may have widened an int choice to a float). ``distributions``: the
    study's, as study.json records them (:func:`hyperswitch.results.study_distributions`)."""
    out: dict[str, Any] = {}
    for name in sampled_names(distributions):
        p = distributions[name]
        if p.get("when") and (name not in row or _plain(row[name]) is None):
            continue  # a conditional parameter that does not apply to this configuration
        if name not in row:
            raise ConfigError(f"trials.parquet.{name}", "is missing: the study's trials lack this parameter",
                              show_value=False)
        v = _plain(row[name])
        if p["type"] == "categorical":
            choices = list(p.get("choices") or [])
            match = [c for c in choices if same_value(c, v)]
            if not match:
                raise ConfigError(f"trials.parquet.{name}", f"is not one of the space's choices {choices}", v)
            out[name] = match[0]
        elif p["type"] == "int":
            out[name] = int(v)
        else:
            out[name] = float(v)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "policy"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _targets(study_name: str, choices: list[Choice], output: str | os.PathLike[str] | None) -> list[Path]:
    names = [f"{_slug(study_name)}_{_slug(c.config_id)}.yaml" for c in choices]
    if output is None:
        return [Path(DEFAULT_FOLDER) / n for n in names]
    out = Path(output)
    if out.is_dir() or str(output).endswith(("/", os.sep)):
        return [out / n for n in names]
    if len(choices) > 1:
        raise ConfigError("-o", f"with --top {len(choices)} give a folder (ending in /) for the files, not one file",
                          str(output))
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError("-o", "a policy file name must end in .yaml or .yml", str(output))
    return [out]


def _document(study: Any, space: Any, choice: Choice, selection: Selection, *, metric: str, mode: str, select: str,
              max_time_ratio: float | None, n_finished: int, n_total: int | None,
              constraints: Any = ()) -> dict[str, Any]:
    import hyperswitch
    from hyperswitch.switching import Policy
    from hyperswitch.workloads import validate_workload

    trials = study.trials
    row = trials[trials["trial_id"] == (choice.trial_id or choice.trial_ids[0])].iloc[0].to_dict()
    sampled = sampled_values(study.distributions, row)
    values = space.resolve(sampled)
    workload, policy = space.instantiate(values)
    Policy.from_spec(policy)  # the trials built this; a study whose code changed since says so here
    validate_workload(workload)
    res = space.resources
    spread = f" ± {choice.std:.4g} (s.d.)" if choice.std is not None else ""
    how = {"mean": f"best mean {metric} over its seeds", "best": f"best single trial by {metric}",
           "pareto": f"best mean {metric} within {max_time_ratio or 0:g} x the fastest configuration's mean wall "
                     "time"}
    if choice.objectives:
        how["pareto"] = ("on the Pareto front of " + ", ".join(m for m, *_ in choice.objectives)
                         + " (seeds' means)")
    if constraints:
        how = {k: f"{v}, among the configurations that satisfy the study's constraints" for k, v in how.items()}
    shown = ", ".join(f"{k}={_plain(v)}" for k, v in sampled.items()) or "no searched parameters"
    result = f"{metric} {choice.mean:.4g}{spread}"
    if choice.objectives:
        result = ", ".join(f"{m} {mean:.4g}" + (f" ± {std:.4g} (s.d.)" if std is not None else "")
                           for m, mean, std, _ in choice.objectives)
    description = (f"Exported from study {study.name}: configuration {choice.config_id} ({shown}), {how[select]} "
                   f"(rank {choice.rank}); {result} over {choice.n} seed(s).")
    provenance: dict[str, Any] = {
        "study": study.name,
        "study_folder": display(study.path),  # a local folder made absolute, or the study's URI
        "space_file": study.meta.get("space_file"),
        "config_id": choice.config_id,
        "trial_ids": list(choice.trial_ids),
        "seeds": list(choice.seeds),
        "metric": metric,
        "mode": mode,
        "values": [float(v) for v in choice.values],
        "mean": float(choice.mean),
        "std": choice.std,
        "n_seeds": choice.n,
        "select": select,
        "rank": choice.rank,
    }
    if select == "best":
        provenance.update(trial_id=choice.trial_id, seed=int(row["seed"]), value=choice.value)
    if select == "pareto" and choice.objectives:  # one file per configuration on the front
        provenance.update(objectives=[{"metric": m, "mode": d, "values": list(vals), "mean": mean, "std": std}
                                      for (m, mean, std, vals), d in zip(choice.objectives, _modes(study),
                                                                        strict=True)],
                          front_size=selection.front_size)
    elif select == "pareto":
        provenance.update(max_time_ratio=max_time_ratio, time_ratio=choice.time_ratio)
    if constraints:
        provenance.update(constraints=[c.text for c in constraints], feasible_only=True)
    provenance.update({
        "wall_time_s_mean": choice.wall_time_mean,
        "parameters": {k: _plain(values[k]) for k in space.parameter_names if k in values},
        "workload": workload.get("name"),
        "workers": int(res.workers),
        "threads_per_worker": max(1, int(res.cpus_per_worker)),
        "study_status": "complete" if n_total is not None and n_finished >= n_total else
                        f"unfinished: {n_finished} of {n_total if n_total is not None else '?'} trials finished",
        "notes": list(selection.notes),
        "hyperswitch_version": hyperswitch.__version__,
        "versions": dict(study.meta.get("versions") or {}),
        "exported_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    })
    return {
        "name": f"{study.name}_{choice.config_id}",
        "description": description,
        "policy": _plain(policy),
        "workload": _plain(workload),
        "train": _plain(space.train.as_dict()),
        "provenance": _plain(provenance),
    }


def _modes(study: Any) -> list[str]:
    return list(study.objectives[1])


def _text(doc: Mapping[str, Any], choice: Choice) -> str:
    seed = choice.seeds[0] if choice.seeds else 0
    head = (f"# Exported by `hyperswitch export` from study {doc['provenance']['study']} on "
            f"{doc['provenance']['exported_at']}.\n"
            f"# Repeat the trial of seed {seed}: hyperswitch train THIS_FILE --seed {seed}\n"
            "# Apply to your own model: hyperswitch.load_policy(THIS_FILE).build(model, loss_fn).step(x, y)\n")
    return head + yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)


def _validated(text: str, target: Path) -> None:
    """Load the text back through load_policy (from a temporary file) or raise; touches nothing else."""
    from hyperswitch.switching import load_policy

    fd, tmp = tempfile.mkstemp(prefix=f"hyperswitch-export-{target.stem}-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_policy(tmp)
        except ConfigError as exc:
            raise exc.replace(rule=f"the exported policy does not validate: {exc.rule}", file=str(target)) from None
    finally:
        os.unlink(tmp)


def _write_atomic(text: str, target: Path) -> None:
    """Temporary file + rename, with the mode a plain open() gives under the umask (not mkstemp's 0600)."""
    from hyperswitch.results.files import write_bytes_atomic

    try:
        write_bytes_atomic(text.encode("utf-8"), target)
    except OSError as exc:  # (checked beforehand; a disk that fills up still gets one line)
        raise ConfigError("output", f"cannot write {target}: {exc.strerror or exc}", str(target)) from None


def export_study(study: str | os.PathLike[str], storage: str | os.PathLike[str] = "runs", *, metric: str | None = None,
                 mode: str | None = None, select: str = "mean", top: int | None = None,
                 output: str | os.PathLike[str] | None = None, force: bool = False,
                 max_time_ratio: float | None = None) -> list[ExportResult]:
    """Choose the study's best configuration(s) and write them as policy files.

    ``study``: a name under ``storage`` or a study folder. ``metric``/``mode``: default the study's own (a
    multi-objective study's first objective); a mode that contradicts the metric's direction is an error.
    ``select``: ``mean`` (default), ``best`` or ``pareto`` (with ``max_time_ratio``; on a multi-objective study
    without it: every configuration on the Pareto front of its objectives, one file each, ``top`` the first of
    them by the first objective); see :mod:`hyperswitch.results.select`. A constrained study's configurations
    compete only when feasible (provenance ``constraints``, ``feasible_only``). ``top``: how many configurations,
    one file each. ``output``: a file (one configuration) or a folder; default
    ``policies/<study>_<config_id>.yaml``.
    Raises ``ConfigError`` (and writes nothing) on bad input, a study with no finished trial, or an existing
    file without ``force``."""
    from hyperswitch.results.objectives import study_constraints
    from hyperswitch.results.reader import open_study
    from hyperswitch.search.space import space_from_text  # the policy template; parsed once per process

    path = resolve_study(study, storage)
    s = open_study(path)
    metrics, modes = s.objectives
    front = select == "pareto" and len(metrics) > 1
    if front and metric is not None and max_time_ratio is None:
        raise ConfigError("--metric", "--select pareto on a multi-objective study uses its objectives ("
                          + ", ".join(metrics) + "); leave --metric out", metric)
    if top is None:  # one configuration; the whole front of a multi-objective study (--top N: its first N)
        top = 10**9 if front and max_time_ratio is None else 1
    metric = metric or s.metric
    mode = check_metric(metric, mode)
    constraints = study_constraints(s.meta)
    selection = select_configurations(s.trials, metric, mode, select=select, top=top, max_time_ratio=max_time_ratio,
                                      objectives=list(zip(metrics, modes, strict=True)) if front else (),
                                      constraints=constraints)
    meta = s.meta
    if not meta.get("space_text"):
        raise ConfigError("study.json.space_text", "is missing: cannot rebuild the policy template", show_value=False,
                          file=str(path / "study.json"))
    space = space_from_text(meta["space_text"], str(meta.get("space_file") or path / "study.json"))
    n_finished = len(s.finished())
    n_total = meta.get("n_trials_total")
    notes = list(selection.notes)
    unfinished = meta.get("status") != "completed" or (n_total is not None and n_finished < int(n_total))
    if unfinished:
        notes.insert(0, f"study {s.name} is unfinished ({n_finished} of {n_total if n_total is not None else '?'} "
                        "trials finished): exported from its finished trials")
    targets = _targets(s.name, selection.choices, output)
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise ConfigError("-o" if output is not None else "output", "exists; use --force to overwrite it",
                          str(existing[0]))
    docs = [_document(s, space, c, selection, metric=metric, mode=mode, select=select, max_time_ratio=max_time_ratio,
                      n_finished=n_finished, n_total=int(n_total) if n_total is not None else None,
                      constraints=constraints)
            for c in selection.choices]
    texts = [_text(d, c) for d, c in zip(docs, selection.choices, strict=True)]
    for text, target in zip(texts, targets, strict=True):
        _validated(text, target)
    for target in targets:  # a path that cannot be written: one line before anything is written
        writable_folder(target.parent, "-o" if output is not None else "output", str(output or target))
    results = []
    for doc, text, target, choice in zip(docs, texts, targets, selection.choices, strict=True):
        _write_atomic(text, target)
        results.append(ExportResult(path=target, text=text, choice=choice, document=doc, notes=notes))
    return results
