"""What every asset source yields (``SourceRecord``), how fetched files are checked, and the errors.

Pure Python; no network here. A source builds records from annotations, and ``fetch`` fills
``local_path`` and ``sha256`` after checking the file (``verify_asset_file``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

from d4d.files import sha256_file
from d4d.rendering.blender.importers import SUPPORTED_EXTENSIONS
from d4d.untrusted import printable

#: Extensions (lower case, no dot) of the 3D formats d4d's renderer imports: the set
#: Objaverse-XL crawled, plus "usdc".
ASSET_EXTENSIONS = tuple(e.lstrip(".") for e in SUPPORTED_EXTENSIONS)

GLB_MAGIC = b"glTF"
_GLB_JSON_CHUNK = 0x4E4F534A  # "JSON" little endian


log = logging.getLogger(__name__)


class FetchError(Exception):
    """An asset that could not be made available locally; the message is one line naming it.

    ``kind`` is the row's ``error_kind`` (docs/pipeline.md); ``retryable`` says whether trying
    again may help (a network failure) rather than being a property of the file."""

    kind = "fetch_failed"
    retryable = True


class MissingFromCache(FetchError):
    """Offline, and the cache lacks a file; the message names the uid/file and the expected path."""

    kind = "missing_from_cache"
    retryable = False


class ChecksumMismatch(FetchError):
    """The local file's sha256 differs from the one the annotations record."""

    kind = "checksum_mismatch"
    retryable = False


class InvalidAsset(FetchError):
    """The local file is empty, truncated or not in the format its name says."""

    kind = "invalid_asset"
    retryable = False


@dataclass(frozen=True)
class RecordProblem:
    """Why an entry of a source cannot be curated, found while listing it; it becomes the
    entry's row in decisions.parquet without any rendering.

    Attributes:
        decision: "failed" (the entry is broken or unsafe) or "reject" (a duplicate).
        reason: ``bad_identifier``, ``not_a_file``, ``dangling_link``, ``link_loop``,
            ``duplicate``, ``too_large`` (curation.sources.PROBLEMS).
        detail: one line naming the entry (and, for a duplicate, the row it duplicates).
    """

    decision: str
    reason: str
    detail: str


#: Reasons a source gives for entries it cannot hand to curation.
PROBLEMS = {
    "bad_identifier": "the source's uid, file identifier, sha256 or cache path is malformed or unsafe (never used as a path)",
    "not_a_file": "looks like an asset by its name, but is a directory or other non-file",
    "dangling_link": "a symbolic link whose target does not exist",
    "link_loop": "a symbolic link that leads back to itself",
    "duplicate": "the same bytes and format as another entry of the source; the detail names its row",
    "too_large": "a local file over the render's file bound, found from its size before it is read or hashed",
}


@dataclass
class SourceRecord:
    """One asset from one source.

    Attributes:
        uid: the source's own id. Objaverse 1.0: the 32-hex uid; Objaverse-XL: the
            ``save_uid`` (uuid5 of the file identifier, see ``curation.sources.ids``);
            local folder: the file's sha256.
        source: "objaverse-1.0", "objaverse-xl/<github|sketchfab|smithsonian|thingiverse>"
            or "local".
        file_identifier: where the file comes from (a URL for Objaverse, the absolute path
            for a local file).
        sha256: hex digest of the file. For Objaverse-XL it is the annotated one until the
            file is fetched, then the verified one; for Objaverse 1.0 (whose annotations have
            none) it is None until fetched.
        license: the annotated license string (e.g. "by", "cc0"), or None when unknown.
        local_path: the file on disk once fetched (or found in the cache), else None.
        metadata: source-specific annotation fields (name, animationCount, faceCount, ...).
        problem: set when the entry cannot be curated (a bad identifier, a broken link, a
            duplicate); such a record is never fetched or rendered.
    """

    uid: str
    source: str
    file_identifier: str
    sha256: str | None
    license: str | None
    local_path: Path | None = None
    metadata: dict = field(default_factory=dict)
    problem: RecordProblem | None = None



def problem_uid(kind: str, *parts: str) -> str:
    """A stable, safe uid for an entry whose own identifier cannot be used: ``<kind>-<hash>``."""
    return f"{kind}-{hashlib.sha256(chr(0).join(parts).encode(errors='replace')).hexdigest()[:32]}"


def invalid_record(source: str, raw_uid, file_identifier, reason: str) -> SourceRecord:
    """The record of an entry whose identifiers d4d refuses: a safe uid, the raw values shown
    on one line, and a ``bad_identifier`` problem."""
    raw_uid, file_identifier = str(raw_uid), str(file_identifier)
    return SourceRecord(
        uid=problem_uid("invalid", raw_uid, file_identifier), source=source, file_identifier=printable(file_identifier, 500),
        sha256=None, license=None, metadata={"raw_uid": printable(raw_uid, 200)},
        problem=RecordProblem("failed", "bad_identifier", f"{source} entry {printable(raw_uid, 80)!r}: {reason}"),
    )


class AssetSource:
    """What every source shares: ``records()`` and ``fetch_many()`` come from the subclass;
    ``fetch`` (one record) and the list of ``missing`` cache entries are here."""

    missing: list[str]

    def fetch(self, record: SourceRecord) -> SourceRecord:
        """``fetch_many`` for one record; raises its FetchError."""
        [(fetched, error)] = list(self.fetch_many([record]))
        if error is not None:
            raise error
        return fetched

    def _report_missing(self, line: str) -> None:
        self.missing.append(line)
        log.warning(line)


def check_glb(path: Path) -> None:
    """Raise InvalidAsset unless ``path`` is a complete glTF 2.0 binary.

    Checks the 12-byte header (magic "glTF", version 2, declared length equal to the file
    size, which catches truncated downloads) and that the first chunk is a JSON chunk that
    parses and says ``asset.version`` "2.x".
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20 or header[:4] != GLB_MAGIC:
            raise InvalidAsset(f"{path}: not a glTF binary (no 'glTF' magic)")
        _, version, length, chunk_len, chunk_type = struct.unpack("<4sIIII", header)
        if version != 2:
            raise InvalidAsset(f"{path}: glTF binary version {version}, expected 2")
        if length != size:
            raise InvalidAsset(f"{path}: header says {length} bytes, file has {size} (truncated?)")
        if chunk_type != _GLB_JSON_CHUNK or 20 + chunk_len > size:
            raise InvalidAsset(f"{path}: first chunk is not a complete JSON chunk")
        try:
            gltf = json.loads(f.read(chunk_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidAsset(f"{path}: JSON chunk does not parse ({exc})") from None
    if not str(gltf.get("asset", {}).get("version", "")).startswith("2"):
        raise InvalidAsset(f"{path}: JSON chunk has no asset.version 2.x")


def verify_asset_file(path: str | Path, expected_sha256: str | None = None) -> str:
    """Check a fetched asset file and return its sha256.

    Raises MissingFromCache when it does not exist, InvalidAsset when it is empty or (for
    .glb) not a complete glTF binary, ChecksumMismatch when ``expected_sha256`` is given
    and differs.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFromCache(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InvalidAsset(f"{path}: file is empty")
    if path.suffix.lower() == ".glb":
        check_glb(path)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ChecksumMismatch(f"{path}: sha256 {digest} differs from annotated {expected_sha256}")
    return digest
