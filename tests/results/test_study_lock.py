"""One sweep driver per study (hyperswitch.results.lock.StudyLock): a second `sweep --resume` while a driver holds
the study is refused with one line naming the holder and changes nothing; a holder that died (SIGKILL on this
host, a stale heartbeat from another host) does not block a later --resume. Real processes, a real study folder
(tests/results/studyfab.py: study.json and Parquet tables written by the real store)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperswitch.cli import main
from hyperswitch.results.lock import StudyLock, StudyLocked
from tests.results.studyfab import ROOT, SPACE, hyperswitch, make_study, snapshot

HOLD = """
import sys
from hyperswitch.results.lock import StudyLock
lock = StudyLock(sys.argv[1], heartbeat_s=3600).acquire()
print("locked", lock.record["created"], flush=True)
sys.stdin.read()  # until the test closes our stdin
lock.release()
print("released", flush=True)
"""


def holder(root: Path) -> tuple[subprocess.Popen, str]:
    """A real process that takes the study's lock and keeps it until its stdin closes; (process, created)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "the holder did not take the lock within 60 s"
    line = proc.stdout.readline().split()
    assert line[:1] == ["locked"], line
    return proc, line[1]


def test_second_driver_is_refused_naming_the_holder_and_changes_nothing(tmp_path):
    space, root = make_study(tmp_path)
    proc, created = holder(root)
    try:
        before = snapshot(root)
        r = hyperswitch("sweep", str(space), "--storage", "runs", "--resume", cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert len(r.stderr.splitlines()) == 1 and not r.stdout, r.stdout + r.stderr
        assert r.stderr.startswith(f"hyperswitch: error: {root / '.lock'}: study: is in use by another sweep driver: "
                                   f"host {socket.gethostname()}, pid {proc.pid}, since {created}"), r.stderr
        assert snapshot(root) == before  # bytes, mtimes, modes: the holder's lock included
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0 and "released" in proc.stdout.read()
    assert not (root / ".lock").exists()
    r = hyperswitch("sweep", str(space), "--storage", "runs", "--resume", cwd=tmp_path)  # free again
    assert r.returncode == 0 and "nothing left to run" in r.stdout, r.stdout + r.stderr
    assert not list(root.glob(".lock*"))


def test_a_holder_killed_with_sigkill_does_not_block_resume(tmp_path):
    space, root = make_study(tmp_path)
    proc, created = holder(root)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert json.loads((root / ".lock").read_text())["pid"] == proc.pid  # left behind: no finally ran
    r = hyperswitch("sweep", str(space), "--storage", "runs", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (f"note: took over the lock of study fab from host {socket.gethostname()}, pid {proc.pid}, since {created}"
            in r.stdout and f"its process {proc.pid} on this host is gone" in r.stdout), r.stdout
    assert "nothing left to run" in r.stdout and not list(root.glob(".lock*"))


def other_host_lock(root: Path, heartbeat_age_s: float) -> dict:
    now = time.time()
    record = {"host": "node-b.cluster", "pid": 4242, "pid_start": 1234, "boot_id": "another-boot",
              "pid_namespace": "1", "created": "2025-01-02T03:04:05+00:00", "heartbeat_unix": now - heartbeat_age_s,
              "token": "theirs"}
    (root / ".lock").write_text(json.dumps(record))
    return record


def resume(space: Path, tmp_path: Path) -> int:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        return main(["sweep", str(space), "--storage", "runs", "--resume"])
    finally:
        os.chdir(old)


def test_a_stale_heartbeat_from_another_host_is_taken_over_a_fresh_one_is_not(tmp_path, capsys):
    space, root = make_study(tmp_path)
    other_host_lock(root, heartbeat_age_s=5)  # a driver on another node, alive 5 s ago
    before = snapshot(root)
    assert resume(space, tmp_path) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"hyperswitch: error: {root / '.lock'}: study: is in use by another sweep driver: host "
                          "node-b.cluster, pid 4242, since 2025-01-02T03:04:05+00:00, last heartbeat 5 s ago"), err
    assert len(err.splitlines()) == 1 and not out and snapshot(root) == before

    other_host_lock(root, heartbeat_age_s=3600)  # its node was lost an hour ago
    assert resume(space, tmp_path) == 0
    out, err = capsys.readouterr()
    assert ("note: took over the lock of study fab from host node-b.cluster, pid 4242, since "
            "2025-01-02T03:04:05+00:00, last heartbeat 3600 s ago: its last heartbeat is 3600 s old (more than 60 s)"
            ) in out, out + err
    assert "nothing left to run" in out and not list(root.glob(".lock*"))


def test_same_host_liveness_is_the_pid_and_its_start_time(tmp_path):
    """On its own host a holder is alive while its pid runs with the same start time, whatever its heartbeat:
    this very process (heartbeat a day old) is not taken over; the same pid with another start time (a reused
    pid) is."""
    mine = StudyLock(tmp_path)
    record = mine._new_record()
    (tmp_path / ".lock").write_text(json.dumps(dict(record, token="older", heartbeat_unix=time.time() - 86400)))
    with pytest.raises(StudyLocked, match=f"pid {os.getpid()}, since .*, last heartbeat 86400 s ago"):
        StudyLock(tmp_path).acquire()
    (tmp_path / ".lock").write_text(json.dumps(dict(record, token="older", pid_start=record["pid_start"] - 1)))
    with StudyLock(tmp_path) as lock:
        assert lock.notes and "the pid now belongs to another process" in lock.notes[0]
        assert json.loads((tmp_path / ".lock").read_text())["token"] == lock.token
    assert not list(tmp_path.glob(".lock*"))


def test_heartbeat_refreshes_and_a_lock_taken_over_is_never_overwritten(tmp_path):
    lock = StudyLock(tmp_path, heartbeat_s=0.05).acquire()
    first = json.loads((tmp_path / ".lock").read_text())["heartbeat_unix"]
    deadline = time.monotonic() + 30
    while json.loads((tmp_path / ".lock").read_text())["heartbeat_unix"] == first:
        assert time.monotonic() < deadline, "no heartbeat within 30 s"
        time.sleep(0.01)  # polling interval, not synchronisation: the loop ends on the file's content
    other_host_lock(tmp_path, heartbeat_age_s=0)  # another driver took it over (this one was frozen, say)
    while lock.lost is None:
        assert time.monotonic() < deadline, "the holder did not notice within 30 s"
        time.sleep(0.01)
    assert "host node-b.cluster" in lock.lost
    lock.release()
    assert json.loads((tmp_path / ".lock").read_text())["token"] == "theirs"  # not removed, not overwritten


@pytest.mark.slow
def test_a_running_sweep_holds_the_lock_and_gives_it_back_on_ctrl_c(tmp_path):
    """End to end: a real `hyperswitch sweep` (its own process, a real embedded Ray) holds the lock while it runs;
    a second driver is refused; Ctrl-C (SIGINT) ends the sweep, and the lock is gone."""
    (tmp_path / "fab.yaml").write_text(SPACE.replace("steps: 20", "steps: 100000").replace("eval_every: 10",
                                                                                          "eval_every: 50"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    driver = subprocess.Popen([sys.executable, "-m", "hyperswitch", "sweep", "fab.yaml", "--storage", "runs"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not any(ln.startswith("running ") for ln in lines):  # trials launched: the sweep is under way
            assert driver.poll() is None and time.monotonic() < deadline, "".join(lines)
            if select.select([driver.stdout], [], [], 1)[0]:
                lines.append(driver.stdout.readline())
        holder_pid = json.loads((tmp_path / "runs" / "fab" / ".lock").read_text())["pid"]
        r = hyperswitch("sweep", "fab.yaml", "--storage", "runs", "--resume", cwd=tmp_path)
        assert r.returncode == 2 and f"pid {holder_pid}, since" in r.stderr, r.stdout + r.stderr
        driver.send_signal(signal.SIGINT)
        rest, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, "".join(lines) + rest
    assert not list((tmp_path / "runs" / "fab").glob(".lock*")), "".join(lines) + rest
