"""What every asset source yields (``SourceRecord``), how fetched files are checked, and the errors.

Pure Python; no network here. A source builds records from annotations, and ``fetch`` fills
``local_path`` and ``sha256`` after checking the file (``verify_asset_file``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Extensions (lower case, no dot) of the 3D formats d4d's renderer imports; the same set
#: Objaverse-XL crawled, plus "usdc".
ASSET_EXTENSIONS = ("glb", "gltf", "fbx", "obj", "dae", "abc", "blend", "usd", "usda", "usdc", "usdz", "stl", "ply")

GLB_MAGIC = b"glTF"
_GLB_JSON_CHUNK = 0x4E4F534A  # "JSON" little endian


log = logging.getLogger(__name__)


class FetchError(Exception):
    """An asset that could not be made available locally; the message is one line naming it."""


class MissingFromCache(FetchError):
    """Offline, and the cache lacks a file; the message names the uid/file and the expected path."""


class ChecksumMismatch(FetchError):
    """The local file's sha256 differs from the one the annotations record."""


class InvalidAsset(FetchError):
    """The local file is empty, truncated or not in the format its name says."""


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
    """

    uid: str
    source: str
    file_identifier: str
    sha256: str | None
    license: str | None
    local_path: Path | None = None
    metadata: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["local_path"] = None if self.local_path is None else str(self.local_path)
        return d


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


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (objaverse hashes the same way)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


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


@contextlib.contextmanager
def network_timeout(timeout_s: float):
    """Within the block, sockets created without an explicit timeout give up after ``timeout_s``."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def require_reachable(host: str, timeout_s: float, port: int = 443) -> None:
    """Raise FetchError within ``timeout_s`` when ``host:port`` cannot be connected to.

    Sources call this before handing work to objaverse's downloaders, some of which open
    connections with no timeout of their own.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise FetchError(
            f"cannot reach {host}:{port} within {timeout_s:g}s ({exc}); use offline=True with a filled cache"
        ) from None
