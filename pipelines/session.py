"""The embedded Ray's processes: recorded under OUT so that a later run can stop what a killed
driver left running, and checked against that record before anything is killed.

A driver killed with ``kill -9`` cannot stop the embedded Ray it started; Ray's dashboard and
runtime-env agents then stay up (and keep listening) until someone stops them. The driver
records its Ray session in ``OUT/.d4d-ray-session`` (JSON: the session directory and, per
process, its pid, start time, program and command line, refreshed while it runs); the next run
on OUT kills exactly the recorded processes that are still the same processes: same pid, same
start time (``/proc/PID/stat`` field 22, clock ticks since boot), same program
(``/proc/PID/exe``: Ray rewrites its workers' command lines, ``ray::IDLE`` becoming
``ray::StepsActor``, so the line itself is kept for people only), same user, and still using
the recorded session directory, whose name must be one Ray gives
(``session_YYYY-MM-DD_HH-MM-SS_<micro>_<pid>``). A record naming anything else (``/``, a
folder another program uses, a reused pid) kills nothing.

Nothing here imports Ray; ``pipelines.ray_adapter`` gives the session directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from d4d.files import write_json_atomic

#: Where a run records the embedded Ray it started (under OUT).
SESSION_RECORD = ".d4d-ray-session"
#: The name Ray gives a session directory.
SESSION_NAME = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")


def valid_session_dir(session_dir: str) -> bool:
    """Whether ``session_dir`` is an absolute path to a directory named as Ray names sessions."""
    path = Path(session_dir)
    return path.is_absolute() and ".." not in path.parts and SESSION_NAME.fullmatch(path.name) is not None


#: The fields of a process's identity that must match the record before it is killed.
IDENTITY = ("pid", "start", "exe")


def _identity(pid: int) -> dict | None:
    """``{"pid", "start", "exe", "cmdline"}`` of a live process of this user, else None."""
    proc = Path(f"/proc/{pid}")
    try:
        if proc.stat().st_uid != os.getuid():
            return None
        stat = (proc / "stat").read_text()
        start = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name in (...) may hold spaces
        exe = os.readlink(proc / "exe")
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    return {"pid": pid, "start": start, "exe": exe, "cmdline": cmdline}


def _uses(pid: int, session_dir: str) -> bool:
    """Whether process ``pid`` names ``session_dir`` on its command line or has a file under it open."""
    prefix = session_dir.rstrip("/") + "/"
    proc = Path(f"/proc/{pid}")
    try:
        if prefix in (proc / "cmdline").read_bytes().decode(errors="replace"):
            return True
        return any(os.readlink(fd).startswith(prefix) for fd in (proc / "fd").iterdir())
    except OSError:  # gone, or not ours to look at
        return False


def session_processes(session_dir: str) -> list[int]:
    """Processes of this user (other than this one) that use a Ray session directory: its processes,
    whatever their titles say. Empty for a directory that is not a Ray session's."""
    if not valid_session_dir(session_dir):
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _identity(int(entry.name)) and _uses(int(entry.name), session_dir):
            found.append(int(entry.name))
    return found


def record_session(out: Path, session_dir: str) -> None:
    """Write (or refresh) ``out``/SESSION_RECORD: the session directory and its live processes."""
    processes = [p for p in map(_identity, session_processes(session_dir)) if p is not None]
    write_json_atomic(Path(out) / SESSION_RECORD, {"session_dir": session_dir, "processes": processes})


def recorded_processes(out: Path) -> list[int]:
    """The pids in ``out``'s session record that are still the processes recorded (see the module
    doc); empty for a missing, unreadable or forged record."""
    try:
        record = json.loads((Path(out) / SESSION_RECORD).read_text())
        session_dir, processes = record["session_dir"], record["processes"]
        if not isinstance(session_dir, str) or not valid_session_dir(session_dir):
            return []
        return [p["pid"] for p in processes
                if isinstance(p, dict) and isinstance(p.get("pid"), int) and _same(p) and _uses(p["pid"], session_dir)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _same(recorded: dict) -> bool:
    """Whether the live process under the recorded pid is the recorded process (IDENTITY)."""
    now = _identity(recorded["pid"])
    return now is not None and all(now[k] == recorded.get(k) for k in IDENTITY)


def kill(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` (gone already is fine)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reap_session(out: Path) -> list[int]:
    """Kill what the embedded Ray of an earlier run of ``out`` left running (only the recorded
    processes that are still the same ones) and remove the record. Call it holding the run's
    lock (so that earlier driver is gone). Returns the pids killed."""
    pids = recorded_processes(out)
    kill(pids)
    (Path(out) / SESSION_RECORD).unlink(missing_ok=True)
    return pids


def end_session(out: Path, session_dir: str, wait_s: float = 5.0) -> list[int]:
    """After ``ray.shutdown()`` of the session this process started: give its processes ``wait_s``
    seconds to exit, kill those left, remove the record. Returns the pids killed."""
    deadline = time.time() + wait_s
    while session_processes(session_dir) and time.time() < deadline:
        time.sleep(0.2)
    left = session_processes(session_dir)
    kill(left)
    (Path(out) / SESSION_RECORD).unlink(missing_ok=True)
    return left
