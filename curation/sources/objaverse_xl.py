"""Objaverse-XL (github, sketchfab, smithsonian, thingiverse), read through ``objaverse.xl``.

Cache layout under the download dir ``BASE`` (objaverse 0.1.7's ``download_dir``)::

    BASE/<source>/<source>.parquet       annotations, one per source: columns fileIdentifier,
                                         source, license, fileType, sha256, metadata (JSON text)
    BASE/hf-objaverse-v1/...             sketchfab objects: Objaverse 1.0's layout
                                         (curation.sources.objaverse_v1)
    BASE/smithsonian/objects/<save_uid>.glb
    BASE/thingiverse/thing-<thingId>-file-<fileId>.stl
    BASE/github/repos/<org>/<repo>/<path>  with save_repo_format="files" (the only GitHub
                                         layout this source reads: archives are not opened)

Online, d4d downloads what the cache lacks itself, into exactly that layout
(``curation.sources.download``: a timeout and size bound on every file): a GitHub file is
fetched alone with the files it links, at its commit, never the whole repository (no git, no
LFS); Smithsonian URLs are downloaded only from the Smithsonian's host.
Where each comes from is ``XLEndpoints`` (a mirror, or a test server).

The annotations carry no animation field: "animated" comes from an id list (``XLFilter.ids``,
e.g. Diffusion4D's released animated/curated metadata) or, later, from the renderer's
``animation.has_animation``. Every fetched file's sha256 is checked against the annotated one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from d4d.curation.sources.base import (
    AssetSource,
    FetchError,
    MissingFromCache,
    SourceRecord,
    invalid_record,
    verify_asset_file,
)
from d4d.curation.sources.download import DownloadLimits, download, download_with_links
from d4d.curation.sources.ids import save_uid
from d4d.curation.sources.objaverse_v1 import V1_URL, ObjaverseV1Source
from d4d.untrusted import BadIdentifier, check_identifier, check_text, contained_path, printable

log = logging.getLogger(__name__)

XL_SOURCES = ("github", "sketchfab", "smithsonian", "thingiverse")
HEX64 = re.compile(r"[0-9a-f]{64}")
THINGIVERSE = re.compile(r"https://www\.thingiverse\.com/thing:(?P<thing>\d+)/files\?fileId=(?P<file>\d+)")
GITHUB = re.compile(r"https://github\.com/(?P<org>[^/]+)/(?P<repo>[^/]+)/blob/(?P<commit>[0-9a-f]{7,40})/(?P<path>.+)")
SKETCHFAB = re.compile(r"https://sketchfab\.com/3d-models/(?P<uid>[0-9a-f]{32})/?")
SMITHSONIAN = re.compile(r"https://3d-api\.si\.edu/(?P<path>[A-Za-z0-9._~:@!$&'()*+,;=%/-]+)")


@dataclass(frozen=True)
class XLEndpoints:
    """Where online Objaverse-XL downloads come from (the objaverse package's URLs by default)."""

    annotations: str = "https://huggingface.co/datasets/allenai/objaverse-xl/resolve/main"
    """Holds ``<source>/<source>.parquet``."""
    sketchfab: str = V1_URL
    """Objaverse 1.0's files (curation.sources.objaverse_v1)."""
    github_raw: str = "https://raw.githubusercontent.com"
    """A repository's files at a commit are ``<github_raw>/<org>/<repo>/<commit>/<path>``."""
    thingiverse: str = "https://www.thingiverse.com"
    """Files are ``<thingiverse>/download:<fileId>``."""
    smithsonian: str = "https://3d-api.si.edu"
    """Replaces ``https://3d-api.si.edu`` in a Smithsonian fileIdentifier (no other host is fetched)."""


def annotation_path(base_dir: Path, source: str) -> Path:
    """Where objaverse.xl keeps ``source``'s annotation parquet."""
    return base_dir / source / f"{source}.parquet"


@dataclass(frozen=True)
class XLFilter:
    """Which Objaverse-XL annotation rows become records (rules in field order; the first
    that fails names the drop in ``ObjaverseXLSource.dropped``).

    Attributes:
        sources: which of github, sketchfab, smithsonian, thingiverse to read.
        licenses: keep only rows whose ``license`` is one of these; None keeps all.
        file_types: keep only rows whose ``fileType`` is one of these (e.g. ("glb", "fbx"));
            None keeps all.
        ids: keep only rows whose sha256, fileIdentifier or save_uid (with or without
            hyphens) is listed, e.g. an animated-asset list; None keeps all.
    """

    sources: tuple[str, ...] = XL_SOURCES
    licenses: tuple[str, ...] | None = None
    file_types: tuple[str, ...] | None = None
    ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.sources if s not in XL_SOURCES]
        if bad:
            raise ValueError(f"XLFilter.sources: unknown {bad}, valid: {XL_SOURCES}")

    def drop_reason(self, row: dict) -> str | None:
        """The first rule ``row`` fails ("license", "file_type", "id_list"), or None."""
        if self.licenses is not None and row.get("license") not in self.licenses:
            return "license"
        if self.file_types is not None and row.get("fileType") not in self.file_types:
            return "file_type"
        if self.ids is not None:
            su = save_uid(row["fileIdentifier"])
            keys = {str(row.get("sha256", "")).lower(), row["fileIdentifier"], su, su.replace("-", "")}
            if not keys & self.ids:
                return "id_list"
        return None


class ObjaverseXLSource(AssetSource):
    """Objaverse-XL assets as SourceRecords.

    Args:
        base_dir: the objaverse download dir.
        filter: annotation rules.
        offline: True never touches the network and reports what the cache lacks; False
            downloads what is missing (from ``endpoints``).
        limits: online only: the bounds of every download.
        endpoints: online only: where each kind of file is downloaded from.
    """

    name = "objaverse-xl"

    def __init__(
        self,
        base_dir: str | Path = "~/.objaverse",
        filter: XLFilter = XLFilter(),
        offline: bool = True,
        limits: DownloadLimits = DownloadLimits(),
        endpoints: XLEndpoints = XLEndpoints(),
    ) -> None:
        self.base_dir = Path(base_dir).expanduser()
        self.filter = filter
        self.offline = offline
        self.limits = limits
        self.endpoints = endpoints
        #: one line per thing the cache lacked (offline), in the order met.
        self.missing: list[str] = []
        #: rows dropped by each XLFilter rule during the last ``records()``.
        self.dropped: Counter = Counter()
        self._v1 = ObjaverseV1Source(self.base_dir, offline=offline, limits=limits, base_url=endpoints.sketchfab)

    def annotations(self):
        """The annotation rows of the filter's sources as one pandas DataFrame (objaverse.xl's
        columns); sources whose parquet is not cached are skipped offline, one line each."""
        import pandas as pd
        from objaverse.xl import downloaders

        frames = []
        for source in self.filter.sources:
            path = annotation_path(self.base_dir, source)
            if not path.is_file():
                if self.offline:
                    self._report_missing(f"objaverse-xl/{source} annotations: not in cache, expected {path}")
                    continue
                log.info("objaverse-xl: downloading %s annotations to %s", source, path)
                download(f"{self.endpoints.annotations.rstrip('/')}/{source}/{source}.parquet", path, self.limits.for_annotations())
            frames.append(downloaders[source].get_annotations(download_dir=str(self.base_dir)))
        if not frames:
            return pd.DataFrame(columns=["fileIdentifier", "source", "license", "fileType", "sha256", "metadata"])
        return pd.concat(frames, ignore_index=True)

    def records(self) -> Iterator[SourceRecord]:
        """Records for the rows that pass ``filter``, with ``local_path`` set when cached. A row
        whose identifier, sha256, source or cache path is malformed or unsafe becomes a
        ``bad_identifier`` record (never an exception that ends the listing)."""
        self.dropped = Counter()
        for row in self.annotations().to_dict("records"):
            fid = row.get("fileIdentifier")
            try:
                check_text(fid, "fileIdentifier")
                reason = self.filter.drop_reason(row)
                if reason is not None:
                    self.dropped[reason] += 1
                    continue
                record = self._record(row)
                path = self._cached_path_or_none(record)
            except (BadIdentifier, FetchError, ValueError, TypeError) as exc:
                yield invalid_record(f"objaverse-xl/{printable(str(row.get('source')), 40)}", fid, fid, str(exc))
                continue
            yield dataclasses.replace(record, local_path=path) if path is not None else record

    def _record(self, row: dict) -> SourceRecord:
        """The record of one annotation row; BadIdentifier for a malformed sha256 or source."""
        if row.get("source") not in XL_SOURCES:
            raise BadIdentifier(f"source {printable(str(row.get('source')))!r} is not one of {XL_SOURCES}")
        sha256 = str(row.get("sha256", "")).lower()
        if not HEX64.fullmatch(sha256):
            raise BadIdentifier(f"sha256 {printable(sha256)!r} is not 64 hexadecimal characters")
        extra = row.get("metadata") or "{}"
        metadata = json.loads(extra) if isinstance(extra, str) else dict(extra)
        if not isinstance(metadata, dict):
            raise BadIdentifier("metadata is not a JSON object")
        metadata["fileType"] = row.get("fileType")
        record = SourceRecord(uid=save_uid(row["fileIdentifier"]), source=f"objaverse-xl/{row['source']}", file_identifier=row["fileIdentifier"],
                              sha256=sha256, license=row.get("license"), metadata=metadata)
        if row["source"] == "sketchfab":  # its cache path needs Objaverse 1.0's object paths, which may not be cached
            if SKETCHFAB.fullmatch(record.file_identifier) is None:
                raise BadIdentifier(f"{printable(record.file_identifier)!r} is not a Sketchfab model URL (https://sketchfab.com/3d-models/UID)")
        else:
            self.expected_path(record)  # refuses identifiers whose cache path would be unsafe
        return record

    def expected_path(self, record: SourceRecord) -> Path:
        """Where objaverse.xl's downloader keeps (or would keep) this record's file, proven to lie
        inside the cache. BadIdentifier when the identifier is malformed or leads elsewhere."""
        source = record.source.split("/", 1)[1]
        fid = record.file_identifier
        if source == "sketchfab":
            match = SKETCHFAB.fullmatch(fid)
            if match is None:
                raise BadIdentifier(f"{printable(fid)!r} is not a Sketchfab model URL (https://sketchfab.com/3d-models/UID)")
            return self._v1.local_path(match["uid"])
        if source == "smithsonian":
            if SMITHSONIAN.fullmatch(fid) is None:
                raise BadIdentifier(f"{printable(fid)!r} is not a Smithsonian URL (https://3d-api.si.edu/...)")
            return self.base_dir / "smithsonian" / "objects" / f"{save_uid(fid)}.glb"
        if source == "thingiverse":
            match = THINGIVERSE.fullmatch(fid)
            if match is None:
                raise BadIdentifier(f"{printable(fid)!r} is not a Thingiverse file URL (https://www.thingiverse.com/thing:N/files?fileId=M)")
            return self.base_dir / "thingiverse" / f"thing-{match['thing']}-file-{match['file']}.stl"
        if source == "github":
            match = GITHUB.fullmatch(fid)
            if match is None:
                raise BadIdentifier(f"{printable(fid)!r} is not a GitHub blob URL (https://github.com/ORG/REPO/blob/COMMIT/PATH)")
            check_identifier(match["org"], "GitHub organisation")
            check_identifier(match["repo"], "GitHub repository")
            return contained_path(self.base_dir / "github" / "repos", f"{match['org']}/{match['repo']}/{match['path']}", "GitHub path")
        raise BadIdentifier(f"{record.source} {printable(fid)!r}: unknown Objaverse-XL source")

    def _cached_path_or_none(self, record: SourceRecord) -> Path | None:
        try:
            path = self.expected_path(record)
        except FetchError:  # e.g. sketchfab without object-paths.json.gz in the cache
            return None
        return path if path.is_file() else None

    def fetch_many(self, records: Iterable[SourceRecord]) -> Iterator[tuple[SourceRecord, FetchError | None]]:
        """Make each record's file local (online: download it) and check its sha256 against the
        annotation; yield (record with local_path and verified sha256, None) or (record
        unchanged, the error)."""
        for record in records:
            try:
                path = self.expected_path(record)
                if not path.is_file():
                    if self.offline:
                        line = f"{record.source} {record.uid} ({record.file_identifier}): not in cache, expected {path}"
                        self._report_missing(line)
                        raise MissingFromCache(line)
                    self._download(record, path)
                digest = verify_asset_file(path, expected_sha256=record.sha256)
            except FetchError as exc:
                yield record, exc
                continue
            yield dataclasses.replace(record, local_path=path, sha256=digest), None

    def _download(self, record: SourceRecord, path: Path) -> None:
        """Download ``record``'s file to ``path`` (its ``expected_path``)."""
        source, fid = record.source.split("/", 1)[1], record.file_identifier
        if source == "sketchfab":
            download(f"{self.endpoints.sketchfab.rstrip('/')}/{path.relative_to(self._v1.root).as_posix()}", path, self.limits)
        elif source == "smithsonian":
            download(f"{self.endpoints.smithsonian.rstrip('/')}/{SMITHSONIAN.fullmatch(fid)['path']}", path, self.limits)
        elif source == "thingiverse":
            download(f"{self.endpoints.thingiverse.rstrip('/')}/download:{THINGIVERSE.fullmatch(fid)['file']}", path, self.limits)
        else:
            match = GITHUB.fullmatch(fid)
            at_commit = f"{self.endpoints.github_raw.rstrip('/')}/{match['org']}/{match['repo']}/{match['commit']}"
            download_with_links(at_commit, match["path"], self.base_dir / "github" / "repos" / match["org"] / match["repo"], self.limits)
