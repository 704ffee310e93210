"""A local folder of 3D files as an asset source (recursive, by extension), every entry accounted for."""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from d4d.curation.sources.base import (
    ASSET_EXTENSIONS,
    AssetSource,
    ChecksumMismatch,
    FetchError,
    InvalidAsset,
    RecordProblem,
    SourceRecord,
    check_glb,
    problem_uid,
    sha256_file,
)
from d4d.files import replace_with
from d4d.rendering.api import Limits
from d4d.untrusted import printable

log = logging.getLogger(__name__)

SOURCE = "local"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LocalFolderSource(AssetSource):
    """Every entry under ``root`` that looks like an asset: a name with one of ``extensions``
    (case-insensitive), or a symbolic link to such a file.

    Every such entry yields exactly one record, in order of relative path:

    - a regular file, or a link to one, is an asset named by the path the user gave (a link
      keeps its own suffix, so content-addressed caches whose blobs have no extension work; a
      link without an asset suffix is imported by its target's); its ``uid`` and ``sha256`` are
      the file's sha256 (so a local copy of an Objaverse-XL object keys into Cap3D's captions);
    - a second entry with the same bytes *and* format is a ``duplicate`` row naming the first;
      the same bytes under another format are an asset of their own (uid ``<sha256>.<format>``),
      so a good file never disappears behind a broken namesake;
    - a directory with an asset's name, a dangling link and a link loop become rows with those
      reasons (``not_a_file``, ``dangling_link``, ``link_loop``).

    - a file larger than ``max_file_mb`` is a ``failed`` row with reason ``too_large``, found
      from its size before a byte of it is read (it is never hashed).

    Directories are walked without following links. Nothing here uses the network. The files
    are hashed by ``hash_threads`` threads at once (hashlib works outside the GIL), a bounded
    number ahead of the record being yielded, so records stream out in order while the next
    files are read; the uids do not depend on the number of threads.

    With a ``digest_cache`` (a Parquet file of relative path, size, modification time and
    sha256; d4d-curate keeps one in OUT), a file whose size and modification time are those of
    an earlier listing is not read again: its digest is the recorded one (the quick check of
    rsync and make; a file rewritten in place with the same size and time keeps its old digest,
    and its fetch on the worker still checks size and time). The cache is rewritten after a
    listing that found anything new, changed or gone.

    Args:
        root: the folder.
        extensions: lower-case extensions without the dot; default: every format d4d renders.
        max_file_mb: the render's file bound (``rendering.api.Limits.max_file_mb``, 10^6 bytes; 0: none).
        hash_threads: files hashed at once while listing (default: the CPUs, at most 8).
        digest_cache: the Parquet file of earlier listings' digests (None: every file is hashed).
    """

    name = SOURCE

    def __init__(self, root: str | Path, extensions: tuple[str, ...] = ASSET_EXTENSIONS, max_file_mb: float = Limits.max_file_mb,
                 hash_threads: int | None = None, digest_cache: str | Path | None = None) -> None:
        self.root = Path(root).expanduser()
        self.digest_cache = None if digest_cache is None else Path(digest_cache)
        self.hash_threads = hash_threads or min(8, os.cpu_count() or 1)
        self.extensions = tuple(e.lower().lstrip(".") for e in extensions)
        self.max_file_mb = max_file_mb
        #: kept for interface parity with the Objaverse sources: a local folder lacks nothing.
        self.missing: list[str] = []

    def _asset_suffix(self, path: Path) -> str | None:
        suffix = path.suffix.lower().lstrip(".")
        return suffix if suffix in self.extensions else None

    def _entries(self) -> list[tuple[Path, bool]]:
        """(path, is a directory) of every entry that looks like an asset, by relative path."""
        found = []
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in dirnames + filenames:
                path = Path(folder) / name
                if self._asset_suffix(path) or (path.is_symlink() and self._linked_suffix(path)):
                    found.append((path, name in dirnames and not path.is_symlink()))
        return sorted(found, key=lambda entry: entry[0].relative_to(self.root).as_posix())

    def _linked_suffix(self, link: Path) -> str | None:
        try:
            return self._asset_suffix(link.resolve(strict=True))
        except (OSError, RuntimeError):
            return None

    def _problem(self, path: Path) -> RecordProblem | None:
        """Why ``path`` is not an asset file, or None."""
        relative = printable(path.relative_to(self.root).as_posix())
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except RuntimeError:
                return RecordProblem("failed", "link_loop", f"{relative}: a symbolic link that leads back to itself")
            except OSError:
                return RecordProblem("failed", "dangling_link", f"{relative}: a symbolic link to {printable(os.readlink(path))}, which does not exist")
            if not target.is_file():
                return RecordProblem("failed", "not_a_file", f"{relative}: a link to {printable(str(target))}, which is not a file")
        elif not path.is_file():
            return RecordProblem("failed", "not_a_file", f"{relative}: a directory or other non-file with an asset's name")
        size = path.stat().st_size
        if self.max_file_mb and size > self.max_file_mb * 1e6:
            return RecordProblem("failed", "too_large", f"{relative}: {size / 1e6:.0f} MB file (limit {self.max_file_mb:g} MB; not read)")
        return None

    def records(self) -> Iterator[SourceRecord]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: asset folder not found")
        first: dict[tuple[str, str], SourceRecord] = {}
        used_uids: set[str] = set()
        for path, problem, digest in self._hashed(self._entries()):
            relative = path.relative_to(self.root).as_posix()
            if problem is not None:
                yield SourceRecord(uid=problem_uid("entry", relative), source=SOURCE, file_identifier=str(path.absolute()), sha256=None,
                                   license=None, metadata={"relative_path": relative}, problem=problem)
                continue
            fmt = self._asset_suffix(path) or self._linked_suffix(path)
            local = path if self._asset_suffix(path) else path.resolve()
            stat = path.stat()
            metadata = {"relative_path": relative, "format": fmt, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            original = first.get((digest, fmt))
            if original is not None:
                detail = f"{printable(relative)}: same bytes and format as {printable(original.metadata['relative_path'])} (uid {original.uid})"
                yield SourceRecord(uid=problem_uid("duplicate", relative), source=SOURCE, file_identifier=str(path.absolute()), sha256=digest,
                                   license=None, local_path=local, metadata={**metadata, "duplicate_of": original.uid},
                                   problem=RecordProblem("reject", "duplicate", detail))
                continue
            uid = digest if digest not in used_uids else f"{digest}.{fmt}"
            used_uids.add(uid)
            record = SourceRecord(uid=uid, source=SOURCE, file_identifier=str(path.absolute()), sha256=digest, license=None,
                                  local_path=local, metadata=metadata)
            first[(digest, fmt)] = record
            yield record

    def _hashed(self, entries: list[tuple[Path, bool]]) -> Iterator[tuple[Path, RecordProblem | None, str | None]]:
        """(path, problem, sha256) of each entry in order; the files are hashed ``hash_threads`` at a
        time, at most ``4 * hash_threads`` ahead of the one yielded (an entry with a problem is not read)."""
        pool = ThreadPoolExecutor(self.hash_threads, thread_name_prefix="d4d-hash")
        ahead: deque = deque()
        known = read_digests(self.digest_cache) if self.digest_cache is not None else {}
        found: dict[str, tuple[int, int, Future]] = {}
        complete = False
        try:
            for path, _ in entries:
                problem = self._problem(path)
                digest = None
                if problem is None:
                    relative, stat = path.relative_to(self.root).as_posix(), path.stat()
                    recorded = known.get(relative)
                    if recorded is not None and recorded[:2] == (stat.st_size, stat.st_mtime_ns):
                        digest = Future()
                        digest.set_result(recorded[2])
                    else:
                        digest = pool.submit(sha256_file, path)
                    found[relative] = (stat.st_size, stat.st_mtime_ns, digest)
                ahead.append((path, problem, digest))
                if len(ahead) > 4 * self.hash_threads:
                    path, problem, digest = ahead.popleft()
                    yield path, problem, digest and digest.result()
            while ahead:
                path, problem, digest = ahead.popleft()
                yield path, problem, digest and digest.result()
            complete = True
        finally:  # a listing cut short (--limit) does not hash what it will not yield
            pool.shutdown(wait=True, cancel_futures=True)
            if self.digest_cache is not None:
                done = {rel: (size, mtime, f.result()) for rel, (size, mtime, f) in found.items() if f.done() and not f.cancelled() and f.exception() is None}
                digests = done if complete else {**known, **done}
                if digests != known:  # an unchanged folder's rerun rewrites nothing
                    write_digests(self.digest_cache, digests)

    def fetch_many(self, records: Iterable[SourceRecord]) -> Iterator[tuple[SourceRecord, FetchError | None]]:
        """Check each file is still what was listed and, for .glb, complete. Same size and
        modification time: the sha256 computed when listing stands. Another modification time
        (a node's own copy of the folder, a touched file): the file is hashed again, and only
        other bytes fail."""
        for record in records:
            path = Path(record.local_path)
            try:
                stat = path.stat()
                if stat.st_size != record.metadata["size_bytes"]:
                    raise ChecksumMismatch(f"{path}: changed since the folder was listed ({stat.st_size} bytes, listed {record.metadata['size_bytes']})")
                if stat.st_mtime_ns != record.metadata["mtime_ns"] and sha256_file(path) != record.sha256:
                    raise ChecksumMismatch(f"{path}: changed since the folder was listed (other bytes: sha256 differs)")
                if stat.st_size == 0:
                    raise InvalidAsset(f"{path}: file is empty")
                if path.suffix.lower() == ".glb":
                    check_glb(path)
            except FetchError as exc:
                yield record, exc
                continue
            except OSError as exc:
                yield record, FetchError(f"{path}: {exc.strerror or exc}")
                continue
            yield record, None


_DIGEST_SCHEMA = pa.schema([("relative_path", pa.string()), ("size_bytes", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string())])


def read_digests(path: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (size, modification time in ns, sha256) from a digest cache; empty when
    it is absent or unreadable (then every file is hashed again, with a warning); rows whose
    digest is not 64 lower-case hex characters are dropped."""
    if not path.exists():
        return {}
    try:
        columns = pq.read_table(path, schema=_DIGEST_SCHEMA).to_pydict()
    except (OSError, pa.ArrowException) as exc:
        log.warning("%s: unreadable digest cache, every file is hashed again (%s)", path, printable(str(exc), 200))
        return {}
    rows = zip(columns["relative_path"], columns["size_bytes"], columns["mtime_ns"], columns["sha256"])
    return {rel: (size, mtime, digest) for rel, size, mtime, digest in rows if isinstance(digest, str) and _SHA256.fullmatch(digest)}


def write_digests(path: Path, digests: dict[str, tuple[int, int, str]]) -> None:
    """Write a digest cache (``read_digests``'s inverse) atomically."""
    names = sorted(digests)
    table = pa.table({"relative_path": names, "size_bytes": [digests[n][0] for n in names], "mtime_ns": [digests[n][1] for n in names],
                      "sha256": [digests[n][2] for n in names]}, schema=_DIGEST_SCHEMA)
    replace_with(path, lambda tmp: pq.write_table(table, tmp))
