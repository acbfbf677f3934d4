"""``hyperswitch sweep`` runs its sweep in a child process and watches over it.

Ray ends a driver whose node or cluster goes away from inside its C++ core (no Python code runs: no
``finally``, no message), and a dead GCS leaves it waiting for a minute first. So the command forks: the child
is the sweep (the Ray driver); the parent waits for it, passes on the signals sent to the command alone (a
terminal's Ctrl-C reaches both), and watches the Ray processes the child names (raylet, GCS server, the
raylet's agents). When one of them dies, or the child ends without saying it finished, the parent stops what
is left of that Ray (every process below it: it is their subreaper), marks the study interrupted and prints one
line: what died, how many trials are saved, how to resume; exit status 75 (``EXIT_RAY_LOST``). Trials cut off
keep their checkpoints and continue from them on ``--resume``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperswitch import _ray

EXIT_RAY_LOST = 75  # sysexits' EX_TEMPFAIL: try again (here: --resume)
_fd: int | None = None  # in the child: the pipe to the parent
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
_SI_KERNEL = 0x80  # si_code of a signal the kernel sent (a terminal's Ctrl-C), not kill()
VITAL = ("raylet", "gcs_server", "ray::RuntimeEnvAgent", "ray::DashboardAgent")


def tell(**message: Any) -> None:
    """From the sweep (the child): one message to the supervising parent, if there is one."""
    if _fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(_fd, (json.dumps(message, default=str) + "\n").encode())


def supervised(run: Callable[[], int]) -> int:
    """Run ``run()`` (the sweep; returns an exit status) in a child process and return its exit status."""
    if os.name != "posix" or not hasattr(os, "fork") or not hasattr(signal, "sigtimedwait"):
        return run()
    _become_subreaper()
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # until the parent waits for them
    pid = os.fork()
    if pid == 0:  # the child: the sweep itself; it never returns into the caller
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(r)
        global _fd
        _fd = w
        try:
            code = run()
        except KeyboardInterrupt:
            code = 130
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # a bug: its traceback, as without the supervisor
            traceback.print_exc()
            code = 1
        tell(end=True, code=code)
        _ray.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    os.close(w)
    try:
        return _watch(pid, r)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _become_subreaper() -> None:
    """Linux: orphaned descendants (Ray's workers when their raylet dies) become this process's children, so
    that none is left behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int((p / "stat").read_text().rpartition(")")[2].split()[1])
                tree.setdefault(ppid, []).append(int(p.name))
    return tree


def _descendants(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        for c in tree.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _reap(child: int) -> int | None:
    """Reap every exited child (orphans included); the wait status of ``child`` if it was among them."""
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = st


def _stop_all(child: int, status: int | None) -> int | None:
    """SIGKILL the child and every process below this one; reap them. Returns the child's wait status."""
    with contextlib.suppress(ProcessLookupError):
        if status is None:
            os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = _reap(child)
        status = st if st is not None else status
        left = [p for p in _descendants(os.getpid()) if _alive(p)]
        if not left and status is not None:
            break
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.05)
    return status


def _watch(child: int, r: int) -> int:
    os.set_blocking(r, False)
    buf, info, watched, dead = [b""], {}, {}, []

    def read_messages() -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(r, 65536):
                buf[0] += chunk
        *lines, buf[0] = buf[0].split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                info.update(msg)
                watched.update({int(k): v for k, v in msg.get("ray", {}).items()})

    status: int | None = None
    while status is None:
        got = signal.sigtimedwait(_SIGNALS, 0.2)
        if got is not None and got.si_signo != signal.SIGCHLD and got.si_code != _SI_KERNEL:
            with contextlib.suppress(ProcessLookupError):  # sent to this command alone: pass it on
                os.kill(child, got.si_signo)
        read_messages()
        status = _reap(child)
        if status is None and not info.get("end"):
            gone = [(pid, name) for pid, name in watched.items() if (pid, name) not in dead and not _alive(pid)]
            read_messages()  # the sweep says it ended before it shuts its Ray down: that is no death
            if gone and not info.get("end"):  # the sweep cannot go on without it: stop what is left of that Ray
                dead += gone
                status = _stop_all(child, None)
    read_messages()  # the child is gone: all it wrote is there
    buf[0] += b"\n"
    read_messages()
    os.close(r)
    if info.get("end"):
        _stop_all(child, status)  # nothing should be left; make sure
        return os.waitstatus_to_exitcode(status) if status is not None else 1
    status = _stop_all(child, status)
    return _report(child, status, dead, info)


def _report(child: int, status: int | None, dead: list[tuple[int, str]], info: dict[str, Any]) -> int:
    """The sweep's child ended without finishing: say what died and how to go on. Exit status 75, or 128 + the
    signal that killed the driver when no Ray process died (as a shell reports it)."""
    signum = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) and not dead else None
    killed = signum is not None
    if dead:
        names = [f"{name.removeprefix('ray::')} (pid {pid})" for pid, name in dead]  # seen in one look: any order
        what = f"Ray's {', '.join(names[:-1]) + ' and ' if len(names) > 1 else ''}{names[-1]} died"
    elif signum is not None:
        what = f"the sweep's driver (pid {child}) was killed ({signal.Signals(signum).name})"
    else:
        code = os.waitstatus_to_exitcode(status) if status is not None else "?"
        what = (f"the sweep's driver (pid {child}) died (exit status {code}; Ray ends a driver that lost its node "
                "or cluster)")
    saved = ""
    study = info.get("study")
    if study:
        with contextlib.suppress(Exception):
            from hyperswitch.results.reader import open_study
            from hyperswitch.results.store import StudyStore

            store = StudyStore(study)
            meta = store.read_meta()
            if meta.get("status") == "running":
                from hyperswitch.search.runner import _now

                store.update_meta(status="interrupted", interrupted_by="signal" if killed else "ray",
                                  updated=_now())
            saved = f"{len(open_study(study).finished())}/{meta.get('n_trials_total', '?')} trials finished and saved; "
        with contextlib.suppress(Exception):
            from hyperswitch.results.lock import release_dead_holder

            release_dead_holder(study, child)  # the dead driver's lock: the next --resume needs no takeover
    resume = info.get("resume")
    how = f"continue with `{resume}`" if resume else "nothing was saved yet"
    print(f"hyperswitch: {what}; {saved}{how}", file=sys.stderr, flush=True)
    return 128 + signum if signum is not None else EXIT_RAY_LOST


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ray_processes() -> dict[int, str]:
    """This driver's vital Ray processes, ``{pid: name}``: an embedded Ray's GCS server and raylet (a cluster's
    local raylet), and the raylet's agents (the raylet exits when one of them dies)."""
    if not Path("/proc").is_dir():
        return {}
    found = _ray.node_processes()
    if "raylet" not in found.values():  # joined a cluster: its raylet on this machine, by its socket
        sock = _ray.raylet_socket_name()
        if sock:
            for p in Path("/proc").iterdir():
                if p.name.isdigit() and f"--raylet_socket_name={sock} " in _cmdline(int(p.name)) + " " \
                        and "/raylet" in _cmdline(int(p.name)).split(" ")[0]:
                    found[int(p.name)] = "raylet"
    tree = _children()
    for raylet in [pid for pid, kind in found.items() if kind == "raylet"]:
        for c in tree.get(raylet, []):
            agent = next((a for a in VITAL[2:] if _cmdline(c).startswith(a)), None)
            if agent:
                found[c] = agent
    return found
