"""Bad input through the real CLI: the exact one-line message (FILE[:LINE:COL]: KEY: RULE (got VALUE)), exit status
2, and nothing written (issue 12, item 7). Each case pins a fault of the old messages: a stray ': :' for a missing
file, a YAML error without its line ('(got None)', or the parser's multi-line text squeezed onto one), an unknown
key shown with its whole mapping, a bad range bound blamed on the template instead of parameters.NAME.low."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from hyperswitch.cli import main
from hyperswitch.errors import ConfigError
from tests.results.studyfab import make_study, snapshot  # a small real study without Ray

SPACE = """\
name: t
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: $lr, momentum: 0.9}
  switch: {at: 10}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.5, log: true}
search: {algorithm: tpe, samples: 2}
"""

POLICY = """\
policy:
  type: switch
  phase1: {name: adam, lr: 0.001}
  phase2: {name: sgdm, lr: 0.1, momentum: 0.9}
  switch: {at: 10}
train: {steps: 5, eval_every: 5}
"""


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.strip()


def sweep(tmp_path: Path, capsys, text: str | None) -> tuple[int, str, Path]:
    """Run ``hyperswitch sweep`` on ``text`` (None: a file that does not exist); assert exit 2, one line and an
    untouched storage folder; return (path, error without the 'hyperswitch: error: ' prefix)."""
    path = tmp_path / "space.yaml"
    if text is not None:
        path.write_text(text)
    storage = tmp_path / "runs"
    code, err = run(capsys, "sweep", str(path), "--storage", str(storage))
    assert code == 2 and err.count("\n") == 0 and err.startswith("hyperswitch: error: "), err
    assert not storage.exists()
    return path, err.removeprefix("hyperswitch: error: ")


def train(tmp_path: Path, capsys, text: str | None) -> tuple[Path, str]:
    path = tmp_path / "policy.yaml"
    if text is not None:
        path.write_text(text)
    before = sorted(tmp_path.rglob("*"))
    code, err = run(capsys, "train", str(path))
    assert code == 2 and err.count("\n") == 0 and err.startswith("hyperswitch: error: "), err
    assert sorted(tmp_path.rglob("*")) == before
    return path, err.removeprefix("hyperswitch: error: ")


# --- (i) a file that cannot be read: no stray ': :', the file named once -------------------------------------------
def test_missing_search_space(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, None)
    assert err == f"{path}: cannot read search space: No such file or directory"


def test_missing_policy_file(tmp_path, capsys):
    path, err = train(tmp_path, capsys, None)
    assert err == f"{path}: cannot read policy file: No such file or directory"


def test_search_space_that_is_a_folder_or_not_text(tmp_path, capsys):
    storage = tmp_path / "runs"
    code, err = run(capsys, "sweep", str(tmp_path), "--storage", str(storage))
    assert (code, err) == (2, f"hyperswitch: error: {tmp_path}: cannot read search space: Is a directory")
    path = tmp_path / "space.yaml"
    path.write_bytes(b"name: t\n\xff\xfe\n")
    code, err = run(capsys, "sweep", str(path), "--storage", str(storage))
    assert (code, err) == (2, f"hyperswitch: error: {path}: cannot read search space: it is not UTF-8 text (byte 8 "
                              "is b'\\xff')")  # (was a UnicodeDecodeError traceback, exit 1)
    assert not storage.exists()


def test_empty_files(tmp_path, capsys):
    # (was '(top level): must be a mapping (got None)')
    path, err = sweep(tmp_path, capsys, "# nothing yet\n")
    assert err == f"{path}: is empty; it must hold a mapping of keys"
    path, err = train(tmp_path, capsys, "")
    assert err == f"{path}: is empty; it must hold a mapping of keys"


# --- (ii) YAML syntax: FILE:LINE:COL, the parser's reason, no '(got None)' -------------------------------------------
UNCLOSED = ("  switch: {at: 10}\ntrain:", "  switch: {at: 10\ntrain:")  # the flow mapping on line 5 never closes


def test_malformed_search_space(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, edit(SPACE, *UNCLOSED))
    assert err == (f"{path}:8:6: is not valid YAML: expected ',' or '}}', but got ':' (while parsing a flow mapping "
                   "at line 7, column 11)")


def test_malformed_policy_file(tmp_path, capsys):
    path, err = train(tmp_path, capsys, edit(POLICY, *UNCLOSED))
    assert err == (f"{path}:6:6: is not valid YAML: expected ',' or '}}', but got ':' (while parsing a flow mapping "
                   "at line 5, column 11)")


def test_bad_indentation(tmp_path, capsys):
    bad = edit(POLICY, "  phase1:", "   phase1:")
    path, err = train(tmp_path, capsys, bad)
    assert err == f"{path}:3:10: is not valid YAML: mapping values are not allowed here"
    path, err = sweep(tmp_path, capsys, edit(SPACE, "  phase1:", "   phase1:"))
    assert err == f"{path}:5:10: is not valid YAML: mapping values are not allowed here"


def test_unsafe_tag(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, "!!python/object/apply:os.system ['echo pwned']\n")
    assert err == (f"{path}:1:1: is not valid YAML: could not determine a constructor for the tag "
                   "'tag:yaml.org,2002:python/object/apply:os.system'")


# --- (iii) unknown keys: the key, a close match, the allowed keys; never the value's mapping -------------------------
def test_unknown_top_level_key_of_a_search_space(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, edit(SPACE, "parameters:", "paramters:"))
    assert err == (f"{path}: paramters: unknown key; did you mean parameters? allowed: name, description, workload, "
                   "policy, train, parameters, derived, search, seeds, scheduler, metric, mode, constraints, "
                   "resources, max_concurrent")


def test_unknown_top_level_key_of_a_policy_file(tmp_path, capsys):
    path, err = train(tmp_path, capsys, edit(POLICY, "train:", "trian:"))
    assert err == (f"{path}: trian: unknown key; did you mean train? allowed: name, description, policy, workload, "
                   "train, provenance")
    path, err = train(tmp_path, capsys, POLICY + "colour: {r: 1, g: 2}\n")
    assert err == f"{path}: colour: unknown key; allowed: name, description, policy, workload, train, provenance"


def test_unknown_optimizer_hyperparameter(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, edit(SPACE, "momentum: 0.9}", "momentm: 0.9}"))
    assert err == (f"{path}: policy.phase2.momentm: unknown hyperparameter of sgdm; did you mean momentum? "
                   "allowed: lr, momentum, nesterov, weight_decay")


def test_a_long_value_is_cut(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, edit(SPACE, "name: t\n", f"name: {'a' * 200}\n"))
    assert err == (f"{path}: name: a study name must be letters, digits, '_', '-' or '.', start with a letter, "
                   "digit or '_' and be at most 128 characters (it names a folder under the storage folder) (got "
                   f"'{'a' * 96}..., 200 characters)")


# --- (iv) a value that breaks the optimizer's rule: the parameter's bound, and which use imposes the rule -----------
def test_negative_lower_bound_is_the_parameters_low(tmp_path, capsys):
    path, err = sweep(tmp_path, capsys, edit(SPACE, "low: 0.01, high: 0.5, log: true", "low: -0.1, high: 0.1"))
    assert err == (f"{path}: parameters.lr.low: invalid sgdm setting: lr must be >= 0, but got -0.1 "
                   "(it is policy.phase2.lr)")


def test_upper_bound_at_a_second_use(tmp_path, capsys):
    # $lr fills two keys; the second one's rule breaks at the range's top
    text = edit(edit(SPACE, "momentum: 0.9}", "momentum: $lr}"), "low: 0.01, high: 0.5, log: true",
                "low: 0.01, high: 1.5, log: true")
    path, err = sweep(tmp_path, capsys, text)
    assert err == (f"{path}: parameters.lr.high: invalid sgdm setting: momentum must be in [0, 1), but got 1.5 "
                   "(it is policy.phase2.momentum)")


def test_a_rule_other_than_the_optimizers(tmp_path, capsys):
    text = edit(edit(SPACE, "switch: {at: 10}", "switch: {at: $at}"), "search:",
                "  at: {type: int, low: -5, high: 10}\nsearch:")
    path, err = sweep(tmp_path, capsys, text)
    assert err == f"{path}: parameters.at.low: must be >= 0 (it is policy.switch.at) (got -5)"


def test_a_derived_value(tmp_path, capsys):
    text = edit(edit(SPACE, "lr: $lr,", "lr: $lr2,"), "search:", "derived:\n  lr2: lr * 2\nsearch:")
    text = edit(text, "low: 0.01, high: 0.5, log: true", "low: -0.1, high: 0.1")
    path, err = sweep(tmp_path, capsys, text)
    assert err == (f"{path}: derived.lr2: invalid sgdm setting: lr must be >= 0, but got -0.2 (it is policy.phase2.lr; "
                   "from lr = -0.1)")


def test_a_bad_value_in_a_policy_file_names_its_key(tmp_path, capsys):
    path, err = train(tmp_path, capsys, edit(POLICY, "lr: 0.1,", "lr: -0.1,"))
    assert err == f"{path}: policy.phase2.lr: invalid sgdm setting: lr must be >= 0, but got -0.1"


# --- output paths: one line, not an OSError traceback ----------------------------------------------------------------
def test_export_and_report_into_a_file(tmp_path, capsys, monkeypatch):
    _, study = make_study(tmp_path)
    (tmp_path / "afile").write_text("not a folder\n")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for argv, message in [
        (["export", "fab", "-o", "afile/x.yaml"], "-o: cannot write into afile: it is a file (got 'afile/x.yaml')"),
        (["export", "fab", "-o", "afile/sub/"],
         "-o: cannot write into afile/sub: afile is a file, not a folder (got 'afile/sub/')"),
        (["report", "fab", "--out", "afile/report"],
         "--out: cannot write into afile/report: afile is a file, not a folder (got 'afile/report')"),
    ]:
        code, err = run(capsys, *argv)
        assert (code, err) == (2, f"hyperswitch: error: {message}"), argv
    assert snapshot(tmp_path) == before


# --- the error itself ------------------------------------------------------------------------------------------------
def test_config_error_pickles():
    for exc in (ConfigError("a.b", "must be >= 0", -1, file="f.yaml"), ConfigError("", "cannot read", file="f.yaml"),
                ConfigError("", "is not valid YAML: x", file="f.yaml", line=3, column=4)):
        back = pickle.loads(pickle.dumps(exc))  # (the old class could not be unpickled: __init__ needs a rule)
        assert type(back) is ConfigError and str(back) == str(exc) and back.key == exc.key


# --- the installed program (the sweep runs under its supervisor) -----------------------------------------------------
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_the_program_prints_the_same_line(command, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(SPACE if command == "sweep" else POLICY, "  phase1:", "   phase1:"))
    extra = ["--storage", str(tmp_path / "runs")] if command == "sweep" else []
    proc = subprocess.run([sys.executable, "-m", "hyperswitch", command, str(path), *extra], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    line = 5 if command == "sweep" else 3
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", f"hyperswitch: error: {path}:{line}:10: is not valid YAML: mapping values are not allowed here\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
