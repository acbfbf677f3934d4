"""A user's own workload by import path: options from the factory's signature, the forms it may return, the
errors (one line naming key, rule and value), and the documented example end to end through ``hyperswitch
train`` and a tiny ``hyperswitch sweep`` on a real local Ray (both run from the project folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hyperswitch.errors import ConfigError
from hyperswitch.results import open_study
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BLOBS = "workload_user_factories:blobs"
EXAMPLE = "examples.user_workload:two_moons"
CLI = str(Path(sys.executable).parent / "hyperswitch")  # the console script: no '' on its sys.path


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(ROOT))


def adam(lr=0.01):
    return Policy.from_spec({"type": "single", "optimizer": {"name": "adam", "lr": lr}})


def test_options_are_the_factorys_keyword_defaults_plus_hyperswitchs():
    full = validate_workload({"name": BLOBS, "hidden": 8})
    assert full == {"name": BLOBS, "batch_size": 64, "dataset_fraction": 1.0, "split_seed": 0, "n": 200,
                    "hidden": 8, "form": "dict", "loader": False}
    assert validate_workload({"name": "workload_user_factories:line"})["split_seed"] == 0


@pytest.mark.parametrize(("spec", "key", "rule", "value"), [
    ({"name": BLOBS, "depth": 2}, "workload.depth", "unknown key; allowed: name, batch_size", 2),
    ({"name": BLOBS, "batch_size": 0}, "workload.batch_size", "must be >= 1", 0),
    ({"name": BLOBS, "dataset_fraction": 2}, "workload.dataset_fraction", "must be <= 1.0", 2),
    ({"name": "no_such_module_xyz:f"}, "workload.name", "cannot import module 'no_such_module_xyz'",
     "no_such_module_xyz:f"),
    ({"name": "workload_user_factories:missing"}, "workload.name", "has no function 'missing'",
     "workload_user_factories:missing"),
    ({"name": "workload_user_factories:NOT_CALLABLE"}, "workload.name", "has no function 'NOT_CALLABLE'",
     "workload_user_factories:NOT_CALLABLE"),
    ({"name": "a:b:c"}, "workload.name", "named 'package.module:function'", "a:b:c"),
    ({"name": "mod/file.py:f"}, "workload.name", "named 'package.module:function'", "mod/file.py:f"),
    ({"name": "workload_user_factories:needs_value"}, "workload.name", "option 'a' needs a default",
     "workload_user_factories:needs_value"),
    ({"name": "workload_user_factories:takes_kwargs"}, "workload.name", "named keyword parameters",
     "workload_user_factories:takes_kwargs"),
])
def test_bad_specs(spec, key, rule, value):
    with pytest.raises(ConfigError) as err:
        validate_workload(spec)
    assert err.value.key == key and rule in err.value.rule and err.value.value == value


@pytest.mark.parametrize(("name", "rule"), [
    ("workload_user_factories:returns_three", "must return a mapping"),
    ("workload_user_factories:returns_bad_model", "model must be a torch.nn.Module"),
])
def test_bad_returns_are_one_line_errors(name, rule):
    with pytest.raises(ConfigError) as err:
        build_workload({"name": name}, seed=0)
    assert err.value.key == "workload.name" and rule in err.value.rule


def test_module_root_is_what_a_cluster_needs_shipped():
    from hyperswitch.workloads.user import module_root

    assert module_root(EXAMPLE) == str(ROOT / "examples")  # a namespace package: its folder
    assert module_root(BLOBS) == str(HERE / "workload_user_factories.py")  # a top-level module: its file
    assert module_root("hyperswitch.workloads.digits:digits_mlp") == str(ROOT / "hyperswitch")


def test_the_factorys_own_config_error_reaches_the_user():
    with pytest.raises(ConfigError) as err:
        build_workload({"name": "workload_user_factories:checked", "k": 2}, seed=0)
    assert (err.value.key, err.value.rule, err.value.value) == ("workload.k", "must be 1", 2)


def test_dict_tuple_and_loader_forms_give_the_same_workload():
    a = build_workload({"name": BLOBS}, seed=3)
    b = build_workload({"name": BLOBS, "form": "tuple"}, seed=3)
    c = build_workload({"name": BLOBS, "loader": True}, seed=3)
    for w in (b, c):
        assert torch.equal(w.train.x, a.train.x) and torch.equal(w.train.y, a.train.y)
        assert torch.equal(w.val_x, a.val_x) and w.name == BLOBS and w.task == "classification"
        for p, q in zip(a.model.parameters(), w.model.parameters(), strict=True):
            assert torch.equal(p, q)  # the trial seed initialises the model
    assert a.train.x.dtype == torch.float32 and a.train.x.shape == (150, 2) and a.val_x.shape == (50, 2)
    other_seed = build_workload({"name": BLOBS}, seed=4)
    assert torch.equal(other_seed.val_x, a.val_x)  # the split is split_seed's, not the trial seed's
    assert not torch.equal(next(other_seed.model.parameters()), next(a.model.parameters()))
    assert not torch.equal(build_workload({"name": BLOBS, "split_seed": 1}, seed=3).val_x, a.val_x)
    half = build_workload({"name": BLOBS, "dataset_fraction": 0.5, "batch_size": 16}, seed=3)
    assert len(half.train.x) == 75 and half.train.batch_size == 16 and torch.equal(half.val_x, a.val_x)


def test_classification_and_regression_train_through_the_loop():
    res = train_run({"name": BLOBS, "batch_size": 30}, adam(), {"epochs": 8, "eval_every": 1000}, seed=0)
    assert res.status == "completed" and res.summary["val_accuracy"] > 0.9 and res.steps[-1]["epoch"] == 8
    reg = train_run({"name": "workload_user_factories:line", "batch_size": 10}, adam(0.05),
                    {"epochs": 5, "eval_every": 1000}, seed=0)
    assert reg.summary["val_accuracy"] is None and reg.summary["val_loss"] < 0.1 * reg.steps[0]["loss"]


def test_the_example_trains_one_epoch_and_its_loss_falls():
    spec = {"name": EXAMPLE, "batch_size": 32}
    before = build_workload(spec, seed=0).evaluate()["val_loss"]
    res = train_run(spec, adam(), {"epochs": 1, "eval_every": 1000}, seed=0)
    assert res.summary["steps_done"] == 480 // 32 and res.summary["val_loss"] < 0.8 * before


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "PYTHONPATH": ""}


def test_example_through_hyperswitch_train_cli(tmp_path):
    out = subprocess.run([CLI, "train", "policies/adamw.yaml", "--workload", EXAMPLE, "--steps", "150"], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"on {EXAMPLE}, seed 0, 1 worker, CPU: completed" in out.stdout
    acc = float(re.search(r"val_accuracy\s+([\d.]+)", out.stdout).group(1))
    assert acc > 0.8


def test_a_bad_user_workload_is_one_line_and_exit_2(capsys):
    from hyperswitch.cli import main

    assert main(["train", str(ROOT / "policies/adamw.yaml"), "--workload", "examples.user_workload:nope"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ("hyperswitch: error: --workload.name: module 'examples.user_workload' has "
                                         "no function 'nope' (got 'examples.user_workload:nope')")


@pytest.mark.slow
def test_example_in_a_sweep_on_a_real_local_ray(tmp_path, ray_tmp):
    space = tmp_path / "moons.yaml"
    space.write_text(f"""\
name: moons
workload: {{name: "{EXAMPLE}", hidden: $hidden, batch_size: 32}}
policy:
  type: single
  optimizer: {{name: adam, lr: $lr}}
train: {{steps: 40, eval_every: 20}}
parameters:
  hidden: {{type: categorical, choices: [8, 16]}}
  lr: {{type: categorical, choices: [0.01, 0.03]}}
search: {{algorithm: grid, samples: 2, seed: 0}}
seeds: 1
max_concurrent: 2
metric: val_accuracy
mode: max
""")
    out = subprocess.run([CLI, "sweep", str(space), "--storage", str(tmp_path / "runs"), "--samples", "2"],
                         cwd=ROOT, env=_env(ray_tmp), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    study = open_study(tmp_path / "runs" / "moons")
    t = study.trials
    assert len(t) == 2 and set(t.status) == {"completed"} and set(t.workload) == {EXAMPLE}, t.to_dict("records")
    assert (t.val_accuracy > 0.7).all() and (t.steps_done == 40).all()
    assert len(study.steps) == 80
