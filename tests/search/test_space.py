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
    # (an unknown key's value is not shown: the key is the offending part; the allowed keys are)
    ("unknown top-level key", lambda t: t + "colour: red\n", "colour", "unknown key", "allowed: name, "),
    ("unknown parameter key", lambda t: t.replace("log: true", "log: true, scale: 2"),
     "parameters.lr.scale", "unknown key", "allowed: type, low, high, log, step"),
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
     "policy.phase1.momentum", "unknown hyperparameter of adam", "allowed: beta1, beta2, eps, lr, weight_decay"),
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
     "parameters.switch_at.low", "must be >= 0 (it is policy.switch.at)", "(got -5)"),
    ("train key", lambda t: t.replace("eval_every: 10", "eval_every: 10, lr: 3"), "train.lr", "unknown key",
     "allowed: "),
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


# --- categorical sets (one parameter switching several template values), grid caps, workload choice ---
SETS = """\
name: s
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: kfac, lr: 0.05}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: $switch_rule
  corrector: {T1: $T1}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.05, 0.1]}
  variant:
    type: categorical
    choices: [mixer, no_corrector, second_order]
    sets:
      mixer: {switch_rule: {theta: 0.05, K: 2, unit: epoch}, T1: 10}
      no_corrector: {switch_rule: {theta: 0.05, K: 2, unit: epoch}, T1: 0}
      second_order: {switch_rule: never, T1: 0}
search: grid
"""


def test_sets_fill_several_template_values(space_file):
    space = load_space(space_file(SETS))
    assert space.sampled_names == ["lr", "variant"] and space.parameter_names == ["lr", "variant"]
    assert space.members == {"switch_rule": "variant", "T1": "variant"}
    assert space.grid() == {"lr": [0.05, 0.1], "variant": ["mixer", "no_corrector", "second_order"]}
    assert space.n_configurations() == 6
    _, policy = space.instantiate(space.resolve({"lr": 0.1, "variant": "no_corrector"}))
    assert policy["switch"] == {"theta": 0.05, "K": 2, "unit": "epoch"} and policy["corrector"] == {"T1": 0}
    assert policy["phase2"]["lr"] == 0.1
    _, policy = space.instantiate(space.resolve({"lr": 0.05, "variant": "second_order"}))
    assert policy["switch"] == "never"
    # The template itself is not changed by instantiation (sets are copied, not shared).
    _, again = space.instantiate(space.resolve({"lr": 0.05, "variant": "mixer"}))
    assert again["switch"] == {"theta": 0.05, "K": 2, "unit": "epoch"} and again["corrector"] == {"T1": 10}


def test_set_values_may_hold_placeholders(space_file):
    text = textwrap.dedent("""\
        name: opt
        workload: {name: digits_mlp}
        policy: {type: single, optimizer: $opt}
        parameters:
          lam: {type: categorical, choices: [0.001, 0.1]}
          base: {type: categorical, choices: [ief, sgd]}
          optimizer_choice:
            type: categorical
            choices: [ief, sgd]
            sets:
              ief: {opt: {name: ief, lr: $lr_ief, damping: $lam}}
              sgd: {opt: {name: $base, lr: 0.1}}
        derived:
          lr_ief: lam * 10
        search: grid
        """)
    space = load_space(space_file(text))
    _, policy = space.instantiate(space.resolve({"lam": 0.1, "base": "sgd", "optimizer_choice": "ief"}))
    assert policy["optimizer"] == {"name": "ief", "lr": pytest.approx(1.0), "damping": 0.1}
    _, policy = space.instantiate(space.resolve({"lam": 0.1, "base": "sgd", "optimizer_choice": "sgd"}))
    assert policy["optimizer"] == {"name": "sgd", "lr": 0.1}


def _sets_edit(old, new):
    return lambda t: t.replace(old, new)


SET_CASES = [
    ("labels must be strings", _sets_edit("choices: [mixer, no_corrector, second_order]", "choices: [1, 2, 3]"),
     "parameters.variant.sets", "string labels", "1"),
    ("a choice without its set", _sets_edit("      second_order: {switch_rule: never, T1: 0}\n", ""),
     "parameters.variant.sets.second_order", "every choice needs its set of values", ""),
    ("a set for no choice", _sets_edit("      second_order:", "      extra: {switch_rule: never, T1: 0}\n"
                                                                "      second_order:"),
     "parameters.variant.sets.extra", "not one of the choices", "'extra'"),
    ("sets name different things", _sets_edit("second_order: {switch_rule: never, T1: 0}",
                                              "second_order: {switch_rule: never, T2: 0}"),
     "parameters.variant.sets.second_order", "same names", "['T2', 'switch_rule']"),
    ("a set value breaks the policy",
     _sets_edit("no_corrector: {switch_rule: {theta: 0.05, K: 2,", "no_corrector: {switch_rule: {theta: 0.05, K: 0,"),
     "parameters.variant", "policy.switch.K", "'no_corrector'"),
    ("a set name clashes with a parameter",
     lambda t: t.replace("T1: $T1", "T1: $lr").replace("T1: 10}", "lr: 10}").replace("T1: 0}", "lr: 0}"),
     "parameters.variant.sets", "already a parameter", "'lr'"),
    ("a set name is not used", _sets_edit("corrector: {T1: $T1}", "corrector: {T1: 0}"),
     "parameters.variant.sets", "not used", "'T1'"),
    ("a set refers to its own name", _sets_edit("mixer: {switch_rule: {theta: 0.05, K: 2, unit: epoch}, T1: 10}",
                                                "mixer: {switch_rule: $T1, T1: 10}"),
     "parameters.variant.sets.mixer.switch_rule", "its own parameter sets", "'$T1'"),
    ("a set refers to an unknown name", _sets_edit("T1: 10}", "T1: $nothing}"),
     "parameters.variant.sets.mixer.T1", "unknown parameter", "'$nothing'"),
    ("sets refer to each other in a cycle",
     lambda t: t.replace("lr: {type: categorical, choices: [0.05, 0.1]}",
                         "lr: {type: categorical, choices: [0.05, 0.1]}\n  other:\n    type: categorical\n"
                         "    choices: [a]\n    sets: {a: {k1: $T1}}").replace("T1: 10}", "T1: $k1}").replace(
                         "phase1: {name: kfac, lr: 0.05}", "phase1: {name: kfac, lr: 0.05, momentum: $k1}"),
     "parameters.", "cycle", "['other', 'variant']"),
]


@pytest.mark.parametrize(("desc", "edit", "key", "rule", "value"), SET_CASES, ids=[c[0] for c in SET_CASES])
def test_bad_sets_are_one_line_errors(desc, edit, key, rule, value, space_file, tmp_path, capsys):
    path = space_file(edit(SETS))
    code, err, storage = run_cli(tmp_path, path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and key in err and rule in err and value in err, err
    assert not storage.exists()


def test_samples_caps_a_grid_but_not_the_files_own_samples(space_file):
    space = load_space(space_file(SETS.replace("search: grid", "search: {algorithm: grid, samples: 2}")))
    assert space.n_configurations() == 6  # search.samples does not cap a grid
    assert space.with_overrides(samples=4).n_configurations() == 4
    assert space.with_overrides(samples=50).n_configurations() == 6
    assert space.with_overrides(seeds=2).n_configurations() == 6


WORKLOADS = """\
name: w
workload: {name: $task, batch_size: 32}
policy: {type: single, optimizer: {name: sgd, lr: 0.1}}
train: {steps: 20, eval_every: 10}
parameters:
  task: {type: categorical, choices: [digits_mlp, digits_cnn]}
search: grid
"""


def test_workload_name_may_be_a_categorical(space_file):
    space = load_space(space_file(WORKLOADS))
    assert space.n_configurations() == 2
    workload, _ = space.instantiate(space.resolve({"task": "digits_cnn"}))
    assert workload == {"name": "digits_cnn", "batch_size": 32}
    from hyperswitch.search.trial import trial_row

    row = trial_row(space, {"trial_id": "c0001-s0", "config_id": "c0001", "seed": 0, "params": {"task": "digits_cnn"}},
                    None, "completed")
    assert row["workload"] == "digits_cnn" and row["task"] == "digits_cnn"  # the value, not the template's $task


@pytest.mark.parametrize(("policy", "optimizers"), [
    # the mixer's phases come from its defaults: a row built from the raw template used to name none
    ("{type: mixer, switch: {theta: $theta}}", "kfac,sgdm"),
    ("{type: switch, phase1: {name: adam, lr: 0.001}, phase2: {name: sgdm, lr: 0.1}, switch: {at: $theta}}",
     "adam,sgdm"),
    ("{type: iomt, tau: $theta, candidates: [{name: sgd, lr: 0.1}, {name: adam, lr: 0.001}, {name: sgd, lr: 0.01}]}",
     "sgd,adam"),
    ("{type: single, optimizer: {name: adam, lr: 0.001}, lr_rule: {name: gen, phi: $theta}}", "adam"),
])
def test_trial_row_names_the_validated_policys_optimizers(policy, optimizers, space_file):
    from hyperswitch.search.trial import trial_row

    space = load_space(space_file(WORKLOADS.replace("{type: single, optimizer: {name: sgd, lr: 0.1}}", policy)
                                  .replace("task: {type: categorical, choices: [digits_mlp, digits_cnn]}",
                                           "theta: {type: categorical, choices: [5, 10]}")
                                  .replace("$task", "digits_mlp")))
    row = trial_row(space, {"trial_id": "c0001-s0", "config_id": "c0001", "seed": 0, "params": {"theta": 5}},
                    None, "completed")
    assert row["optimizers"] == optimizers


@pytest.mark.parametrize(("edit", "rule", "value"), [
    (lambda t: t.replace("digits_cnn]", "imagenet]"), "unknown workload", "'imagenet'"),
    (lambda t: t.replace("batch_size: 32", "batch_size: 32, hidden: 8"), "workload.hidden: unknown key",
     "'digits_cnn'"),
])
def test_workload_choices_are_each_checked(edit, rule, value, space_file, tmp_path, capsys):
    path = space_file(edit(WORKLOADS))
    code, err, _ = run_cli(tmp_path, path, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "parameters.task" in err and rule in err and value in err, err


def test_a_set_may_refer_to_another_parameters_set(space_file):
    text = textwrap.dedent("""\
        name: refresh
        workload: {name: digits_mlp}
        policy: {type: single, optimizer: $opt_spec}
        parameters:
          late: {type: categorical, choices: [10, 100]}
          optimizer:
            type: categorical
            choices: [kfac, shampoo]
            sets:
              kfac: {opt_spec: {name: kfac, damping: 0.1, inverse_interval: $interval}}
              shampoo: {opt_spec: {name: shampoo, epsilon: 0.0001, inverse_interval: $interval}}
          early:
            type: categorical
            choices: [none, epoch1]
            sets:
              none: {interval: $late}
              epoch1: {interval: {schedule: piecewise, values: [1, $late], boundaries: [22]}}
        search: grid
        """)
    space = load_space(space_file(text))
    assert space.set_order == ["early", "optimizer"]  # early's names are filled before optimizer's use them
    _, policy = space.instantiate(space.resolve({"late": 100, "optimizer": "shampoo", "early": "epoch1"}))
    assert policy["optimizer"] == {"name": "shampoo", "epsilon": 0.0001, "inverse_interval": {
        "schedule": "piecewise", "values": [1, 100], "boundaries": [22]}}
    _, policy = space.instantiate(space.resolve({"late": 10, "optimizer": "kfac", "early": "none"}))
    assert policy["optimizer"]["inverse_interval"] == 10


REGRESSION = """\
name: r
workload: {name: $task}
policy: {type: single, optimizer: {name: sgd, lr: 0.01}}
train: {steps: 20, eval_every: 10}
parameters:
  task: {type: categorical, choices: [digits_mlp, least_squares]}
search: grid
metric: val_loss
"""


@pytest.mark.parametrize(("edit", "rule", "value"), [
    (lambda t: t.replace("metric: val_loss", "metric: val_accuracy"),
     "metric: workload least_squares is a regression task with no accuracy (parameters.task = 'least_squares')",
     "'val_accuracy'"),
    (lambda t: t.replace("metric: val_loss", "metric: time_to_target_s"),
     "metric: measures when a run first reached its target: give train.target_accuracy or train.target_loss",
     "'time_to_target_s'"),
    (lambda t: t.replace("metric: val_loss", "metric: steps_to_target"), "give train.target_accuracy or",
     "'steps_to_target'"),
    (lambda t: t.replace("eval_every: 10}", "eval_every: 10, target_accuracy: 0.9}"),
     "train.target_accuracy: workload least_squares is a regression task", "0.9"),
])
def test_a_regression_workload_rejects_accuracy_metrics(edit, rule, value, space_file, tmp_path, capsys):
    assert load_space(space_file(REGRESSION)).n_configurations() == 2  # val_loss: fine for both
    # a target loss serves both tasks: the time and the steps to it are metrics of either
    for metric in ("time_to_target_s", "steps_to_target"):
        with_target = REGRESSION.replace("metric: val_loss", f"metric: {metric}").replace(
            "eval_every: 10}", "eval_every: 10, target_loss: 0.5}")
        assert load_space(space_file(with_target)).metric == metric
    code, err, _ = run_cli(tmp_path, space_file(edit(REGRESSION)), capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert rule in err and f"(got {value})" in err, err


def test_exponent_numbers_without_a_dot_are_floats_and_quoted_numbers_are_errors(space_file, tmp_path, capsys):
    # YAML 1.1 (PyYAML's default) reads 1e-5 as the string '1e-5'; the loader follows YAML 1.2 here.
    text = BASE.replace("lr: {type: float, low: 0.01, high: 0.5, log: true}",
                        "lr: {type: float, low: 1e-5, high: 5E-1, log: true}")
    assert text != BASE
    p = load_space(space_file(text)).parameters["lr"]
    assert p.low == 1e-5 and p.high == 0.5 and isinstance(p.low, float)
    quoted = text.replace("adam, lr: 0.001", "adam, lr: '1e-3'")
    assert quoted != text
    code, err, storage = run_cli(tmp_path, space_file(quoted, "q.yaml"), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and not storage.exists(), err
    assert "policy.phase1.lr: must be a number" in err and "(got '1e-3')" in err, err


def test_a_workload_metric_needs_a_workload_that_reports_it(space_file, tmp_path, capsys):
    curves = REGRESSION.replace("choices: [digits_mlp, least_squares]", "choices: [curves_autoencoder]")
    assert load_space(space_file(curves.replace("metric: val_loss", "metric: val_recon_error"))).mode == "min"
    code, err, _ = run_cli(tmp_path, space_file(REGRESSION.replace("metric: val_loss", "metric: val_recon_error")),
                           capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "metric: workload digits_mlp does not report val_recon_error" in err
    assert "only curves_autoencoder do" in err and "(got 'val_recon_error')" in err, err
