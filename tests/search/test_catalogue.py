"""The study catalogue: every search space in search_spaces/ loads, validates, builds every choice it offers, and
runs at smoke size (2 configurations x 1 seed, a few steps) as a real sweep on the real local Ray."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import yaml

from hyperswitch.results import open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, get_workload, validate_workload
from hyperswitch.workloads._common import fraction_of

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
IDS = [p.stem for p in SPACES]
# Full-size studies that need a GPU or a Ray cluster (same names as the studies; each names its machine-size twin).
CLUSTER = sorted((ROOT / "search_spaces" / "cluster").glob("*.yaml"))
CLUSTER_IDS = [f"cluster/{p.stem}" for p in CLUSTER]
ALL_SPACES, ALL_IDS = SPACES + CLUSTER, IDS + CLUSTER_IDS
GRID_LIMIT = 20_000  # enumerate a grid of categoricals up to this many combinations
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


CLUSTER_CATALOGUE = {"damping_lr_ratio", "second_order_batch_data", "second_order_batch_data_curves",
                     "precond_refresh"}


def test_the_catalogue_is_complete():
    assert CATALOGUE <= set(IDS), sorted(CATALOGUE - set(IDS))
    assert CLUSTER_CATALOGUE <= {p.stem for p in CLUSTER}, sorted(CLUSTER_CATALOGUE - {p.stem for p in CLUSTER})


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
    train: validation probes the specs, this builds every point's policy and steps each distinct workload and
    policy shape (points that differ only in a number, e.g. lr or damping, are built, not trained again)."""
    space = load_space(path)
    base = {n: (p.choices[0] if p.kind == "categorical" else p.probe_values()[0])
            for n, p in space.parameters.items() if p.sampled}
    points = [base] + [{**base, n: c} for n, p in space.parameters.items() if p.kind == "categorical"
                       for c in p.choices[1:]]
    trained: set[str] = set()
    for point in points:
        workload, policy = space.instantiate(space.resolve(point))
        built = Policy.from_spec(policy)
        key = json.dumps([workload, shape_of(policy)], sort_keys=True, default=str)
        if key in trained:  # only numbers (lr, damping, ...) differ from a point already trained: built is enough
            continue
        trained.add(key)
        result = train_run(small_test_set(workload), built, {"steps": 2, "eval_every": 2}, 0)
        assert len(result.steps) == 2 and result.steps[-1]["val_loss"] is not None, point
        assert math.isfinite(result.steps[0]["loss"]), point


SMOKE_TEST_SET = 200  # held-out examples evaluated by the two-step runs above (the evaluation runs all the same)


def small_test_set(workload: dict) -> dict:
    """The workload spec with at most ``SMOKE_TEST_SET`` held-out examples where it has an ``n_test`` key (the
    generated image sets: evaluating resnet_small's 2,000 test images took most of a two-step run's 2.6 s)."""
    default = get_workload(workload["name"]).defaults.get("n_test")
    if not isinstance(default, int):
        return workload
    return {**workload, "n_test": min(int(workload.get("n_test", default)), SMOKE_TEST_SET)}


def shape_of(spec):
    """The spec with its numbers blanked: two policies of one shape differ only in values (validated, built)."""
    if isinstance(spec, dict):
        return {k: shape_of(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [shape_of(v) for v in spec]
    return "#" if isinstance(spec, (int, float)) and not isinstance(spec, bool) else spec


@pytest.mark.parametrize("path", CLUSTER, ids=CLUSTER_IDS)
def test_cluster_space_documents_itself(path):
    """A full-size file says its source, what to look at, its small-run command with its path, that it needs a GPU
    or a cluster, and its machine-size twin (a file in search_spaces/) or that it has none."""
    text = path.read_text()
    space = load_space(path)
    assert space.name == path.stem and space.description
    comments = "\n".join(ln for ln in text.splitlines() if ln.startswith("#"))
    assert any(s in comments for s in ("000", "001", "002", "003", "004")), "no source document named"
    assert "Look at:" in comments
    assert f"hyperswitch sweep search_spaces/cluster/{path.name}" in comments
    assert "NEEDS A GPU OR A RAY CLUSTER" in comments
    twin = [ln for ln in comments.splitlines() if "Machine-size twin:" in ln]
    assert twin, "no machine-size twin line"
    named = [w.strip(".,;()") for ln in comments.splitlines() for w in ln.split() if w.startswith("search_spaces/")
             and not w.startswith("search_spaces/cluster/")]
    assert named and all((ROOT / n).is_file() for n in named), named


@pytest.mark.parametrize("path", CLUSTER, ids=CLUSTER_IDS)
def test_cluster_space_builds_every_choice(path):
    """Each value of each categorical instantiates and builds its policy; the full-size workloads are validated
    (their spec), not trained."""
    space = load_space(path)
    base = {n: (p.choices[0] if p.kind == "categorical" else p.probe_values()[0])
            for n, p in space.parameters.items() if p.sampled}
    points = [base] + [{**base, n: c} for n, p in space.parameters.items() if p.kind == "categorical"
                       for c in p.choices[1:]]
    for point in points:
        workload, policy = space.instantiate(space.resolve(point))
        validate_workload(workload)
        assert Policy.from_spec(policy) is not None, point


# Workloads whose training-set size follows from the spec (n_train x dataset_fraction) without building them.
SIZED_BY_SPEC = {"mlp_wide", "curves_autoencoder"}


def training_examples(workload: dict) -> int:
    full = validate_workload(workload)
    return len(fraction_of(int(full["n_train"]), float(full["dataset_fraction"]), int(full["split_seed"])))


@pytest.mark.parametrize("path", ALL_SPACES, ids=ALL_IDS)
def test_every_grid_combination_is_valid(path):
    """Every combination of the parameters' values (a range: its two ends) gives a valid workload: its batch fits
    its training set (a grid point that cannot run is a design error). Workloads not sized by their spec are built
    once per distinct spec."""
    space = load_space(path)
    params = {n: p for n, p in space.parameters.items() if p.sampled}
    # a range contributes its ends (the probe's values), a categorical every choice
    values = {n: (p.choices if p.kind == "categorical" else p.probe_values()) for n, p in params.items()}
    assert math.prod(len(v) for v in values.values()) <= GRID_LIMIT, "raise GRID_LIMIT: this grid is not enumerated"
    seen: set[str] = set()
    for combo in itertools.product(*values.values()):
        point = dict(zip(params, combo, strict=True))
        workload, policy = space.instantiate(space.resolve(point))
        key = json.dumps(workload, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        if workload["name"] in SIZED_BY_SPEC:
            n = training_examples(workload)
            assert int(validate_workload(workload)["batch_size"]) <= n, (point, n)
        else:
            build_workload(workload, 0)  # raises ConfigError where the batch exceeds the training set


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
