"""Cap3D caption files: CSV, no header, two columns (identifier, caption).

A 32-character identifier is an Objaverse 1.0 uid, a 64-character one an Objaverse-XL sha256.
"""

from __future__ import annotations

import csv
from pathlib import Path


def load_captions(path: str | Path) -> dict[str, str]:
    """identifier -> caption. Raises ValueError naming the file and line of a malformed row."""
    path = Path(path)
    captions: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for line, record in enumerate(csv.reader(handle), start=1):
                if not record:
                    continue
                if len(record) != 2 or not record[0].strip():
                    raise ValueError(f"{path}:{line}: expected 2 columns (identifier, caption), got {len(record)}")
                captions[record[0].strip()] = record[1].strip()
    except FileNotFoundError:
        raise ValueError(f"{path}: caption file not found") from None
    return captions
