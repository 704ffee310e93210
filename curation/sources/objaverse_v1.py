"""Objaverse 1.0 (the Sketchfab subset, ~800K glbs, ~42K animated), through the objaverse package.

Cache layout, exactly as objaverse 0.1.7 reads and writes it (``BASE`` is the download dir,
``~/.objaverse`` by default; ``objaverse.load_*`` hard-code it, ``objaverse.xl``'s
``SketchfabDownloader`` takes it as ``download_dir``, which is what this module uses)::

    BASE/hf-objaverse-v1/object-paths.json.gz        {uid: "glbs/000-023/<uid>.glb"}
    BASE/hf-objaverse-v1/metadata/000-023.json.gz    {uid: annotation} per group, 160 groups
    BASE/hf-objaverse-v1/glbs/000-023/<uid>.glb      the objects

Offline (the default), nothing touches the network: a missing object-paths file raises
MissingFromCache; missing metadata groups are skipped, each with one line in ``missing``
naming the group and its expected path; a missing glb raises MissingFromCache on fetch.

Online, d4d downloads what the cache lacks itself (``curation.sources.download``: a timeout and
a size bound on every file) from ``base_url`` into exactly that layout, and objaverse's readers
then only read the cache.
"""

from __future__ import annotations

import dataclasses
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
from d4d.curation.sources.download import DownloadLimits, download
from d4d.untrusted import BadIdentifier, contained_path, printable

log = logging.getLogger(__name__)

SOURCE = "objaverse-1.0"
VERSIONED_DIR = "hf-objaverse-v1"
#: Objaverse 1.0 metadata comes in 160 group files "000-000" ... "000-159".
N_METADATA_GROUPS = 160
#: Where Objaverse 1.0's files live (the objaverse package's URL).
V1_URL = "https://huggingface.co/datasets/allenai/objaverse/resolve/main"
HEX32 = re.compile(r"[0-9a-f]{32}")
GROUP = re.compile(r"\d{3}-\d{3}")
#: Annotation fields copied into SourceRecord.metadata (the rest, e.g. thumbnails, is dropped).
KEPT_FIELDS = ("name", "animationCount", "faceCount", "vertexCount", "isAgeRestricted", "viewerUrl", "publishedAt")


@dataclass(frozen=True)
class V1Filter:
    """Which Objaverse 1.0 annotations become records. Rules apply in field order; the first
    that fails names the drop in ``ObjaverseV1Source.dropped``.

    Attributes:
        min_animation_count: keep annotations with ``animationCount`` >= this (1: animated
            only, the paper's rule 1; 0: everything).
        licenses: keep only these ``license`` values (e.g. ("by", "by-sa", "cc0")); None keeps all.
        min_face_count: drop when ``faceCount`` < this; None: no lower bound.
        max_face_count: drop when ``faceCount`` > this; None: no upper bound.
        exclude_age_restricted: drop annotations with ``isAgeRestricted`` true.
        uids: keep only these uids (e.g. Diffusion4D's ``ObjV1_curated.txt``); None keeps all.
    """

    min_animation_count: int = 1
    licenses: tuple[str, ...] | None = None
    min_face_count: int | None = None
    max_face_count: int | None = None
    exclude_age_restricted: bool = True
    uids: frozenset[str] | None = None

    def drop_reason(self, uid: str, annotation: dict) -> str | None:
        """The first rule ``annotation`` fails ("animation", "license", "faces", "age", "uid_list"), or None."""
        if int(annotation.get("animationCount") or 0) < self.min_animation_count:
            return "animation"
        if self.licenses is not None and annotation.get("license") not in self.licenses:
            return "license"
        faces = int(annotation.get("faceCount") or 0)
        if (self.min_face_count is not None and faces < self.min_face_count) or (
            self.max_face_count is not None and faces > self.max_face_count
        ):
            return "faces"
        if self.exclude_age_restricted and annotation.get("isAgeRestricted"):
            return "age"
        if self.uids is not None and uid not in self.uids:
            return "uid_list"
        return None


def metadata_group(rel) -> str | None:
    """The metadata group ("000-023") of an object path "glbs/000-023/<uid>.glb"; None when malformed."""
    parts = str(rel).split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "glbs" and GROUP.fullmatch(parts[1]) else None


class ObjaverseV1Source(AssetSource):
    """Objaverse 1.0 assets as SourceRecords.

    Args:
        base_dir: the objaverse download dir (the folder that holds ``hf-objaverse-v1``).
        filter: annotation rules.
        offline: True never touches the network and reports what the cache lacks; False
            downloads what is missing from ``base_url``.
        limits: online only: the bounds of every download.
        base_url: online only: where ``hf-objaverse-v1``'s files are (a mirror, or a test server).
    """

    name = SOURCE

    def __init__(
        self,
        base_dir: str | Path = "~/.objaverse",
        filter: V1Filter = V1Filter(),
        offline: bool = True,
        limits: DownloadLimits = DownloadLimits(),
        base_url: str = V1_URL,
    ) -> None:
        self.base_dir = Path(base_dir).expanduser()
        self.filter = filter
        self.offline = offline
        self.limits = limits
        self.base_url = base_url.rstrip("/")
        #: one line per thing the cache lacked (offline), in the order met.
        self.missing: list[str] = []
        #: annotations dropped by each V1Filter rule during the last ``records()``.
        self.dropped: Counter = Counter()
        self._object_paths: dict[str, str] | None = None

    @property
    def root(self) -> Path:
        return self.base_dir / VERSIONED_DIR


    def object_paths(self) -> dict[str, str]:
        """uid -> path relative to ``hf-objaverse-v1`` (``glbs/<group>/<uid>.glb``)."""
        if self._object_paths is None:
            path = self.root / "object-paths.json.gz"
            if not path.is_file():
                if self.offline:
                    raise MissingFromCache(f"{SOURCE} object paths: not in cache, expected {path}")
                self._download_annotation("object-paths.json.gz")
            from objaverse.xl import SketchfabDownloader

            self._object_paths = SketchfabDownloader._get_object_paths(download_dir=str(self.base_dir))
        return self._object_paths

    def annotations(self) -> dict[str, dict]:
        """uid -> full annotation, for every uid whose metadata group is available."""
        from objaverse.xl import SketchfabDownloader

        object_paths = self.object_paths()
        groups: dict[str, list[str]] = {}
        for uid, rel in object_paths.items():
            group = metadata_group(rel)
            if group is not None and HEX32.fullmatch(str(uid)):
                groups.setdefault(group, []).append(uid)
        metadata_dir = self.root / "metadata"
        for group in sorted(groups):
            if not (metadata_dir / f"{group}.json.gz").is_file():
                if self.offline:
                    self._report_missing(
                        f"{SOURCE} metadata group {group}: not in cache, expected {metadata_dir / f'{group}.json.gz'} "
                        f"({len(groups[group])} uids skipped)"
                    )
                else:
                    self._download_annotation(f"metadata/{group}.json.gz")
        present = {g for g in groups if (metadata_dir / f"{g}.json.gz").is_file()}
        canonical = {f"{i // 1000:03d}-{i % 1000:03d}" for i in range(N_METADATA_GROUPS)}
        # uids=None makes objaverse read all 160 groups without per-uid filtering (fast); only
        # safe when every one of them is there, else it would try to download the rest.
        everything = present == set(groups) and canonical <= {
            p.name[: -len(".json.gz")] for p in metadata_dir.glob("*.json.gz")
        }
        uids = None if everything else [u for g in sorted(present) for u in groups[g]]
        if uids == []:
            return {}
        return SketchfabDownloader.get_full_annotations(uids=uids, download_dir=str(self.base_dir))

    def local_path(self, uid: str) -> Path:
        """Where the cache keeps (or would keep) the glb of ``uid``: its object path, proven to
        lie inside the cache. FetchError when the uid has none; BadIdentifier for an unsafe one."""
        try:
            rel = self.object_paths()[uid]
        except KeyError:
            raise FetchError(f"{SOURCE} uid {uid}: not in object-paths.json.gz") from None
        if not HEX32.fullmatch(str(uid)):
            raise BadIdentifier(f"uid {printable(str(uid))!r} is not 32 hexadecimal characters")
        if metadata_group(rel) is None or not str(rel).endswith(f"/{uid}.glb"):
            raise BadIdentifier(f"object path {printable(str(rel))!r} is not glbs/<group>/<uid>.glb")
        return contained_path(self.root, rel, "object path")

    def records(self) -> Iterator[SourceRecord]:
        """Records for the annotations that pass ``filter``, with ``local_path`` set when cached.
        An entry whose uid or object path is malformed or unsafe becomes a ``bad_identifier`` record."""
        self.dropped = Counter()
        annotations = self.annotations()
        malformed = {uid: rel for uid, rel in self.object_paths().items() if metadata_group(rel) is None or not HEX32.fullmatch(str(uid))}
        for uid, rel in sorted(malformed.items(), key=lambda item: str(item[0])):
            yield invalid_record(SOURCE, uid, rel, "uid or object path is malformed or unsafe")
        for uid, annotation in sorted(annotations.items()):
            reason = self.filter.drop_reason(uid, annotation)
            if reason is not None:
                self.dropped[reason] += 1
                continue
            try:
                path = self.local_path(uid)
            except (BadIdentifier, FetchError) as exc:
                yield invalid_record(SOURCE, uid, f"https://sketchfab.com/3d-models/{printable(str(uid))}", str(exc))
                continue
            yield SourceRecord(
                uid=uid,
                source=SOURCE,
                file_identifier=f"https://sketchfab.com/3d-models/{uid}",
                sha256=None,
                license=annotation.get("license"),
                local_path=path if path.is_file() else None,
                metadata={k: annotation[k] for k in KEPT_FIELDS if k in annotation},
            )

    def fetch_many(self, records: Iterable[SourceRecord]) -> Iterator[tuple[SourceRecord, FetchError | None]]:
        """Make each record's glb local (online: download it), check it, and yield (record with
        local_path and sha256, None) or (record unchanged, the error)."""
        for record in records:
            try:
                path = self.local_path(record.uid)
                if not path.is_file():
                    if self.offline:
                        line = f"{SOURCE} uid {record.uid}: not in cache, expected {path}"
                        self._report_missing(line)
                        raise MissingFromCache(line)
                    download(f"{self.base_url}/{path.relative_to(self.root).as_posix()}", path, self.limits)
                digest = verify_asset_file(path)
            except FetchError as exc:
                yield record, exc
                continue
            yield dataclasses.replace(record, local_path=path, sha256=digest), None

    def _download_annotation(self, rel: str) -> None:
        """Download ``hf-objaverse-v1/<rel>`` into the cache (FetchError names the file)."""
        log.info("%s: downloading %s to %s", SOURCE, rel, self.root)
        download(f"{self.base_url}/{rel}", self.root / rel, self.limits.for_annotations())
