"""Search-space validation: every rule gives one line naming file, key, rule and value, exit status 2, and
nothing under the storage folder. Run through the real CLI entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from hyperswitch.cli import main
from hyperswitch.search.space import load_space

BASE = """\
name: t
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: $momentum}
  switch: {at: $switch_at}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.5, log: true}
  momentum: {type: float, low: 0.5, high: 0.95}
  switch_at: {type: int, low: 0, high: 20, step: 5}
search: {algorithm: tpe, samples: 2}
seeds: 2
"""


def run_cli(tmp_path, space_path, capsys, *extra):
    storage = tmp_path / "runs"
    code = main(["sweep", str(space_path), "--storage", str(storage), *extra])
    err = capsys.readouterr().err.strip()
    return code, err, storage


def test_valid_space_loads(space_file):
    space = load_space(space_file(BASE))
    assert space.sampled_names == ["lr", "momentum", "switch_at"]
    assert space.seeds == [0, 1]
    values = space.resolve({"lr": 0.1, "momentum": 0.9, "switch_at": 5})
    workload, policy = space.instantiate(values)
    assert policy["phase2"] == {"name": "sgdm", "lr": 0.1, "momentum": 0.9}
    assert policy["switch"] == {"at": 5}
    assert workload == {"name": "digits_mlp", "batch_size": 32}


def test_derived_parameters_are_computed(space_file):
    text = BASE.replace("lr: $lr,", "lr: $lr_eff,").replace(
        "search:", "derived:\n  lr_eff: lr * ratio\nsearch:").replace(
        "  switch_at:", "  ratio: {type: categorical, choices: [1, 2]}\n  switch_at:")
    space = load_space(space_file(text))
    values = space.resolve({"lr": 0.1, "momentum": 0.9, "switch_at": 5, "ratio": 2})
    assert values["lr_eff"] == pytest.approx(0.2)
    assert space.parameter_names == ["lr", "momentum", "ratio", "switch_at", "lr_eff"]


BAD_CASES = [
    # (description, edit, expected key, expected rule fragment, expected value fragment)
    ("unknown top-level key", lambda t: t + "colour: red\n", "colour", "unknown key", "'red'"),
    ("unknown parameter key", lambda t: t.replace("log: true", "log: true, scale: 2"),
     "parameters.lr.scale", "unknown key", "2"),
    ("wrong type", lambda t: t.replace("low: 0.5, high: 0.95", "low: half, high: 0.95"),
     "parameters.momentum.low", "must be a number", "'half'"),
    ("empty range", lambda t: t.replace("low: 0.5, high: 0.95", "low: 0.5, high: 0.5"),
     "parameters.momentum", "range is empty", "0.5"),
    ("low > high", lambda t: t.replace("low: 0.5, high: 0.95", "low: 0.9, high: 0.5"),
     "parameters.momentum.low", "must be <= high", "0.9"),
    ("log touching zero", lambda t: t.replace("low: 0.01, high: 0.5, log: true", "low: 0, high: 0.5, log: true"),
     "parameters.lr.low", "must not touch zero", "0"),
    ("unknown workload", lambda t: t.replace("name: digits_mlp", "name: imagenet"),
     "workload.name", "unknown workload", "'imagenet'"),
    ("unknown optimizer", lambda t: t.replace("name: adam", "name: adamx"),
     "policy.phase1.name", "unknown optimizer", "'adamx'"),
    ("unknown policy type", lambda t: t.replace("type: switch", "type: teleport"),
     "policy.type", "unknown policy type", "'teleport'"),
    ("unknown optimizer hyperparameter", lambda t: t.replace("lr: 0.001}", "lr: 0.001, momentum: 0.9}"),
     "policy.phase1.momentum", "unknown hyperparameter of adam", "0.9"),
    ("value invalid at the range's end", lambda t: t.replace("high: 0.95", "high: 1.5"),
     "parameters.momentum", "momentum must be in [0, 1), but got 1.5", "1.5"),
    ("unknown placeholder", lambda t: t.replace("momentum: $momentum", "momentum: $mom"),
     "policy.phase2.momentum", "unknown parameter", "'$mom'"),
    ("unused parameter", lambda t: t.replace("  switch_at:", "  extra: {type: float, low: 1, high: 2}\n  switch_at:"),
     "parameters.extra", "is not used", "'extra'"),
    ("derived expression not allowed", lambda t: t.replace("lr: $lr,", "lr: $x,").replace(
        "search:", "derived:\n  x: \"__import__('os').getcwd()\"\nsearch:"),
     "derived.x", "functions", "__import__"),
    ("derived cycle", lambda t: t.replace("lr: $lr,", "lr: $a,").replace(
        "search:", "derived:\n  a: b * lr\n  b: a * 2\nsearch:"), "derived.", "cycle", ""),
    ("grid needs steps", lambda t: t.replace("algorithm: tpe", "algorithm: grid"),
     "parameters.lr", "grid search needs choices or a step", "'lr'"),
    ("metric with the wrong mode", lambda t: t + "metric: val_accuracy\nmode: min\n",
     "mode", "mode must be max", "'min'"),
    ("unknown metric", lambda t: t + "metric: accuracy_at_dawn\n", "metric", "must be one of", "'accuracy_at_dawn'"),
    ("asha on a final-only metric", lambda t: t + "metric: wall_time_s\nscheduler: asha\n",
     "scheduler.type", "measured during training", "'wall_time_s'"),
    ("samples not a positive int", lambda t: t.replace("samples: 2", "samples: 0"),
     "search.samples", "must be >= 1", "0"),
    ("bad seeds", lambda t: t.replace("seeds: 2", "seeds: [1, 1]"), "seeds", "distinct", "[1, 1]"),
    ("reserved name", lambda t: t.replace("switch_at", "switch_step"),
     "parameters.switch_step", "results column", "'switch_step'"),
    ("resources", lambda t: t + "resources: {workers: 0}\n", "resources.workers", "must be >= 1", "0"),
    ("categorical types",
     lambda t: t.replace("  switch_at:", "  c: {type: categorical, choices: [1, a]}\n  switch_at:"),
     "parameters.c.choices", "same type", "[1, 'a']"),
    ("fixed switch step negative", lambda t: t.replace("low: 0, high: 20, step: 5", "low: -5, high: 20, step: 5"),
     "parameters.switch_at", "policy.switch.at: must be >= 0", "-5"),
    ("train key", lambda t: t.replace("eval_every: 10", "eval_every: 10, lr: 3"), "train.lr", "unknown key", "3"),
    ("workload option value", lambda t: t.replace("batch_size: 32", "batch_size: 0"),
     "workload.batch_size", "must be >= 1", "0"),
    ("study name", lambda t: t.replace("name: t\n", "name: ../escape\n"), "name", "names a folder", "'../escape'"),
]


@pytest.mark.parametrize(("desc", "edit", "key", "rule", "value"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_space_is_one_line_exit_2_nothing_written(desc, edit, key, rule, value, space_file, tmp_path, capsys):
    path = space_file(edit(BASE))
    code, err, storage = run_cli(tmp_path, path, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    assert f"{key}" in err and rule in err and value in err, err
    assert not storage.exists()


def test_yaml_syntax_error_names_file(space_file, tmp_path, capsys):
    path = space_file("name: [unclosed\n")
    code, err, storage = run_cli(tmp_path, path, capsys)
    assert code == 2 and "is not valid YAML" in err and str(path) in err
    assert not storage.exists()


def test_yaml_is_loaded_safely(space_file, tmp_path, capsys):
    path = space_file("!!python/object/apply:os.system ['echo pwned']\n")
    code, err, _ = run_cli(tmp_path, path, capsys)
    assert code == 2 and "not valid YAML" in err


def test_missing_file(tmp_path, capsys):
    code, err, storage = run_cli(tmp_path, tmp_path / "nope.yaml", capsys)
    assert code == 2 and "nope.yaml" in err and "cannot read" in err
    assert not storage.exists()


def test_resume_without_study_is_an_error(space_file, tmp_path, capsys):
    code, err, storage = run_cli(tmp_path, space_file(BASE), capsys, "--resume")
    assert code == 2 and "--resume" in err and "no study to resume" in err
    assert not (storage / "t").exists()


def test_console_script_exit_status(space_file, tmp_path):
    path = space_file(BASE.replace("high: 0.95", "high: 1.5"))
    proc = subprocess.run([sys.executable, "-m", "hyperswitch", "sweep", str(path), "--storage",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "parameters.momentum" in proc.stderr and "1.5" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_every_command_has_help():
    for cmd in ([], ["sweep"], ["studies"], ["train"], ["dashboard"], ["export"]):
        proc = subprocess.run([sys.executable, "-m", "hyperswitch", *cmd, "--help"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and "usage: hyperswitch" in proc.stdout


def test_grid_counts_every_point(space_file):
    text = textwrap.dedent("""\
        name: g
        workload: {name: digits_mlp}
        policy: {type: single, optimizer: {name: sgdm, lr: $lr, momentum: $m}}
        parameters:
          lr: {type: float, low: 0.05, high: 0.2, step: 0.05}
          m: {type: categorical, choices: [0.5, 0.9]}
        search: grid
        """)
    space = load_space(space_file(text))
    assert space.grid() == {"lr": [0.05, 0.1, 0.15, 0.2], "m": [0.5, 0.9]}
    assert space.n_configurations() == 8
