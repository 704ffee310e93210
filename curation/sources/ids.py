"""The identifiers Objaverse assets go by, and how they map onto each other.

- Objaverse 1.0 uid: 32 lowercase hex characters (a Sketchfab model id). Objaverse-XL lists
  the same objects under source "sketchfab" with fileIdentifier
  ``https://sketchfab.com/3d-models/<uid>``; the uid is the identifier's last path part
  (``objaverse.xl.SketchfabDownloader.file_identifier_to_uid``).
- Objaverse-XL ``fileIdentifier``: a URL (GitHub blob URL at a commit, Thingiverse
  download URL, Smithsonian glb URL, Sketchfab model URL). Unique per row.
- Objaverse-XL ``sha256``: 64 lowercase hex characters, the digest of the file's bytes.
  Cap3D keys its XL captions by it.
- ``save_uid``: ``str(uuid.uuid5(uuid.NAMESPACE_DNS, fileIdentifier))`` (36 characters
  with hyphens), ``objaverse.utils.get_uid_from_str``. Objaverse-XL's rendering script
  names each render after it, and the Smithsonian downloader names the cached file
  ``smithsonian/objects/<save_uid>.glb``. It hashes the identifier, not the content: the
  same bytes under two URLs get two save_uids.

``IdIndex`` resolves any of these (and a save_uid without hyphens) to one record.
"""

from __future__ import annotations

import ast
import csv
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from d4d.curation.sources.base import SourceRecord

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def save_uid(file_identifier: str) -> str:
    """Objaverse-XL's save uid of a file identifier: uuid5(NAMESPACE_DNS, identifier), 36 chars."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, file_identifier))


def identifier_kind(identifier: str) -> str:
    """What an identifier is: "v1_uid" (32 hex), "sha256" (64 hex), "save_uid" (uuid with
    hyphens), "file_identifier" (a URL) or "unknown"."""
    s = identifier.strip()
    low = s.lower()
    if _HEX32.match(low):
        return "v1_uid"
    if _HEX64.match(low):
        return "sha256"
    if _UUID.match(low):
        return "save_uid"
    if "://" in s:
        return "file_identifier"
    return "unknown"


class IdIndex:
    """Look records up by any identifier they go by (see the module docstring).

    A 32-hex key is tried as a 1.0 uid and as a save_uid with its hyphens removed, since
    both are 32 hex characters.
    """

    def __init__(self, records: Iterable[SourceRecord] = ()) -> None:
        self._by_key: dict[str, SourceRecord] = {}
        for record in records:
            self.add(record)

    def add(self, record: SourceRecord) -> None:
        keys = {record.uid.lower(), record.file_identifier}
        if record.sha256:
            keys.add(record.sha256.lower())
        if record.source.startswith("objaverse-xl/"):
            su = save_uid(record.file_identifier)
            keys.update({su, su.replace("-", "")})
        for key in keys:
            self._by_key[key] = record

    def get(self, identifier: str) -> SourceRecord | None:
        s = identifier.strip()
        return self._by_key.get(s) or self._by_key.get(s.lower())

    def __len__(self) -> int:
        return len({id(r) for r in self._by_key.values()})


def load_id_list(path: str | Path, min_animation_count: int | None = None) -> list[str]:
    """Identifiers from a released ID list.

    ``.txt``: one identifier per line (blank lines and ``#`` comments skipped), as in
    Diffusion4D's ``ObjV1_all_animated.txt`` / ``ObjV1_curated.txt`` (1.0 uids) and the
    save_uid lists of its XL subset. ``.csv``: a header row; the first column named one of
    ``sha256``, ``fileIdentifier``, ``file_identifier``, ``uid``, ``save_uid``, ``id`` is used
    (in that order of preference), else the first column.

    Args:
        min_animation_count: CSV only: keep rows whose ``meta`` column (a Python dict
            literal, as in Diffusion4D's ``meta_xl_animation_tot.csv``, which Objaverse-XL's
            Blender metadata pass wrote) has ``animation_count`` >= this. Rows without a
            readable count are dropped. None keeps every row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: id list not found") from None
    if path.suffix.lower() != ".csv":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return []
    header = rows[0]
    column = next(
        (header.index(n) for n in ("sha256", "fileIdentifier", "file_identifier", "uid", "save_uid", "id") if n in header), 0
    )
    if min_animation_count is not None and "meta" not in header:
        raise ValueError(f"{path}: min_animation_count needs a 'meta' column, header is {header}")
    meta = header.index("meta") if "meta" in header else None
    out = []
    for row in rows[1:]:
        if len(row) <= column or not row[column].strip():
            continue
        if min_animation_count is not None and _animation_count(row[meta] if len(row) > meta else "") < min_animation_count:
            continue
        out.append(row[column].strip())
    return out


def _animation_count(meta: str) -> int:
    """``animation_count`` from a Python dict literal; -1 when absent or unreadable."""
    try:
        value = ast.literal_eval(meta)
        return int(value.get("animation_count", -1)) if isinstance(value, dict) else -1
    except (ValueError, SyntaxError, TypeError):
        return -1
