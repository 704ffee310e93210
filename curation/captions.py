"""Cap3D captions joined onto asset records, with the paper's "a dynamic asset, " prefix.

Cap3D's caption file (e.g. ``Cap3D_automated_Objaverse_full.csv``) is a CSV with no header
and two columns, identifier and caption, quoted by the usual CSV rules (captions may hold
commas and doubled quotes). A 32-character identifier is an Objaverse 1.0 uid, a
64-character one an Objaverse-XL sha256.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from d4d.curation.sources.base import SourceRecord

#: The paper prefixes every caption with this at training time, because Cap3D describes
#: static objects.
DYNAMIC_PREFIX = "a dynamic asset, "


@dataclass
class Cap3DCaptions:
    """Captions by identifier kind.

    Attributes:
        v1: Objaverse 1.0 uid (32 chars, lower case) -> caption.
        xl: Objaverse-XL sha256 (64 chars, lower case) -> caption.
        other: rows whose identifier is neither length (kept, never joined by records).
    """

    v1: dict[str, str] = field(default_factory=dict)
    xl: dict[str, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.v1) + len(self.xl) + len(self.other)

    def raw_caption(self, record: SourceRecord) -> str | None:
        """The caption for a record, without prefix: an XL sha256 match first (covers XL and
        local files with the same bytes), then the 1.0 uid; None when Cap3D has none."""
        if record.sha256 and record.sha256.lower() in self.xl:
            return self.xl[record.sha256.lower()]
        if record.source == "objaverse-1.0" or record.source == "objaverse-xl/sketchfab":
            uid = record.uid if record.source == "objaverse-1.0" else record.file_identifier.rstrip("/").split("/")[-1]
            return self.v1.get(uid.lower())
        return None


def load_cap3d(path: str | Path, keys: set[str] | None = None) -> Cap3DCaptions:
    """Read a Cap3D caption CSV.

    Args:
        path: the CSV (no header; identifier, caption).
        keys: keep only these identifiers (lower case); None keeps all. The full Cap3D file
            has about a million rows, so a pipeline passes the ids it needs.

    Raises ValueError naming the file and line for a row without exactly two columns or with
    an empty identifier.
    """
    path = Path(path)
    out = Cap3DCaptions()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row:
                continue
            if len(row) != 2 or not row[0].strip():
                raise ValueError(f"{path}:{reader.line_num}: expected 2 columns (identifier, caption) with an identifier, got {len(row)} columns: {str(row)[:80]}")
            identifier, caption = row[0].strip().lower(), row[1].strip()
            if keys is not None and identifier not in keys:
                continue
            {32: out.v1, 64: out.xl}.get(len(identifier), out.other)[identifier] = caption
    return out


def caption(record: SourceRecord, captions: Cap3DCaptions, prefix: str = DYNAMIC_PREFIX) -> str | None:
    """``prefix`` + the Cap3D caption of ``record`` (verbatim, no case change), or None."""
    raw = captions.raw_caption(record)
    return None if raw is None else prefix + raw


def join_captions(
    records: Iterable[SourceRecord], captions: Cap3DCaptions, prefix: str = DYNAMIC_PREFIX
) -> Iterator[tuple[SourceRecord, str | None]]:
    """(record, prefixed caption or None) for each record, in order."""
    for record in records:
        yield record, caption(record, captions, prefix)
