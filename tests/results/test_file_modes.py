"""Files the study store and export write atomically get the mode a plain open() gives under the umask (they were
0600 whatever the umask: tempfile.mkstemp's mode survived the rename). Each writer runs in a real process started
with its own umask."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from tests.results.studyfab import HERE, ROOT

WRITE = """
import sys
from pathlib import Path
from studyfab import make_study
from hyperswitch.export import export_study
from hyperswitch.results.store import StudyStore

folder = Path(sys.argv[1])
_, root = make_study(folder)  # study.json, parts, then the three tables
row = {"trial_id": "c0002-s0", "config_id": "c0002", "seed": 0, "status": "running", "lr": 0.1}
StudyStore(root).write_trial_parts(row, [], [])  # a running trial's parts (not compacted)
export_study(root, output=str(folder / "policies") + "/")
"""


def test_written_files_honour_the_umask(tmp_path):
    """umask 022: 0644 (was 0600); umask 077: 0600 (the umask is honoured, not replaced by a fixed 0644)."""
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        folder = tmp_path / f"umask{umask:03o}"
        folder.mkdir()
        subprocess.run([sys.executable, "-c", WRITE, str(folder)], cwd=ROOT, umask=umask, check=True, timeout=120,
                       env={"PYTHONPATH": f"{ROOT}:{HERE}", "PATH": "/usr/bin:/bin"})
        root = folder / "runs" / "fab"
        files = [root / "study.json", root / "trials.parquet", root / "steps.parquet", root / "events.parquet",
                 *sorted((root / "parts").glob("c0002-s0.*.parquet")), *sorted((folder / "policies").glob("*.yaml"))]
        assert len(files) == 4 + 3 + 1, files
        modes = {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
        assert modes == {k: oct(mode) for k in modes}, f"umask {umask:03o}"
        assert not list(folder.rglob("*.tmp"))  # no temporary file left next to any of them


def test_current_umask_reads_without_changing_it(tmp_path):
    code = ("import os; from hyperswitch.results.files import current_umask, new_file_mode\n"
            "a = current_umask(); b = current_umask(); old = os.umask(0); os.umask(old)\n"
            "print(oct(a), oct(b), oct(old), oct(new_file_mode()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, umask=0o027, check=True, timeout=60,
                         capture_output=True, text=True).stdout.split()
    assert out == ["0o27", "0o27", "0o27", "0o640"]
    assert Path("/proc/self/status").read_text().count("Umask:") == 1  # the source it reads on Linux
