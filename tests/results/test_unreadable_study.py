"""A study with an unreadable table (a truncated trials.parquet: its first 100 bytes, say): every command says so
in one line naming the file and exits 2, and changes nothing in the study folder. Before, `export` and
`sweep --resume` printed a pyarrow traceback (exit 1) and `report` exited 1 (or, with a truncated
steps.parquet, wrote a half report and exited 0)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyperswitch.cli import main
from hyperswitch.results.store import StudyStore
from tests.results.studyfab import hyperswitch, make_study, snapshot

RUNNING = {"trial_id": "c0002-s0", "config_id": "c0002", "seed": 0, "status": "running", "lr": 0.1}


def broken_study(tmp_path: Path, which: str) -> tuple[Path, Path, Path]:
    """The study with one file cut to its first 100 bytes; (space file, study folder, the broken file)."""
    space, root = make_study(tmp_path)
    StudyStore(root).write_trial_parts(RUNNING, [], [])  # a trial cut off by a dead driver: --resume discards it
    path = root / "parts" / "c0002-s0.trials.parquet" if which == "part" else root / f"{which}.parquet"
    path.write_bytes(path.read_bytes()[:100])
    return space, root, path


def everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


COMMANDS = {
    "export": lambda space, tmp: ["export", "fab", "--storage", "runs"],
    "report": lambda space, tmp: ["report", "fab", "--storage", "runs", "--out", "rep"],
    "resume": lambda space, tmp: ["sweep", str(space), "--storage", "runs", "--resume"],
}


@pytest.mark.parametrize("which", ["trials", "steps", "part"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_names_the_file_exit_2_changes_nothing(command, which, tmp_path, capsys):
    space, root, broken = broken_study(tmp_path, which)
    before, names = snapshot(root), everything(tmp_path)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(COMMANDS[command](space, tmp_path))
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.startswith(f"hyperswitch: error: {broken}: not a readable Parquet file ("), err
    assert len(err.splitlines()) == 1, err
    assert snapshot(root) == before  # bytes, mtimes and modes of every file in the study
    assert everything(tmp_path) == names  # no new file anywhere (no report folder, no policies/)


def test_studies_lists_it_as_unreadable_and_the_real_command_exits_2(tmp_path):
    space, root, broken = broken_study(tmp_path, "trials")
    before = snapshot(root)
    r = hyperswitch("studies", "--storage", "runs", cwd=tmp_path)
    assert r.returncode == 0 and "unreadable" in r.stdout, r.stdout + r.stderr
    r = hyperswitch("export", "fab", "--storage", "runs", cwd=tmp_path)  # the real command line, its own process
    assert r.returncode == 2 and not r.stdout, r.stdout + r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith(f"hyperswitch: error: {broken}: ")
    assert "Traceback" not in r.stderr and snapshot(root) == before
