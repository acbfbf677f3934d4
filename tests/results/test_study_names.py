"""Study names are plain folder names (hyperswitch.results.names): `sweep --name ../escape` wrote its study
outside the storage folder and exited 0. Every command that takes a study name, or builds a path from one,
refuses a name that is not a plain name with one line and exit 2, and writes nothing anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboards._shared import Context
from hyperswitch.cli import main
from hyperswitch.errors import ConfigError
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.names import check_study_name, is_study_name
from tests.results.studyfab import SPACE, hyperswitch, make_study, snapshot

BAD = ["../escape", "a/b", "/tmp/abs", "..", ".", ".hidden", "-x", "", "x\ny", "a" * 129, "sp ace"]
GOOD = ["quickstart", "x", "mixer_thresholds_tpe", "quick-small", "v1.2", "_private", "0", "a" * 128]


@pytest.mark.parametrize("name", BAD, ids=[repr(n)[:20] for n in BAD])
def test_bad_names_are_refused(name):
    assert not is_study_name(name)
    with pytest.raises(ConfigError) as exc:
        check_study_name(name, "--name")
    shown = repr(name) if len(name) <= 90 else f"{repr(name)[:97]}..., {len(name)} characters"  # a long one is cut
    assert str(exc.value).startswith("--name: a study name must be letters, digits") and shown in str(exc.value)
    assert "\n" not in str(exc.value).replace(repr(name), "")


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name):
    assert check_study_name(name, "--name") == name


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_sweep_name_outside_the_storage_folder_is_one_line_exit_2_nothing_written(tmp_path):
    """The real command in its own process (before: it ran the sweep into runs/../escape and exited 0)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "fab.yaml").write_text(SPACE)
    before_parent = tree(tmp_path)
    r = hyperswitch("sweep", "fab.yaml", "--name", "../escape", "--storage", "runs", "--samples", "1", "--seeds",
                    "1", cwd=work, timeout=240)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("hyperswitch: error: --name: a study name must be") and "'../escape'" in r.stderr
    assert len(r.stderr.splitlines()) == 1 and not r.stdout, r.stderr
    assert tree(tmp_path) == before_parent  # no runs/, no escape/


@pytest.mark.parametrize("name", ["a/b", "ABSOLUTE", ".hidden", ".."])
def test_sweep_bad_name_in_process_writes_nothing(name, tmp_path, capsys):
    (tmp_path / "fab.yaml").write_text(SPACE)
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name  # an absolute path replaces the storage folder
    storage = tmp_path / "deep" / "runs"
    assert main(["sweep", str(tmp_path / "fab.yaml"), "--name", name, "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--name: a study name must be" in err, err
    assert tree(tmp_path) == ["fab.yaml"]


def test_space_name_with_a_newline_is_refused(tmp_path, capsys):
    """The space's own name: the old check (re.match with $) let a trailing newline through into a folder name."""
    path = tmp_path / "nl.yaml"
    path.write_text(SPACE.replace("name: fab\n", 'name: "fab\\n"\n'))
    assert main(["sweep", str(path), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{path}: name: a study name must be" in err and "'fab\\n'" in err, err
    assert tree(tmp_path) == ["nl.yaml"]


@pytest.mark.parametrize("command", ["export", "report"])
def test_export_and_report_refuse_a_name_that_is_no_study_folder(command, tmp_path, capsys):
    """STUDY is a study folder (it has study.json) or a plain name looked up under --storage; anything else is
    the name rule, not a lookup."""
    make_study(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(tmp_path)
    old = os.getcwd()
    os.chdir(tmp_path / "runs")
    try:
        extra = ["--out", str(tmp_path / "rep")] if command == "report" else []
        code = main([command, "../outside", "--storage", ".", *extra])
    finally:
        os.chdir(old)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hyperswitch: error: STUDY: is not a study folder (it has no study.json), and as a "
                          "study name: a study name must be") and "'../outside'" in err, err
    assert len(err.splitlines()) == 1
    assert snapshot(tmp_path) == before and not (tmp_path / "rep").exists() and not (tmp_path / "policies").exists()


def test_dashboard_refuses_a_crafted_study_name(tmp_path):
    """A study page URL (?study=...) names a study under the storage folder, never a path: a real study just
    outside it is not shown, and the page says why."""
    make_study(tmp_path)  # tmp/runs/fab
    ctx = Context(tmp_path / "runs" / "fab" / "parts")  # a storage folder whose parent holds a real study
    for crafted in ("../../fab", "..", "../fab"):
        with pytest.raises(NotApplicable, match="is not a study name: a study name must be"):
            ctx.study_path(crafted)
    assert Context(tmp_path / "runs").study_path("fab") == tmp_path / "runs" / "fab"
