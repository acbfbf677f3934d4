"""One sweep driver per study: ``StudyLock``, a lock file in the study folder (``runs/<study>/.lock``).

Two drivers on one study (a second ``hyperswitch sweep SPACE --resume`` while the first runs) would both run to
the end and write the same trial ids with different configurations. The driver takes this lock before it writes
anything to the study, for a new sweep and for ``--resume``, and gives it back when the sweep ends, also on
Ctrl-C and on errors. A second driver is refused with one line naming the holder: host, pid, since when.

Design, for a local folder and for a folder shared between cluster nodes (NFS and the like):

- **Taking it** is one atomic step that fails if the file exists: the holder's record (JSON: host, boot id, pid
  namespace, pid, the pid's start time, created, heartbeat, a random token) is written to a temporary file, then
  hard-linked to ``.lock`` (``link`` fails with EEXIST, atomically, on local file systems and on NFS, where
  ``O_EXCL`` was not always atomic); where hard links are not supported, ``O_CREAT | O_EXCL``. The file appears
  with its whole content. ``fcntl`` locks are not used: on shared storage they are missing, node-local or
  slow to recover depending on the file system and its mount options, and they fail silently.
- **A holder that died** must not block the next driver. On the holder's own host (same host name, boot id
  and pid namespace) that is exact: the holder is alive while its pid exists with the same start time (a pid
  reused by another process, a zombie or a reboot count as dead), so SIGKILL is taken over at once. From another
  host, the pid says nothing: the holder refreshes ``heartbeat`` every ``heartbeat_s`` (10 s) from a daemon
  thread, and a lock whose heartbeat is older than ``stale_s`` (60 s) is stale: its driver or its node is gone.
  Heartbeats are wall-clock UTC times, so the nodes' clocks must agree to well within ``stale_s`` (NTP does).
  A driver alive on its own host is never taken over, however old its heartbeat (a stopped process is alive).
- **Taking over** moves the stale file aside under a unique name (``rename``: one contender wins), checks that
  what it moved is the very record it judged stale (if another contender had taken the lock meanwhile, the
  fresh lock is put back), deletes it, then takes the lock as above; a note says whose lock it replaced and why.
- **Losing it**: a holder frozen for longer than ``stale_s`` (its node unreachable, say) may be taken over by a
  driver on another host. Its heartbeat thread then finds another token in the file, stops, and warns on
  stderr; it never overwrites a lock that is not its own, and release removes only its own.

On an object store (a storage URI such as ``s3://bucket/runs``: :class:`ObjectStoreLock`) there is no hard link,
no exclusive create and no rename; a PUT replaces an object whole and the last PUT wins; S3 reads and lists are
strongly consistent. The lock is the object ``<study>/.lock`` with the same record, and the same rules decide
whether its holder is alive (its own host: the pid; another host: the heartbeat). **Taking it** is a write and a
read-back: look at the lock object; if a live driver holds it, refuse; else PUT this driver's record, wait
``settle_s`` (3 s) and read it back: the lock is this driver's only if its own token is still there (a contender
that wrote later won; this one looks again and finds a live holder). Every PUT of the lock object must land
within ``settle_s / 2`` of the look it was based on: a look older than that is repeated before writing, and a
PUT that took longer is withdrawn (deleted if still this driver's) and tried again. Then two drivers cannot both
read back their own record: the later writer looked after the earlier one's record had landed, found it live and
did not write. **Limits**: this holds while PUTs take effect by the time they return (S3's strong consistency)
and a process does not freeze between its timing check and its request for more than ``settle_s / 2``; a holder
frozen past ``stale_s`` loses the lock as above, and a frozen holder's last heartbeat PUT landing after a takeover
would take the lock back (the other driver's heartbeat then reports the loss). Heartbeats and release are a look
and a PUT or a DELETE, under the same bound.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hyperswitch.errors import ConfigError
from hyperswitch.results.files import new_file_mode
from hyperswitch.results.fs import ObjectPath, StudyPath, file_version, read_consistent, study_path

LOCK_NAME = ".lock"
HEARTBEAT_S = 10.0
STALE_S = 60.0
SETTLE_S = 3.0  # object stores: how long a new holder waits before reading its record back


class StudyLocked(ConfigError):
    """Another driver holds the study: one line naming the lock file and the holder."""

    def __init__(self, path: StudyPath, holder: str, name: str) -> None:
        super().__init__("study", f"is in use by another sweep driver: {holder}; wait for it to end or stop it "
                         f"(a driver that died is taken over: at once on its own host, after {STALE_S:.0f} s without "
                         "a heartbeat from another)", name, file=str(path))


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _proc_start(pid: int) -> tuple[bool, int | None]:
    """(whether process ``pid`` is alive, its start time in clock ticks since boot or None where unknown)."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat:
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state is field 3, starttime field 22
        if fields and fields[0] in ("Z", "X"):  # a zombie (killed, not reaped yet) or dead
            return False, None
        try:
            return True, int(fields[19])
        except (IndexError, ValueError):
            return True, None
    if Path("/proc/self/stat").exists():  # /proc works and has no such process
        return False, None
    try:  # no /proc (macOS): signal 0 tells whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, None
    except PermissionError:
        pass
    return True, None


class StudyLock:
    """The lock of one study folder; a context manager. ``acquire()`` raises :class:`StudyLocked` when another
    live driver holds it; ``notes`` says whose stale lock was taken over; ``release()`` is idempotent. A study on
    an object store (an :class:`~hyperswitch.results.fs.ObjectPath`, or its URI) gets an :class:`ObjectStoreLock`."""

    path: Any  # a Path; an ObjectPath in ObjectStoreLock

    def __new__(cls, root: str | os.PathLike[str] | ObjectPath, **kw: Any) -> StudyLock:
        if cls is StudyLock and isinstance(study_path(root), ObjectPath):
            return super().__new__(ObjectStoreLock)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str] | ObjectPath, *, heartbeat_s: float = HEARTBEAT_S,
                 stale_s: float = STALE_S) -> None:
        self.root = study_path(root)
        self.path = self.root / LOCK_NAME
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.host = socket.gethostname()
        self.boot_id = _read_text("/proc/sys/kernel/random/boot_id")
        self.pidns = _pid_namespace()
        self.token = uuid.uuid4().hex
        self.notes: list[str] = []
        self.lost: str | None = None
        self.record: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the record ---------------------------------------------------------------------------------------
    def _new_record(self) -> dict[str, Any]:
        now = time.time()
        pid = os.getpid()
        return {"host": self.host, "pid": pid, "pid_start": _proc_start(pid)[1], "boot_id": self.boot_id,
                "pid_namespace": self.pidns, "created": _utc(now), "heartbeat": _utc(now), "heartbeat_unix": now,
                "token": self.token, "command": " ".join(sys.argv)[:300]}

    def _tmp(self, what: str) -> Path:
        assert isinstance(self.root, Path)  # (local folders only: ObjectStoreLock writes no temporary files)
        return self.root / f"{LOCK_NAME}.{what}-{self.host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _write_tmp(self, record: dict[str, Any]) -> Path:
        tmp = self._tmp("new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode())
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        return tmp

    def _read(self) -> tuple[bytes, dict[str, Any] | None, float] | None:
        """(raw bytes, the record or None if unreadable, the file's mtime), or None when there is no lock."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except FileNotFoundError:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        return raw, record if isinstance(record, dict) else None, mtime

    # --- taking and giving back ---------------------------------------------------------------------------
    def _create(self, record: dict[str, Any]) -> bool:
        """Create the lock file with ``record``, atomically; False if it exists."""
        tmp = self._write_tmp(record)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: an exclusive create
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode())
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(tmp.read_bytes())
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _why_stale(self, record: dict[str, Any] | None, mtime: float) -> str | None:
        """Why the holder is gone, or None while it may be alive."""
        now = time.time()
        if record is None:  # only a damaged file (a crash mid-write on a file system without link)
            age = now - mtime
            return f"an unreadable lock file {age:.0f} s old" if age > self.stale_s else None
        same_host = (record.get("host") == self.host and record.get("boot_id", "") == self.boot_id
                     and record.get("pid_namespace", "") == self.pidns)
        if same_host and isinstance(record.get("pid"), int):
            alive, start = _proc_start(record["pid"])
            if not alive:
                return f"its process {record['pid']} on this host is gone"
            if record.get("pid_start") is not None and start is not None and start != record["pid_start"]:
                return f"its process {record['pid']} on this host is gone (the pid now belongs to another process)"
            return None
        beat = record.get("heartbeat_unix")
        age = now - float(beat) if isinstance(beat, int | float) else now - mtime
        if age > self.stale_s:
            return (f"its last heartbeat is {age:.0f} s old (more than {self.stale_s:.0f} s): the driver or its "
                    "node is gone")
        return None

    @staticmethod
    def describe(record: dict[str, Any] | None, mtime: float | None = None) -> str:
        """The holder in words: host, pid, since when, last heartbeat."""
        if record is None:
            when = f" (written {_utc(mtime)})" if mtime is not None else ""
            return f"an unreadable lock file{when}"
        beat = record.get("heartbeat_unix")
        ago = f", last heartbeat {max(0.0, time.time() - float(beat)):.0f} s ago" \
            if isinstance(beat, int | float) else ""
        return f"host {record.get('host', '?')}, pid {record.get('pid', '?')}, since {record.get('created', '?')}{ago}"

    def _take_aside(self, raw: bytes) -> bool:
        """Remove the stale lock whose content is ``raw``; False if the file changed meanwhile (someone else
        took it over or it was released): the caller looks again."""
        aside = self._tmp("stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            if aside.read_bytes() == raw:
                return True
            try:  # a fresh lock of another contender: put it back
                os.link(aside, self.path)
            except FileExistsError:
                pass
            return False
        finally:
            aside.unlink(missing_ok=True)

    def acquire(self) -> StudyLock:
        """Take the lock (the study folder must exist); :class:`StudyLocked` if a live driver holds it."""
        if self.record is not None:
            return self
        for _ in range(20):
            record = self._new_record()
            if self._create(record):
                self.record = record
                self._thread = threading.Thread(target=self._beat, name=f"study-lock-{self.root.name}", daemon=True)
                self._thread.start()
                return self
            held = self._read()
            if held is None:  # released meanwhile
                continue
            raw, other, mtime = held
            why = self._why_stale(other, mtime)
            if why is None:
                raise StudyLocked(self.path, self.describe(other, mtime), self.root.name)
            if self._take_aside(raw):
                self.notes.append(f"took over the lock of study {self.root.name} from {self.describe(other, mtime)}: "
                                  f"{why}")
        held = self._read()
        raise StudyLocked(self.path, self.describe(held[1], held[2]) if held else "another driver", self.root.name)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                looked = time.monotonic()
                held = self._read()
                if held is None or held[1] is None or held[1].get("token") != self.token:
                    holder = self.describe(held[1], held[2]) if held else "nobody (the lock file is gone)"
                    self.lost = holder
                    print(f"hyperswitch: warning: the lock of study {self.root.name} is no longer this driver's (now "
                          f"{holder}): another driver may write this study", file=sys.stderr, flush=True)
                    return
                now = time.time()
                assert self.record is not None
                self.record = dict(self.record, heartbeat=_utc(now), heartbeat_unix=now)
                self._refresh(self.record, looked)
            except OSError as exc:  # a storage hiccup: try again at the next beat
                print(f"hyperswitch: warning: could not refresh the lock of study {self.root.name} "
                      f"({exc.strerror or exc})", file=sys.stderr, flush=True)

    def _refresh(self, record: dict[str, Any], looked: float) -> None:
        """Replace the lock file with ``record`` (a heartbeat; ``looked``: when the file was read, by
        ``time.monotonic``)."""
        tmp = self._write_tmp(record)
        try:
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        """Give the lock back (only if it is still this driver's)."""
        if self.record is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        held = self._read()
        if held is not None and held[1] is not None and held[1].get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.record = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class ObjectStoreLock(StudyLock):
    """The study lock on an object store: a write and a read-back ``settle_s`` later, each write landing within
    ``settle_s / 2`` of the look it was based on (see the module docstring for why that excludes a second holder,
    and for its limits)."""

    def __init__(self, root: str | os.PathLike[str] | ObjectPath, *, heartbeat_s: float = HEARTBEAT_S,
                 stale_s: float = STALE_S, settle_s: float = SETTLE_S) -> None:
        super().__init__(root, heartbeat_s=heartbeat_s, stale_s=stale_s)
        self.settle_s = settle_s

    def _raw(self, record: dict[str, Any]) -> bytes:
        return (json.dumps(record, indent=1) + "\n").encode()

    def _read(self) -> tuple[bytes, dict[str, Any] | None, float] | None:
        try:  # read again while it does not parse: a heartbeat may have replaced it mid-read
            raw = read_consistent(self.path, lambda data: (json.loads(data), data)[1])
        except FileNotFoundError:
            return None
        except ValueError:  # unreadable however often it is read: a damaged record
            raw = self.path.read_bytes()
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("heartbeat_unix"), int | float):
            version = file_version(self.path)  # the object's time: only for a record without a heartbeat
            mtime = version[0] / 1e9 if version else time.time()
        else:
            mtime = float(record["heartbeat_unix"])
        return raw, record if isinstance(record, dict) else None, mtime

    def _withdraw(self) -> None:
        """Delete the lock object if it holds this driver's record."""
        held = self._read()
        if held is not None and held[1] is not None and held[1].get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def acquire(self) -> StudyLock:
        """Take the lock: look, PUT this driver's record, wait ``settle_s``, read it back (module docstring)."""
        if self.record is not None:
            return self
        bound = self.settle_s / 2
        note = None
        for _ in range(20):
            looked = time.monotonic()
            held = self._read()
            if held is not None:
                raw, other, mtime = held
                if other is None or other.get("token") != self.token:  # (this driver's own: a withdrawn try)
                    why = self._why_stale(other, mtime)
                    if why is None:
                        raise StudyLocked(self.path, self.describe(other, mtime), self.root.name)
                    note = f"took over the lock of study {self.root.name} from {self.describe(other, mtime)}: {why}"
            if time.monotonic() - looked > bound:  # the look is too old to act on
                continue
            record = self._new_record()
            self.path.write_bytes(self._raw(record))
            if time.monotonic() - looked > bound:  # it may have landed after another driver's read-back
                self._withdraw()
                continue
            time.sleep(self.settle_s)  # (not synchronisation with a known party: the window for other writers)
            back = self._read()
            if back is not None and back[1] is not None and back[1].get("token") == self.token:
                self.record = record
                if note is not None:
                    self.notes.append(note)
                self._thread = threading.Thread(target=self._beat, name=f"study-lock-{self.root.name}", daemon=True)
                self._thread.start()
                return self
        held = self._read()
        raise StudyLocked(self.path, self.describe(held[1], held[2]) if held else "another driver", self.root.name)

    def _refresh(self, record: dict[str, Any], looked: float) -> None:
        if time.monotonic() - looked > self.settle_s / 2:
            return  # the look is too old to write on: the next beat looks again
        self.path.write_bytes(self._raw(record))

    def release(self) -> None:
        if self.record is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._withdraw()
        self.record = None

    def _take_aside(self, raw: bytes) -> bool:
        """Delete the stale lock object whose content is ``raw``, if it still is (a look, then a DELETE)."""
        held = self._read()
        if held is None or held[0] != raw:
            return False
        self.path.unlink(missing_ok=True)
        return True


def release_dead_holder(root: str | os.PathLike[str] | ObjectPath, pid: int) -> bool:
    """Remove the lock of study folder ``root`` if process ``pid`` of this host held it and is gone (the
    supervising ``hyperswitch sweep`` parent cleans up after its dead driver, so the next ``--resume`` finds no
    stale lock to take over). True if a lock was removed."""
    lock = StudyLock(root)
    held = lock._read()
    if held is None:
        return False
    raw, record, mtime = held
    if record is None or record.get("pid") != pid:
        return False
    if lock._why_stale(record, mtime) is None or record.get("host") != lock.host:
        return False
    return lock._take_aside(raw)
