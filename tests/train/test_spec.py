"""The typed train and resources specs: validated once at the boundary, frozen, read by attribute, and
``as_dict()`` the very dict that travelled before (what exported policy files and errors show)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.search.space import ResourcesSpec, space_from_text
from hyperswitch.train.spec import TRAIN_DEFAULTS, TrainSpec, validate_train

KEYS = ["steps", "epochs", "eval_every", "target_accuracy", "target_loss", "divergence_loss", "checkpoint_every"]


def test_defaults_are_the_dataclass_defaults():
    assert TRAIN_DEFAULTS == {"steps": 300, "epochs": None, "eval_every": 25, "target_accuracy": None,
                              "target_loss": None, "divergence_loss": 1e6, "checkpoint_every": None}
    assert list(TRAIN_DEFAULTS) == KEYS == [f.name for f in dataclasses.fields(TrainSpec)]
    assert TrainSpec.from_mapping(None) == TrainSpec() and TrainSpec.from_mapping({}).as_dict() == TRAIN_DEFAULTS


@pytest.mark.parametrize(("given", "expected"), [
    ({"steps": 40, "eval_every": 20}, {**TRAIN_DEFAULTS, "steps": 40, "eval_every": 20}),
    ({"epochs": 2, "eval_every": 1000}, {**TRAIN_DEFAULTS, "steps": None, "epochs": 2, "eval_every": 1000}),
    ({"steps": None, "epochs": 3}, {**TRAIN_DEFAULTS, "steps": None, "epochs": 3}),
    # the values as given, in the defaults' key order whatever the order given
    ({"checkpoint_every": 0, "divergence_loss": 10, "target_accuracy": 0.9, "steps": 300.0},
     {**TRAIN_DEFAULTS, "steps": 300.0, "target_accuracy": 0.9, "divergence_loss": 10, "checkpoint_every": 0}),
])
def test_as_dict_is_the_validated_dict(given, expected):
    spec = validate_train(given)
    d = spec.as_dict()
    assert d == expected and list(d) == KEYS
    assert [type(v) for v in d.values()] == [type(v) for v in expected.values()]
    assert TrainSpec.from_mapping(d) == spec  # round trip


def test_frozen_and_coerce():
    spec = TrainSpec.from_mapping({"steps": 10, "eval_every": 5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 20  # type: ignore[misc]
    assert TrainSpec.coerce(spec) is spec
    assert TrainSpec.coerce({"steps": 10, "eval_every": 5}) == spec


@pytest.mark.parametrize(("given", "key", "rule"), [
    ({"steps": 10, "epochs": 2}, "run.epochs", "give either steps or epochs"),
    ({"steps": None}, "run.steps", "steps or epochs is required"),
    ({"steps": 0}, "run.steps", "must be >= 1"),
    ({"steps": 1.5}, "run.steps", "must be an integer"),
    ({"eval_every": True}, "run.eval_every", "must be an integer"),
    ({"target_accuracy": 1.5}, "run.target_accuracy", "must be <= 1.0"),
    ({"divergence_loss": math.inf}, "run.divergence_loss", "must be finite"),
    ({"target_loss": "low"}, "run.target_loss", "must be a number"),
    ({"target_accuracy": 0.9, "target_loss": 0.1}, "run.target_loss", "either target_accuracy or target_loss"),
    ({"eval_every": 5, "checkpoint_every": 7}, "run.checkpoint_every", "multiple of eval_every"),
    ({"stepz": 3}, "run.stepz", "unknown key"),
])
def test_errors_name_the_key(given, key, rule):
    with pytest.raises(ConfigError, match=rule) as err:
        TrainSpec.from_mapping(given, "run")
    assert err.value.key == key


def test_total_steps_and_checkpoint_due():
    assert TrainSpec.from_mapping({"steps": 80}).total_steps(22) == 80
    assert TrainSpec.from_mapping({"epochs": 3}).total_steps(22) == 66
    every_eval, never = TrainSpec(eval_every=10), TrainSpec(eval_every=10, checkpoint_every=0)
    thirty = TrainSpec(eval_every=10, checkpoint_every=30)
    assert [s for s in range(10, 80, 10) if every_eval.checkpoint_due(s)] == [10, 20, 30, 40, 50, 60, 70]
    assert [s for s in range(10, 80, 10) if never.checkpoint_due(s)] == []
    assert [s for s in range(10, 80, 10) if thirty.checkpoint_due(s)] == [30, 60]


def test_resources_spec():
    assert ResourcesSpec.from_mapping(None) == ResourcesSpec() == ResourcesSpec(1, 1, 0, 2)
    res = ResourcesSpec.from_mapping({"workers": 2, "cpus_per_worker": 0.49, "max_failures": 0})
    assert res.as_dict() == {"workers": 2, "cpus_per_worker": 0.49, "gpus_per_worker": 0, "max_failures": 0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.workers = 3  # type: ignore[misc]
    for given, key in [({"workers": 0}, "resources.workers"), ({"cpus_per_worker": 0}, "resources.cpus_per_worker"),
                       ({"gpus_per_worker": -1}, "resources.gpus_per_worker"),
                       ({"max_failures": 1.5}, "resources.max_failures"), ({"gpus": 1}, "resources.gpus")]:
        with pytest.raises(ConfigError) as err:
            ResourcesSpec.from_mapping(given)
        assert err.value.key == key


def test_a_search_space_carries_the_typed_specs():
    space = space_from_text("""\
name: typed
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgd, lr: 0.1}}
train: {epochs: 2, eval_every: 10, target_accuracy: 0.9}
resources: {workers: 2, cpus_per_worker: 0.5}
""", "typed.yaml")
    assert space.train == TrainSpec(steps=None, epochs=2, eval_every=10, target_accuracy=0.9)
    assert space.resources == ResourcesSpec(workers=2, cpus_per_worker=0.5)


def test_target_loss_sets_time_to_target_at_the_first_evaluation_at_or_below_it():
    from hyperswitch.switching import Policy
    from hyperswitch.train.loop import train_run

    spec = {"name": "least_squares", "n": 400, "d": 8, "batch_size": 20}
    policy = Policy.from_spec({"type": "single", "optimizer": {"name": "sgd", "lr": 0.05}})
    free = train_run(spec, policy, {"steps": 60, "eval_every": 10}, seed=0)
    evals = [r for r in free.steps if r.get("val_loss") is not None]
    assert free.summary["time_to_target_s"] is None  # no target given
    goal = sorted(r["val_loss"] for r in evals)[len(evals) // 2]  # reached part-way, not at the first evaluation
    run = train_run(spec, policy, {"steps": 60, "eval_every": 10, "target_loss": goal}, seed=0)
    rows = [r for r in run.steps if r.get("val_loss") is not None]
    first = next(r for r in rows if r["val_loss"] <= goal)
    assert run.summary["time_to_target_s"] == first["elapsed_s"]
    never = train_run(spec, policy, {"steps": 60, "eval_every": 10, "target_loss": -1.0}, seed=0)
    assert never.summary["time_to_target_s"] is None
