"""A local folder of 3D files as an asset source (recursive, by extension)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from d4d.curation.sources.base import ASSET_EXTENSIONS, AssetSource, FetchError, SourceRecord, sha256_file, verify_asset_file

log = logging.getLogger(__name__)

SOURCE = "local"


class LocalFolderSource(AssetSource):
    """Every file under ``root`` whose extension (case-insensitive) is in ``extensions``.

    Records are sorted by relative path; ``uid`` and ``sha256`` are the file's sha256, so a
    local copy of an Objaverse-XL object keys into Cap3D's XL captions. Byte-identical files
    are yielded once (the first in path order); the others are listed in ``duplicates``.
    Nothing here uses the network.

    Args:
        root: the folder.
        extensions: lower-case extensions without the dot; default: every format d4d renders.
    """

    name = SOURCE

    def __init__(self, root: str | Path, extensions: tuple[str, ...] = ASSET_EXTENSIONS) -> None:
        self.root = Path(root).expanduser()
        self.extensions = tuple(e.lower().lstrip(".") for e in extensions)
        #: (duplicate path, path of the file yielded instead) from the last ``records()``.
        self.duplicates: list[tuple[Path, Path]] = []
        #: kept for interface parity with the Objaverse sources: a local folder lacks nothing.
        self.missing: list[str] = []

    def records(self) -> Iterator[SourceRecord]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: asset folder not found")
        self.duplicates = []
        seen: dict[str, Path] = {}
        paths = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in self.extensions
        )
        for path in paths:
            digest = sha256_file(path)
            if digest in seen:
                self.duplicates.append((path, seen[digest]))
                log.info("%s: same bytes as %s, skipped", path, seen[digest])
                continue
            seen[digest] = path
            yield SourceRecord(
                uid=digest,
                source=SOURCE,
                file_identifier=str(path.resolve()),
                sha256=digest,
                license=None,
                local_path=path,
                metadata={
                    "relative_path": path.relative_to(self.root).as_posix(),
                    "format": path.suffix.lower().lstrip("."),
                    "size_bytes": path.stat().st_size,
                },
            )

    def fetch_many(self, records: Iterable[SourceRecord]) -> Iterator[tuple[SourceRecord, FetchError | None]]:
        """Check each file (exists, non-empty, complete glTF binary for .glb, unchanged sha256)."""
        for record in records:
            try:
                verify_asset_file(record.local_path, expected_sha256=record.sha256)
            except FetchError as exc:
                yield record, exc
                continue
            yield record, None

