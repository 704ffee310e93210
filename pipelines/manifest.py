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
  these assets, their attempts and errors (their decided clips stay), so that the run redoes
  them with a full budget.

Reading a long journal is mostly parsing its result lines. The tables (``pipelines.tables``)
record the journal length they were written at (a ``Checkpoint``), and ``open`` starts from
them: it skips the result lines before that point unparsed and replays the other events, so a
rerun at 300K results opens in seconds; without usable tables it reads the journal whole.

A kill -9 can at worst leave a torn last line: reading ignores it, and ``open`` cuts it
before appending. An asset without ``asset_done`` is redone by the next run, skipping its
clips that already have a result; attempts cut short by an interruption of the driver are
not counted against ``max_attempts``. (d4d 0.1 journals, one result per asset and no
``asset_done``, read as finished assets.)
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from d4d.files import json_safe

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
#: How every result line of the journal starts its event field (json.dumps' separators; a
#: string value holding these characters has its quotes escaped, so cannot match).
RESULT_LINE = b'"event": "result"'
#: An ``asset_done`` line as ``Manifest.append`` writes it (sorted keys); uids are safe names
#: (``d4d.untrusted.check_identifier``), so the uid is the last quoted value.
ASSET_DONE_LINE = re.compile(rb'\{"clips": \[[^\]]*\], "event": "asset_done", "time": [0-9.eE+-]+, "uid": "([^"\\]+)"\}\n')
LOCK_NAME = ".d4d-curate.lock"


class RunLocked(RuntimeError):
    """Another run holds the output directory."""


@dataclass(slots=True)
class Outcome:
    """What the driver keeps of one result row: enough to resume, retry, count and report. The
    whole row (measures, identity) goes to ``ManifestState.rows`` (the tables), not here, so that
    the driver's memory per row stays small (about 0.5 KB against about 10 KB for the event).

    Attributes:
        uid: the clip id (or a failed asset's uid); asset_uid: its asset's uid.
        decision, reason, stage: the row's. whole_asset: the row is the asset's (no clip).
        time: when it was journaled (seconds since the epoch), or None.
        timings: stage -> seconds. detail: failed rows only. render_dir: kept rows only.
    """

    uid: str
    asset_uid: str
    decision: str
    reason: str | None
    stage: str | None
    whole_asset: bool
    time: float | None
    timings: dict
    detail: str | None
    render_dir: str | None

    @classmethod
    def of(cls, event: dict) -> Outcome:
        decision = event["decision"]
        return cls(event["uid"], event.get("asset_uid", event["uid"]), decision, event.get("reason"), event.get("stage"), bool(event.get("whole_asset")),
                   event.get("time"), event.get("timings") or {}, event.get("detail") if decision == "failed" else None,
                   event.get("render_dir") if decision == "keep" else None)


@dataclass
class Checkpoint:
    """What the tables written at byte ``journal_bytes`` of the journal hold, read back by the
    next ``Manifest.open`` instead of parsing those bytes' result lines (``pipelines.tables``
    writes and reads it; its rows are in ``ManifestState.rows`` already).

    Attributes:
        journal_bytes: the journal's length when the tables were written.
        head: sha256 of the journal's first line (the same journal, not another one at OUT).
        results: every row's ``Outcome``.
        unsharded: uid -> the whole event of each kept row not in shards.
        errors: failed uid -> every attempt's error.
    """

    journal_bytes: int
    head: str
    results: list[Outcome]
    unsharded: dict[str, dict]
    errors: dict[str, list[dict]]


@dataclass
class ManifestState:
    """What a manifest says so far, indexed so that each asset's bookkeeping costs the same
    whatever the number of results.

    Attributes:
        results: clip uid (or a failed asset's uid) -> its latest result (``Outcome``).
        clips: asset uid -> the uids of its rows that have a result.
        assets_done: uids of assets every clip of which has a result.
        failed_attempts: asset uid -> retryable failures recorded.
        errors: uid -> every attempt's error, in order (for failures.parquet).
        sharded: uids whose rows are in published shards.
        unsharded: uid -> the whole result event of each kept row not yet known to be in a
            shard (the shard writer's work; a row it cannot shard is journaled again as failed).
        runs: the run events, in order.
        rows: where every whole result row goes (``pipelines.tables.DecisionRows``: ``put(event)``,
            ``drop(uid)``, ``resume(folder, head, size)``), or None when only the bookkeeping is wanted.
        journal_bytes, head: the journal's length so far and its first line's sha256 (what the
            tables record as their ``Checkpoint``); 0 and None for a state not read from a journal.
    """

    results: dict[str, Outcome] = field(default_factory=dict)
    clips: dict[str, set[str]] = field(default_factory=dict)
    assets_done: set[str] = field(default_factory=set)
    failed_attempts: Counter = field(default_factory=Counter)
    errors: dict[str, list[dict]] = field(default_factory=dict)
    sharded: set[str] = field(default_factory=set)
    unsharded: dict[str, dict] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    rows: object = None
    journal_bytes: int = 0
    head: str | None = None

    def seed(self, checkpoint: Checkpoint) -> None:
        """Start from the tables' ``checkpoint`` (before the journal's lines are replayed)."""
        for outcome in checkpoint.results:
            self.results[outcome.uid] = outcome
            self.clips.setdefault(outcome.asset_uid, set()).add(outcome.uid)
        self.unsharded, self.errors = dict(checkpoint.unsharded), {uid: list(e) for uid, e in checkpoint.errors.items()}

    def replay(self, event: dict, checkpoint: Checkpoint) -> None:
        """Apply a journal event older than ``checkpoint``: its results are in the checkpoint
        already, so result lines are skipped and a retry forgets only attempts and completion;
        a failed row's attempt errors are in the checkpoint's errors."""
        kind = event["event"]
        if kind == "result":
            return
        if kind == "retry":
            for asset in event["uids"]:
                self.assets_done.discard(asset)
                self.failed_attempts.pop(asset, None)
                self.errors.pop(asset, None)
        elif kind == "attempt_failed" and event["uid"] in checkpoint.errors:
            self.failed_attempts[event["uid"]] += 1
        else:
            self.apply(event)

    def apply(self, event: dict) -> None:
        kind = event["event"]
        if kind == "result":
            uid = event["uid"]
            outcome = Outcome.of(event)
            before = self.results.get(uid)
            if before is not None and before.asset_uid != outcome.asset_uid:
                self.clips[before.asset_uid].discard(uid)
            self.results[uid] = outcome
            self.clips.setdefault(outcome.asset_uid, set()).add(uid)
            if "asset_uid" not in event:  # a d4d 0.1 journal: one result per asset
                self.assets_done.add(uid)
            if outcome.decision == "failed":
                self.errors.setdefault(uid, []).append(_error(event))
            if outcome.decision == "keep" and uid not in self.sharded:
                self.unsharded[uid] = event
            else:
                self.unsharded.pop(uid, None)
            if self.rows is not None:
                self.rows.put(event)
        elif kind == "asset_done":
            self.assets_done.add(event["uid"])
        elif kind == "attempt_failed":
            self.failed_attempts[event["uid"]] += 1
            self.errors.setdefault(event["uid"], []).append(_error(event))
        elif kind == "sharded":
            self.sharded.update(event["uids"])
            for uid in event["uids"]:
                self.unsharded.pop(uid, None)
        elif kind == "run":
            self.runs.append(event)
        elif kind == "retry":
            for asset in event["uids"]:
                clips = self.clips.get(asset, set())
                for uid in [u for u in clips if self.results[u].decision == "failed"]:
                    del self.results[uid]
                    self.errors.pop(uid, None)
                    clips.discard(uid)
                    if self.rows is not None:
                        self.rows.drop(uid)
                if not clips:
                    self.clips.pop(asset, None)
                self.assets_done.discard(asset)
                self.failed_attempts.pop(asset, None)
                self.errors.pop(asset, None)

    def failed_assets(self, reasons: frozenset[str] = frozenset()) -> list[str]:
        """Finished assets with a failed row (whole or one clip) of one of ``reasons`` (any, when
        empty), sorted: what ``--retry-failed`` redoes."""
        found = {r.asset_uid for r in self.results.values() if r.decision == "failed" and (not reasons or r.reason in reasons)}
        return sorted(found & self.assets_done)

    def unsharded_keeps(self) -> list[dict]:
        """Kept results (whole events) whose rows are not yet known to be in a shard."""
        return list(self.unsharded.values())

    def clips_of(self, asset_uid: str) -> frozenset[str]:
        """The uids of an asset's clips that have a result (from the index: O(clips of the asset))."""
        return frozenset(self.clips.get(asset_uid, ()))


def _error(event: dict) -> dict:
    error = {k: event.get(k) for k in ("stage", "reason", "error_kind", "detail", "time")}
    error["attempt"] = event.get("attempt", event.get("attempts"))
    return error


class Manifest:
    """The journal at ``OUT/manifest.jsonl``. One driver at a time: ``open`` takes an exclusive
    ``flock`` on ``OUT/.d4d-curate.lock`` (released by the kernel if the driver dies).

    ``rows``: makes the ``ManifestState.rows`` sink (``pipelines.tables.DecisionRows``) that every
    result row goes to as it is read or appended; None keeps the bookkeeping only."""

    def __init__(self, out_dir: Path, rows=None):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.rows = rows
        self.state = ManifestState()
        self._fd: int | None = None
        self._lock: int | None = None

    def open(self) -> ManifestState:
        """Lock the directory, read the journal line by line (ignoring a torn last line), cut that
        line off, open for appending. Raises RunLocked when another run holds the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.path.parent / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise RunLocked(f"{self.path.parent}: another d4d-curate run is using this output directory") from None
        self.state = ManifestState(rows=None if self.rows is None else self.rows())
        good_bytes = 0
        if self.path.exists():
            with open(self.path, "rb") as journal:
                first = journal.readline()
                journal.seek(0)
                if first.endswith(b"\n"):
                    self.state.head = hashlib.sha256(first).hexdigest()
                checkpoint = None
                if self.state.rows is not None and self.state.head is not None:
                    checkpoint = self.state.rows.resume(self.path.parent, self.state.head, self.path.stat().st_size)
                if checkpoint is not None:
                    self.state.seed(checkpoint)
                for number, line in enumerate(journal, start=1):
                    if not line.endswith(b"\n"):  # the part after the last newline is torn
                        log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", self.path, len(line))
                        break
                    old = checkpoint is not None and good_bytes < checkpoint.journal_bytes
                    good_bytes += len(line)
                    if old and RESULT_LINE in line:  # in the checkpoint: not parsed (most of a long journal)
                        continue
                    done = ASSET_DONE_LINE.fullmatch(line) if old else None
                    if done is not None:  # the other half of a long journal, read without parsing it
                        self.state.assets_done.add(done.group(1).decode())
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{self.path}:{number}: not a JSON event ({exc}); the manifest is damaged") from None
                    if old:
                        self.state.replay(event, checkpoint)
                    else:
                        self.state.apply(event)
        self.state.journal_bytes = good_bytes
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
        if size == 0:
            self.state.head = hashlib.sha256(line).hexdigest()
        self.state.journal_bytes = size + len(line)
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
