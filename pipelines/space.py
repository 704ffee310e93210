"""Write errors are the run's, not the asset's: free space on OUT and errors that mean OUT cannot be written.

A full disk (ENOSPC, EDQUOT) or an I/O error (EIO) while writing says nothing about the asset
being written: Blender leaves truncated frames, the render contract then fails to read them,
and recording that as the asset's failure would drop a good asset for ever. So the driver
checks the free space of OUT before the run and before each asset, a worker checks it (and
the exception chain) when an asset fails, and either way the run stops with one line
(``OutOfSpace``) and records nothing for the assets concerned; the rerun after freeing space
redoes them.

    guard = SpaceGuard(out_dir, min_free_bytes=1e9)
    guard.check()                   # raises OutOfSpace("OUT is full: 0.4 GB free, need 1.0 GB ...")
    guard.stop_line(exc)            # the line for a failure, or None when it is the asset's own
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

#: errno values that mean the output file system cannot take the write (not the asset's fault).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class OutOfSpace(Exception):
    """OUT cannot be written (full, over quota, read-only or failing): the run stops; rerun to finish."""


def human_bytes(n: float) -> str:
    """``n`` bytes as "1.2 GB" / "340.0 MB" / "12.0 KB" (powers of 1000)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size or unit == "KB":
            return f"{n / size:.1f} {unit}"
    raise AssertionError("unreachable")


def write_error(exc: BaseException | None) -> OSError | None:
    """The OSError with an errno in WRITE_ERRNOS in ``exc`` or its causes / contexts, else None.
    (pyarrow's OSError has no errno but names it in its text, "[errno 28]".)"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            if exc.errno in WRITE_ERRNOS or any(f"[errno {code}]" in str(exc).lower() for code in WRITE_ERRNOS):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


@dataclass(frozen=True)
class SpaceGuard:
    """The free space OUT (``root``) must keep while a run writes into it.

    Attributes:
        root: the output directory (its file system is the one checked).
        min_free_bytes: bytes that must stay free; 0 turns the space check off (write errors
            are still the run's).
    """

    root: Path
    min_free_bytes: float

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on ``root``'s file system."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def shortage(self) -> str | None:
        """The stop line when less than ``min_free_bytes`` is free, else None."""
        free = self.free_bytes()
        if free >= self.min_free_bytes:
            return None
        return (f"OUT is full: {human_bytes(free)} free, need {human_bytes(self.min_free_bytes)} (--min-free-gb) on {self.root}; "
                "free space and rerun the same command to finish")

    def check(self) -> None:
        """Raise OutOfSpace when less than ``min_free_bytes`` is free."""
        line = self.shortage()
        if line is not None:
            raise OutOfSpace(line)

    def stop_line(self, exc: BaseException | None = None, text: str = "") -> str | None:
        """For a failure (``exc`` when there is one, ``text`` its message when only that came
        back): the line that stops the run when it comes from writing OUT (a write errno in
        ``exc``'s chain or named in ``text``, or too little space left), else None."""
        error = write_error(exc)
        named = error is not None or any(os.strerror(code) in text for code in WRITE_ERRNOS) or "[errno 28]" in text.lower()
        line = self.shortage()
        if line is None and named:
            cause = str(error) if error is not None else text[:200]
            line = f"OUT cannot be written on {self.root} ({human_bytes(self.free_bytes())} free): {cause}; fix that and rerun the same command to finish"
        return line
