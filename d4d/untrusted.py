"""Checks applied where untrusted names enter d4d: identifiers, file names, and the paths built from them.

Sources (Objaverse annotations, GitHub repositories, a user's folder of downloads) name assets
with strings written by strangers. d4d turns some of them into file names (``renders/<uid>``)
and paths (the cache file of an Objaverse record). These functions are the only way it does:

- ``check_identifier`` refuses what cannot be a d4d file name: empty, too long, a path
  separator, a ``..`` or a leading dot, control characters (NUL, newlines) or characters
  outside ``[A-Za-z0-9._~+=-]``;
- ``child`` joins a checked name to a directory; ``inside`` proves that a path (links
  resolved) lies under a root before d4d writes or deletes it;
- ``printable`` shows an untrusted string on one line.

docs/security.md lists what d4d trusts and how each check is tested.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Characters of an identifier d4d may use as a file name.
IDENTIFIER = re.compile(r"[A-Za-z0-9_~+=-][A-Za-z0-9._~+=-]{0,199}")


class BadIdentifier(ValueError):
    """An identifier or name from a source that d4d refuses; the message names it (on one line)."""


def printable(text: str, limit: int = 120) -> str:
    """``text`` on one line: control characters escaped, shortened to ``limit`` characters."""
    shown = repr(text)[1:-1] if any(not c.isprintable() for c in text) else text
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def check_identifier(value, what: str = "identifier") -> str:
    """``value`` when it is safe as a single file name; BadIdentifier naming it otherwise."""
    if not isinstance(value, str):
        raise BadIdentifier(f"{what} {value!r:.60} is not text")
    if ".." in value or not IDENTIFIER.fullmatch(value):
        raise BadIdentifier(f"{what} {printable(value)!r} is not a safe name (allowed: letters, digits and ._~+=-, no leading dot, no '..', 1-200 characters)")
    return value


def check_text(value, what: str, limit: int = 4096) -> str:
    """``value`` when it is text without NUL bytes and at most ``limit`` characters (URLs, paths in a cache)."""
    if not isinstance(value, str) or "\0" in value or not value or len(value) > limit:
        raise BadIdentifier(f"{what} {printable(str(value))!r} is empty, too long, not text or holds NUL bytes")
    return value


def inside(root: str | Path, path: str | Path) -> bool:
    """Whether ``path`` lies in ``root``'s tree once every link on the way is resolved."""
    root = Path(os.path.realpath(root))
    return Path(os.path.realpath(path)).is_relative_to(root)


def child(root: str | Path, name: str, what: str = "name") -> Path:
    """``root / name`` for a name that is a checked identifier and stays inside ``root``
    (an existing link there that leads out is refused too)."""
    path = Path(root) / check_identifier(name, what)
    if not inside(root, path):
        raise BadIdentifier(f"{path}: a link out of {root}")
    return path


def contained_path(root: str | Path, relative: str, what: str) -> Path:
    """``root / relative`` for a relative path from a source (several components allowed, each
    a plain name), refusing absolute paths, ``..``, NUL bytes and links out of ``root``."""
    check_text(relative, what)
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BadIdentifier(f"{what} {printable(relative)!r} is not a plain relative path")
    path = Path(root).joinpath(*parts)
    if not inside(root, path):
        raise BadIdentifier(f"{what} {printable(relative)!r} leads out of {root}")
    return path
