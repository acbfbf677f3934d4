"""Files written atomically (a temporary file next to the target, then a rename) with the permissions a plain
``open()`` would have given them.

``tempfile.mkstemp`` creates its file with mode 0600 whatever the umask, and a rename keeps the mode, so a
study's tables, study.json or an exported policy written that way were readable by their owner only: on shared
storage, or with a dashboard run by another user, the others were locked out. :func:`temp_file` sets the
temporary file's mode to ``0o666 & ~umask`` at once, so the renamed file has the mode ``open()`` gives.

The umask is read from ``/proc/self/status`` (``Umask:``, Linux 4.7+) at every call, which changes nothing.
Where that line does not exist, it is read once with ``os.umask`` (set, then restored at once) and cached.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from hyperswitch.results.fs import ObjectPath

_fallback: int | None = None
_fallback_lock = threading.Lock()


def current_umask() -> int:
    """This process's umask, without changing it where ``/proc/self/status`` says it."""
    global _fallback
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _fallback_lock:
        if _fallback is None:
            old = os.umask(0o022)
            os.umask(old)
            _fallback = old
        return _fallback


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def temp_file(target: Path) -> tuple[int, str]:
    """A new temporary file in ``target``'s folder (so that the rename onto ``target`` is atomic), named after it
    and hidden (``.NAME.XXXX.tmp``), with the mode of :func:`new_file_mode`. Returns ``(fd, path)``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, new_file_mode())
        else:  # pragma: no cover  (Windows before Python 3.13)
            os.chmod(tmp, new_file_mode())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def write_bytes_atomic(data: bytes, target: Path | ObjectPath) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename: readers see the old or the new file.
    On an object store (:class:`~hyperswitch.results.fs.ObjectPath`), one upload of the whole object to its key,
    which is atomic there the way the rename is here."""
    if isinstance(target, ObjectPath):
        target.write_bytes(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
