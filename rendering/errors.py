"""The one error type a render raises for a bad asset: a machine-readable kind and a reason."""

from __future__ import annotations

#: Every kind of asset failure, for callers that branch on it (curation records it).
FAILURE_KINDS = (
    "missing_file",
    "empty_file",
    "unsupported_format",
    "too_large",
    "import_failed",
    "missing_linked_files",
    "linked_file_outside_asset",
    "unreadable_texture",
    "no_geometry",
    "render_failed",
    "timeout",
    "memory_exceeded",
    "crashed",
)


class AssetError(Exception):
    """A bad or failing asset. ``kind`` is one of FAILURE_KINDS, ``reason`` one human line."""

    def __init__(self, kind: str, reason: str, asset: str | None = None):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(reason)
        self.kind, self.reason, self.asset = kind, reason, asset

    def __str__(self) -> str:
        return f"{self.asset}: {self.reason}" if self.asset else self.reason

    def to_dict(self) -> dict:
        return {"kind": self.kind, "reason": self.reason, "asset": self.asset}
