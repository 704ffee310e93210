"""Writing files so that a reader never sees half of one, JSON that is always valid, and hashes.

Every writer in d4d goes through these: a file is written under a hidden temporary name in
its destination directory and moved into place with ``os.replace`` (atomic on POSIX); a
directory is built under a hidden name and swapped in the same way. A crash or ``kill -9``
leaves the old content or the new, never a mix, and at worst a hidden ``.NAME.*`` temporary.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np


def json_safe(value):
    """``value`` made valid JSON: numpy scalars and arrays as Python numbers and lists,
    non-finite floats as None (JSON has no NaN), tuples as lists, dates and times as ISO 8601
    text, paths and any other object as its str()."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A new, empty, hidden file next to ``path`` (same directory, so ``os.replace`` is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary readable files
    return Path(tmp)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parents created); returns ``path``."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | Path, data, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``json_safe(data)`` to ``path`` atomically, with a final newline."""
    text = json.dumps(json_safe(data), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode())


def replace_with(path: str | Path, write) -> Path:
    """Atomic write through a callback: ``write(tmp_path)`` fills a temporary sibling (same
    suffix as ``path``, for writers that pick a format from it), which then replaces ``path``."""
    path = Path(path)
    tmp = temporary_sibling(path, suffix=path.suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def staging_dir(final: str | Path) -> Path:
    """An empty hidden directory next to ``final``, to be filled and then ``publish_dir``-ed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))


def publish_dir(staged: str | Path, final: str | Path, overwrite: bool = True) -> Path:
    """Move the complete directory ``staged`` to ``final``.

    An existing ``final`` is replaced when ``overwrite`` (moved aside under a hidden name in
    the same directory, then deleted), else FileExistsError. Both must be in one directory
    tree of the same file system; nothing outside ``final``'s parent is touched.
    """
    staged, final = Path(staged), Path(final)
    if not final.exists() and not final.is_symlink():
        os.replace(staged, final)
        return final
    if not overwrite:
        raise FileExistsError(f"{final}: exists (use overwrite to replace it)")
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(final, old)
    os.replace(staged, final)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
    return final


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (objaverse hashes files the same way)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
