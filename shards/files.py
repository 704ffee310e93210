"""Shard files on disk: naming, listing, the writer lock and atomic Parquet writes.

A shard directory holds ``part-NNNNN.parquet`` files. Writers build each file under a hidden
temporary name in the same directory and ``os.replace`` it into place when complete, so a
reader never sees a partial shard. One writer per directory at a time, enforced by an
exclusive ``flock`` on ``.d4d-shards.lock``; or several at once that share that lock, each
taking shard names of its own (``ShardNames``: writer k of n takes the indices equal to k mod n).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from d4d import storage
from d4d.shards.schema import HASH_COLUMN, TENSOR_COLUMNS, VIDEO_COLUMNS

SHARD_PATTERN = re.compile(r"^part-(\d{5,})\.parquet$")
LOCK_NAME = ".d4d-shards.lock"
TEMP_PREFIX = ".tmp-"
#: A shard being written (``AtomicParquetFile``): the temporary name and the index it will take.
TEMP_PATTERN = re.compile(r"^\.tmp-[0-9a-f]{8}-part-(\d{5,})\.parquet$")
#: Upper estimate of the Parquet footer's growth per row group and column (about 5 KiB was
#: measured for the version-1 schema's 31 columns with statistics, ~170 B a column), used to
#: keep shards under their size bound.
FOOTER_BYTES_PER_GROUP_COLUMN = 256


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def list_shards(shard_dir: str | Path) -> list[Path | str]:
    """The complete shards of a directory (or a single shard file), in name order: Paths, or
    URI strings for a URI (``s3://bucket/prefix``, d4d.storage), which pyarrow.parquet reads
    as they are. A URI d4d cannot use is a ValueError naming it."""
    if storage.is_uri(shard_dir):
        if storage.file_type(shard_dir) == FileType.File:
            return [shard_dir]
        return [storage.join(shard_dir, name) for name in storage.list_names(shard_dir) if SHARD_PATTERN.match(name)]
    shard_dir = Path(shard_dir)
    if shard_dir.is_file():
        return [shard_dir]
    if not shard_dir.is_dir():
        raise FileNotFoundError(f"{shard_dir}: no such shard directory")
    return sorted(p for p in shard_dir.iterdir() if SHARD_PATTERN.match(p.name))


@dataclass(frozen=True)
class ShardNames:
    """The shard names one of ``n`` writers of a directory takes (writer ``k``, 0-based): the
    indices equal to k mod n, each time the first such above every shard already there, so two
    writers writing at the same time never pick the same name (names may skip numbers). One
    writer (0 of 1) takes the next index."""

    k: int = 0
    n: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.k < self.n:
            raise ValueError(f"writer {self.k} of {self.n}: need 0 <= k < n")

    def owns(self, index: int) -> bool:
        return index % self.n == self.k

    def after(self, index: int) -> int:
        """This writer's first index above ``index``."""
        return index + 1 + (self.k - index - 1) % self.n

    def next_index(self, names: Iterable[str]) -> int:
        """This writer's next index in a directory holding files ``names``."""
        return self.after(max((int(m.group(1)) for m in map(SHARD_PATTERN.match, names) if m), default=-1))


def next_shard_index(shard_dir: Path, names: ShardNames = ShardNames()) -> int:
    return names.next_index(p.name for p in list_shards(shard_dir))


@contextlib.contextmanager
def writer_lock(shard_dir: Path, names: ShardNames = ShardNames()):
    """Hold the directory's writer lock (shared by the writers of ``names`` when there are
    several, else exclusive); removes the temporary files a crashed writer left behind (with
    several writers, those of this writer's indices only: the others' may be in use)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    with open(shard_dir / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if names.n == 1 else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{shard_dir}: another d4d-shards writer holds {LOCK_NAME}") from None
        for stale in shard_dir.glob(f"{TEMP_PREFIX}*"):
            match = TEMP_PATTERN.match(stale.name)
            if names.n == 1 or (match is not None and names.owns(int(match.group(1)))):
                stale.unlink()
        yield


def writer_options(schema: pa.Schema) -> dict:
    """ParquetWriter options: no compression, dictionary or statistics on the binary payloads
    (already-compressed video, raw tensors), zstd with statistics on everything else; CRC
    checksums on every page (verify checks them)."""
    payload = set(VIDEO_COLUMNS) | set(TENSOR_COLUMNS)
    small = [name for name in schema.names if name not in payload]
    return {
        "compression": {name: ("none" if name in payload else "zstd") for name in schema.names},
        "use_dictionary": [name for name in small if name not in (HASH_COLUMN, "uid", "asset_json")],
        "write_statistics": [name for name in small if name != "asset_json"],
        "write_page_checksum": True,
    }


class AtomicParquetFile:
    """A Parquet file written under a temporary name and published with ``os.replace``.

    Use ``write(table)`` once per row group, then ``publish()``; ``discard()`` (or leaving
    the ``with`` block by an exception) removes the temporary file.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = Path(path)
        self.temp = self.path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{self.path.name}")
        self.schema = schema
        self.writer = pq.ParquetWriter(self.temp, schema, **writer_options(schema))
        self.rows = 0
        self.groups = 0

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        self.groups += 1

    def size(self) -> int:
        """Bytes the file will have if published now: written so far plus the footer to come."""
        return self.temp.stat().st_size + FOOTER_BYTES_PER_GROUP_COLUMN * len(self.schema) * (self.groups + 1)

    def publish(self) -> Path:
        self.writer.close()
        with open(self.temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicParquetFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
