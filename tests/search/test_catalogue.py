"""The study catalogue: every search space in search_spaces/ loads, validates, builds every choice it offers, and
runs at smoke size (2 configurations x 1 seed, a few steps) as a real sweep on the real local Ray."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hyperswitch.results import open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
IDS = [p.stem for p in SPACES]
SMOKE_STEPS = 12
# The studies of docs/findings.md (one file per study, plus the TPE twin of mixer_thresholds).
CATALOGUE = {"mixer_thresholds", "mixer_thresholds_tpe", "mixer_corrector", "mixer_ablation", "mixer_memory",
             "gen_phi_gamma", "gen_lr0", "gen_rosenbrock", "damping_lr_ratio", "second_order_batch_data",
             "second_order_dataset_lm", "precond_refresh", "iomt_surrogate", "iomt_ablation", "ief_damping"}


def smoke_copy(path: Path, tmp_path: Path) -> Path:
    """The space file with a short training run (steps instead of epochs); everything else unchanged."""
    doc = yaml.safe_load(path.read_text())
    doc["train"] = {**(doc.get("train") or {}), "steps": SMOKE_STEPS, "eval_every": 6}
    doc["train"].pop("epochs", None)
    doc["train"].pop("target_accuracy", None)
    out = tmp_path / path.name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def test_the_catalogue_is_complete():
    assert CATALOGUE <= set(IDS), sorted(CATALOGUE - set(IDS))


@pytest.mark.parametrize("path", SPACES, ids=IDS)
def test_space_documents_itself(path):
    """Each file says which document it answers, what to look at, and how to run it small."""
    text = path.read_text()
    space = load_space(path)
    assert space.name == path.stem
    assert space.description
    comments = "\n".join(ln for ln in text.splitlines() if ln.startswith("#"))
    if path.stem != "quickstart":
        assert any(s in comments for s in ("000", "001", "002", "003", "004")), "no source document named"
        assert "Look at:" in comments and f"hyperswitch sweep search_spaces/{path.name}" in comments


@pytest.mark.parametrize("path", SPACES, ids=IDS)
def test_every_choice_builds_and_trains_two_steps(path):
    """Each value of each categorical (the others at their first value) gives a workload and a policy that
    train: validation probes the specs, this builds and steps them."""
    space = load_space(path)
    base = {n: (p.choices[0] if p.kind == "categorical" else p.probe_values()[0])
            for n, p in space.parameters.items() if p.sampled}
    points = [base] + [{**base, n: c} for n, p in space.parameters.items() if p.kind == "categorical"
                       for c in p.choices[1:]]
    for point in points:
        workload, policy = space.instantiate(space.resolve(point))
        result = train_run(workload, Policy.from_spec(policy), {"steps": 2, "eval_every": 2}, 0)
        assert len(result.steps) == 2 and result.steps[-1]["val_loss"] is not None, point
        assert math.isfinite(result.steps[0]["loss"]), point


@pytest.mark.slow
@pytest.mark.parametrize("path", SPACES, ids=IDS)
def test_space_runs_at_smoke_size_on_ray(path, local_ray, tmp_path):
    space = load_space(smoke_copy(path, tmp_path))
    lines: list[str] = []
    study = run_sweep(space, storage=tmp_path / "runs", samples=1, seeds=1, out=lines.append)  # one trial each
    trials = study.trials
    n = 1
    assert len(trials) == n, lines
    assert set(trials.status) <= {"completed", "diverged"}, trials[["trial_id", "status", "error"]].to_dict()
    assert trials.config_id.nunique() == n and (trials.seed == 0).all()
    for name in space.sampled_names:  # every sampled value is one the space offers
        p = space.parameters[name]
        offered = p.grid_values() if (p.kind == "categorical" or p.step) else None
        if offered is not None:
            assert set(trials[name]) <= set(offered), name
    assert (trials.steps_done <= SMOKE_STEPS).all() and (trials.steps_done > 0).all()
    assert study.metric == space.metric and trials[space.metric].notna().any()
    again = open_study(tmp_path / "runs" / space.name)
    assert len(again.steps) == int(trials.steps_done.sum())
