"""The dashboard's background prefetch never outlives the interpreter: a process that exits while a prefetch is
reading a study exits cleanly (a daemon thread still inside pyarrow during finalisation aborted such a process with
"terminate called without an active exception", or hung it; CI saw the hang)."""

from __future__ import annotations

import subprocess
import sys
import threading

from hyperswitch.figures import data
from tests._helpers import ROOT
from tests.dashboards.test_cli_pages import write_study

EXIT_DURING_PREFETCH = """
import sys, threading
from hyperswitch.figures.data import prefetch
prefetch(sys.argv[1])
print(sorted(t.name for t in threading.enumerate()))
"""


def test_exiting_during_a_prefetch_is_clean(tmp_path):
    root = write_study(tmp_path, running=False)
    for _ in range(5):
        run = subprocess.run([sys.executable, "-c", EXIT_DURING_PREFETCH, str(root)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "prefetch-part" in run.stdout  # the thread was still running when the script ended
        assert "terminate called" not in run.stderr


def test_stop_ends_a_waiting_prefetch(tmp_path, monkeypatch):
    root = write_study(tmp_path, running=False)
    monkeypatch.setattr(data, "_PREFETCH_STOP", threading.Event())
    monkeypatch.setattr(data, "_PREFETCH_THREADS", [])
    data.activity(True)  # a view is being computed: the prefetch waits for it
    try:
        data.prefetch(root)
        (thread,) = data._PREFETCH_THREADS
        assert thread.is_alive()
        data._stop_prefetching(timeout_s=30)
        assert not thread.is_alive()
    finally:
        data.activity(False)
