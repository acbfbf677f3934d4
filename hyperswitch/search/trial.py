"""The Tune trial function: one configuration x one seed, trained in the trial's own process.

It writes its part files at every evaluation (status running) and at the end (final status), and reports
to Tune at every evaluation so that ASHA can stop it. Multi-worker trials (Ray Train) come with the
distributed-training issue; until then ``resources.workers`` must be 1.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping
from typing import Any

from hyperswitch.results.schema import ERROR, RUNNING
from hyperswitch.results.store import StudyStore
from hyperswitch.search.seeds import OBJECTIVE
from hyperswitch.search.space import SearchSpace, space_from_text


def trial_row(space: SearchSpace, config: Mapping[str, Any], values: Mapping[str, Any] | None,
              status: str, summary: Mapping[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """A trials.parquet row: identity, every parameter under its own name, metrics."""
    from hyperswitch.switching import get_policy_type

    if values is None:
        try:
            values = space.resolve(config["params"])
        except Exception:  # noqa: BLE001  (a row must still be written)
            values = dict(config.get("params", {}))
    try:
        _, policy = space.instantiate(values)
        optimizers = ",".join(get_policy_type(policy["type"]).optimizer_names(policy))
    except Exception:  # noqa: BLE001
        optimizers = None
    row: dict[str, Any] = {
        "trial_id": config["trial_id"], "config_id": config["config_id"], "seed": int(config["seed"]),
        "status": status, "workload": space.workload.get("name"), "policy_type": space.policy.get("type"),
        "optimizers": optimizers,
    }
    row.update({n: values.get(n) for n in space.parameter_names})
    row.update(summary or {})
    if error:
        row["error"] = error
    return row


def objective(summary: Mapping[str, Any], metric: str) -> float | None:
    v = summary.get(metric)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def run_trial(config: dict[str, Any], *, space_text: str, space_source: str, study_dir: str,
              samples: int | None = None, seeds: int | None = None) -> dict[str, Any]:
    import torch
    from ray import tune

    from hyperswitch.switching import Policy
    from hyperswitch.train.loop import train_run

    space = space_from_text(space_text, space_source).with_overrides(samples=samples, seeds=seeds)
    store = StudyStore(study_dir)
    torch.set_num_threads(max(1, int(space.resources["cpus_per_worker"])))
    use_gpu = space.resources["gpus_per_worker"] > 0 and torch.cuda.is_available()
    device = "cuda" if use_gpu else "cpu"
    try:
        values = space.resolve(config["params"])
        workload, policy_spec = space.instantiate(values)
        policy = Policy.from_spec(policy_spec)
    except Exception as exc:  # noqa: BLE001  (a bad combination is this trial's error, not the sweep's)
        msg = f"{type(exc).__name__}: {exc}"
        store.write_trial_parts(trial_row(space, config, None, ERROR, error=msg), [], [])
        return {"status": ERROR, "error": msg}

    def on_eval(row: Mapping[str, Any], result: Any) -> None:
        summary = dict(result.summary)
        store.write_trial_parts(trial_row(space, config, values, RUNNING, summary), result.steps, result.events)
        tune.report({**_reportable(summary), "step": row["step"], OBJECTIVE: objective(summary, space.metric),
                     "status": RUNNING})

    try:
        result = train_run(workload, policy, space.train, int(config["seed"]), device=device, on_eval=on_eval)
    except Exception as exc:  # noqa: BLE001
        msg = f"{type(exc).__name__}: {exc}"
        store.write_trial_parts(trial_row(space, config, values, ERROR, error=msg), [], [])
        traceback.print_exc()
        return {"status": ERROR, "error": msg}
    summary = dict(result.summary)
    store.write_trial_parts(trial_row(space, config, values, result.status, summary), result.steps, result.events)
    final = {**_reportable(summary), "step": summary["steps_done"], OBJECTIVE: objective(summary, space.metric),
             "status": result.status}
    tune.report(final)
    return final


def _reportable(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
