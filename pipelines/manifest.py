"""The run's manifest: an append-only JSON-lines journal under OUT that makes runs resumable.

Each line is one event, appended with a single ``write`` and ``fsync``'d before the driver
acts on it:

- ``{"event": "run", ...}``: a run (or rerun) started, with its settings;
- ``{"event": "attempt_failed", "uid", "attempt", "reason", "kind", "detail"}``: a retryable
  failure of asset ``uid`` that will be retried;
- ``{"event": "result", "uid", "asset_uid", ...}``: a clip's outcome (keep / reject / failed),
  one decisions row (``pipelines.tables``), or a whole asset's failure (then ``uid`` is the
  asset's); a later result for the same uid replaces it (a kept clip whose render cannot be
  sharded becomes failed);
- ``{"event": "asset_done", "uid", "clips"}``: every clip of asset ``uid`` has a result;
- ``{"event": "sharded", "uids", "shards"}``: these kept clips are in published shards;
- ``{"event": "retry", "uids", "reasons"}``: ``--retry-failed``: forget the failed rows of
  these assets (their decided clips stay), so that the run redoes them with a full budget.

A kill -9 can at worst leave a torn last line: reading ignores it, and ``open`` cuts it
before appending. An asset without ``asset_done`` is redone by the next run, skipping its
clips that already have a result; attempts cut short by an interruption of the driver are
not counted against ``max_attempts``. (d4d 0.1 journals, one result per asset and no
``asset_done``, read as finished assets.)
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from d4d.files import json_safe

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
LOCK_NAME = ".d4d-curate.lock"


class RunLocked(RuntimeError):
    """Another run holds the output directory."""


@dataclass
class ManifestState:
    """What a manifest says so far.

    Attributes:
        results: clip uid (or a failed asset's uid) -> its latest result row.
        assets_done: uids of assets every clip of which has a result.
        failed_attempts: asset uid -> retryable failures recorded.
        errors: uid -> every attempt's error, in order (for failures.parquet).
        sharded: uids whose rows are in published shards.
        runs: the run events, in order.
    """

    results: dict[str, dict] = field(default_factory=dict)
    assets_done: set[str] = field(default_factory=set)
    failed_attempts: Counter = field(default_factory=Counter)
    errors: dict[str, list[dict]] = field(default_factory=dict)
    sharded: set[str] = field(default_factory=set)
    runs: list[dict] = field(default_factory=list)

    def apply(self, event: dict) -> None:
        kind = event["event"]
        if kind == "result":
            self.results[event["uid"]] = event
            if "asset_uid" not in event:  # a d4d 0.1 journal: one result per asset
                self.assets_done.add(event["uid"])
            if event["decision"] == "failed":
                self.errors.setdefault(event["uid"], []).append(_error(event))
        elif kind == "asset_done":
            self.assets_done.add(event["uid"])
        elif kind == "attempt_failed":
            self.failed_attempts[event["uid"]] += 1
            self.errors.setdefault(event["uid"], []).append(_error(event))
        elif kind == "sharded":
            self.sharded.update(event["uids"])
        elif kind == "run":
            self.runs.append(event)
        elif kind == "retry":
            for asset in event["uids"]:
                for uid in [u for u, r in self.results.items() if r.get("asset_uid", u) == asset and r["decision"] == "failed"]:
                    del self.results[uid]
                self.assets_done.discard(asset)
                self.failed_attempts.pop(asset, None)

    def failed_assets(self, reasons: frozenset[str] = frozenset()) -> list[str]:
        """Finished assets with a failed row (whole or one clip) of one of ``reasons`` (any, when
        empty), sorted: what ``--retry-failed`` redoes."""
        found = {r.get("asset_uid", uid) for uid, r in self.results.items() if r["decision"] == "failed" and (not reasons or r["reason"] in reasons)}
        return sorted(found & self.assets_done)

    def unsharded_keeps(self) -> list[dict]:
        """Kept results whose rows are not yet known to be in a shard."""
        return [r for uid, r in self.results.items() if r["decision"] == "keep" and uid not in self.sharded]

    def clips_of(self, asset_uid: str) -> frozenset[str]:
        """The uids of an asset's clips that have a result."""
        return frozenset(uid for uid, r in self.results.items() if r.get("asset_uid", uid) == asset_uid)


def _error(event: dict) -> dict:
    error = {k: event.get(k) for k in ("stage", "reason", "error_kind", "detail", "time")}
    error["attempt"] = event.get("attempt", event.get("attempts"))
    return error


class Manifest:
    """The journal at ``OUT/manifest.jsonl``. One driver at a time: ``open`` takes an exclusive
    ``flock`` on ``OUT/.d4d-curate.lock`` (released by the kernel if the driver dies)."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.state = ManifestState()
        self._fd: int | None = None
        self._lock: int | None = None

    def open(self) -> ManifestState:
        """Lock the directory, read the journal (ignoring a torn last line), cut that line off,
        open for appending. Raises RunLocked when another run holds the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.path.parent / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise RunLocked(f"{self.path.parent}: another d4d-curate run is using this output directory") from None
        self.state = ManifestState()
        good_bytes = 0
        if self.path.exists():
            data = self.path.read_bytes()
            lines = data.split(b"\n")
            for number, line in enumerate(lines[:-1], start=1):  # the part after the last newline is torn
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}:{number}: not a JSON event ({exc}); the manifest is damaged") from None
                self.state.apply(event)
            good_bytes = len(data) - len(lines[-1])
            if lines[-1]:
                log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", self.path, len(lines[-1]))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.ftruncate(self._fd, good_bytes)
        return self.state

    def append(self, event: dict) -> None:
        """Write one event durably and apply it to ``state``. On a write error (full disk) the
        journal is cut back to its last whole event and the OSError raised."""
        event = {**event, "time": time.time()}
        line = (json.dumps(json_safe(event), sort_keys=True, allow_nan=False) + "\n").encode()
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"{self.path}: only {written} of {len(line)} bytes written", str(self.path))
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, size)  # no torn line: the event is either whole or absent
            raise
        self.state.apply(event)

    def close(self) -> None:
        for name in ("_fd", "_lock"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)  # closing the lock file releases the flock
                setattr(self, name, None)

    def __enter__(self) -> Manifest:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
