"""The run's tables under OUT, rebuilt from the manifest and written atomically.

- ``decisions.parquet``: one row per clip (keep / reject / failed) with its reason, its
  identity (``uid`` the clip id, ``asset_uid``, ``action``, its window), the identity of its
  record, the flattened scalar measures (``MEASURE_COLUMNS``), per-stage seconds, and every
  measure and timing as JSON (``measures_json``, ``timings_json``); an asset that could not be
  judged at all has one failed row (``uid`` = ``asset_uid``).
- ``failures.parquet``: one row per failed clip or asset with every attempt's error (``errors_json``).
- ``stats.json``: assets and clips counted apart, by decision and reason, per hour, seconds per stage.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from d4d.curation.procedure import ClipOutcome
from d4d.files import replace_with, write_json_atomic
from d4d.pipelines.manifest import Checkpoint, ManifestState, Outcome
from d4d.pipelines.work import WorkItem

STAGES = ("fetch", "precheck", "prepass", "quality")
#: Columns copied as they are from a result event.
EVENT_COLUMNS = ("uid", "asset_uid", "action", "window_start_s", "window_end_s", "window_rank", "name", "source", "file_identifier", "local_path",
                 "sha256", "license", "caption", "decision", "reason", "detail", "stage", "error_kind", "attempts", "render_dir", "worker")

#: Scalar measures flattened into decisions.parquet columns (absent ones are null).
MEASURE_COLUMNS = {
    "size_bytes": pa.int64(),
    "has_animation": pa.bool_(),
    "animation_frames": pa.float64(),
    "geometric_max_displacement": pa.float64(),
    "geometric_mean_displacement": pa.float64(),
    "geometric_max_rms": pa.float64(),
    "empty_frames": pa.int64(),
    "frames_total": pa.int64(),
    "border_max_fraction": pa.float64(),
    "frames_touching_border": pa.int64(),
    "coverage_min": pa.float64(),
    "coverage_median": pa.float64(),
    "coverage_max": pa.float64(),
    "motion_magnitude": pa.float64(),
    "motion_magnitude_version": pa.int32(),
}

DECISION_FIELDS = (
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("asset_uid", pa.string()),
        pa.field("action", pa.string()),
        pa.field("window_start_s", pa.float64()),
        pa.field("window_end_s", pa.float64()),
        pa.field("window_rank", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("file_identifier", pa.string()),
        pa.field("local_path", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("license", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("whole_asset", pa.bool_()),
        pa.field("error_kind", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("render_dir", pa.string()),
        pa.field("in_shards", pa.bool_()),
        pa.field("worker", pa.string()),
        pa.field("finished_at", pa.timestamp("ms", tz="UTC")),
        pa.field("seconds", pa.float64()),
    ]
    + [pa.field(f"{stage}_s", pa.float64()) for stage in STAGES]
    + [pa.field(name, kind) for name, kind in MEASURE_COLUMNS.items()]
    + [pa.field("measures_json", pa.string()), pa.field("timings_json", pa.string())]
)
DECISIONS_SCHEMA = pa.schema(DECISION_FIELDS)
FAILURES_SCHEMA = pa.schema(
    [DECISIONS_SCHEMA.field(n) for n in ("uid", "asset_uid", "action", "name", "source", "file_identifier", "local_path", "stage", "reason", "error_kind",
                                         "detail", "attempts")]
    + [pa.field("errors_json", pa.string())]
)


def _record_columns(item: WorkItem) -> dict:
    record = item.record
    return {
        "asset_uid": item.uid, "name": item.name, "source": record.source, "file_identifier": record.file_identifier,
        "local_path": None if record.local_path is None else str(record.local_path), "sha256": record.sha256,
        "license": record.license, "caption": item.caption,
    }


def clip_event(item: WorkItem, clip: ClipOutcome, attempt: int, worker: str) -> dict:
    """The manifest's result event for one judged clip (one decisions row before flattening)."""
    decision, window = clip.decision, clip.window or {}
    return {
        "event": "result", "uid": clip.clip_id, **_record_columns(item), "action": clip.action,
        "window_start_s": window.get("start_s"), "window_end_s": window.get("end_s"), "window_rank": window.get("rank"),
        "decision": decision.decision, "reason": decision.reason, "detail": decision.detail, "stage": clip.stage,
        "error_kind": decision.measures.get("error_kind") if decision.decision == "failed" else None,
        "attempts": attempt, "render_dir": None if clip.render_dir is None else str(clip.render_dir), "worker": worker,
        "measures": {**item.measures, **decision.measures}, "timings": clip.timings,
    }


def failure_event(item: WorkItem, attempt: int, worker: str) -> dict:
    """The manifest's result event for an asset that could not be judged at all."""
    failure = item.failure
    return {
        "event": "result", "uid": item.uid, **_record_columns(item), "whole_asset": True, "decision": "failed", "reason": failure.reason,
        "detail": failure.detail, "stage": failure.stage, "error_kind": failure.kind, "attempts": attempt,
        "render_dir": None, "worker": worker, "measures": item.measures, "timings": item.timings,
    }


def problem_event(item: WorkItem) -> dict:
    """The manifest's result event for a source entry that cannot be curated (record.problem)."""
    problem = item.record.problem
    return {
        "event": "result", "uid": item.uid, **_record_columns(item), "whole_asset": True, "decision": problem.decision, "reason": problem.reason,
        "detail": problem.detail, "stage": "source", "error_kind": problem.reason if problem.decision == "failed" else None, "attempts": 0,
        "render_dir": None, "worker": None, "measures": {k: v for k, v in item.record.metadata.items() if k == "duplicate_of"}, "timings": {},
    }


def _number(value, kind: pa.DataType):
    if value is None or isinstance(value, (list, dict, str)):
        return None
    if pa.types.is_boolean(kind):
        return bool(value)
    if pa.types.is_integer(kind):
        return int(value)
    return float(value)


def decision_row(event: dict) -> dict:
    """One decisions.parquet row from a result event, without ``in_shards`` (set when written)."""
    uid = event["uid"]
    measures, timings = event.get("measures") or {}, event.get("timings") or {}
    row = {name: event.get(name) for name in EVENT_COLUMNS}
    row["asset_uid"] = event.get("asset_uid", uid)  # d4d 0.1 journals: one row per asset
    row["whole_asset"] = bool(event.get("whole_asset"))
    row["finished_at"] = int(event["time"] * 1000) if event.get("time") else None
    row["seconds"] = float(sum(timings.values())) if timings else None
    for stage in STAGES:
        row[f"{stage}_s"] = timings.get(stage)
    for name, kind in MEASURE_COLUMNS.items():
        row[name] = _number(measures.get(name), kind)
    row["measures_json"] = json.dumps(measures, sort_keys=True)
    row["timings_json"] = json.dumps(timings, sort_keys=True)
    return row


#: decisions.parquet's columns as converted when a row arrives (``in_shards`` is added when written).
_CONVERTED_SCHEMA = pa.schema([f for f in DECISION_FIELDS if f.name != "in_shards"])


class DecisionRows:
    """The tables' rows, converted to Arrow as results arrive, so that a table refresh converts
    only the rows new since the last one, and the driver holds each row as Arrow columns (about
    1 KB) rather than as its event (about 10 KB of Python objects).

    ``ManifestState.rows``: ``put(event)`` for every result event (a later one for the same uid
    replaces it), ``drop(uid)`` for a row ``--retry-failed`` forgets. A replaced or dropped row
    that was converted already is masked out (``_alive``), not rewritten.
    """

    #: Rows converted together (one Arrow batch).
    CHUNK = 4096

    def __init__(self) -> None:
        self._pending: dict[str, dict] = {}
        self._batches: list[pa.RecordBatch] = []
        self._index: dict[str, int] = {}
        self._alive = bytearray()
        self._failures: dict[str, dict] = {}

    def put(self, event: dict) -> None:
        uid = event["uid"]
        self._forget(uid)
        self._pending[uid] = event
        if event["decision"] == "failed":
            self._failures[uid] = {name: event.get(name) for name in FAILURES_SCHEMA.names[:-1]}
        if len(self._pending) >= self.CHUNK:
            self._convert()

    def drop(self, uid: str) -> None:
        self._forget(uid)
        self._pending.pop(uid, None)

    def _forget(self, uid: str) -> None:
        index = self._index.pop(uid, None)
        if index is not None:
            self._alive[index] = 0
        self._failures.pop(uid, None)

    def _convert(self) -> None:
        if not self._pending:
            return
        self._batches.append(pa.RecordBatch.from_pylist([decision_row(e) for e in self._pending.values()], schema=_CONVERTED_SCHEMA))
        for uid in self._pending:
            self._index[uid] = len(self._alive)
            self._alive.append(1)
        self._pending.clear()

    def decisions(self, sharded: set[str]) -> pa.Table:
        """decisions.parquet's table: every live row, ``in_shards`` from ``sharded``, sorted by uid."""
        self._convert()
        table = pa.Table.from_batches(self._batches, schema=_CONVERTED_SCHEMA)
        if len(self._index) < len(self._alive):
            table = table.filter(pa.array(np.frombuffer(self._alive, dtype=np.uint8).astype(bool)))
        in_shards = pc.is_in(table["uid"], value_set=pa.array(list(sharded), pa.string()))
        table = table.add_column(DECISIONS_SCHEMA.get_field_index("in_shards"), DECISIONS_SCHEMA.field("in_shards"), in_shards)
        return table.sort_by("uid")

    def resume(self, folder: Path, head: str, size: int) -> Checkpoint | None:
        """Start from the tables under ``folder`` when they were written from this journal (first
        line's sha256 ``head``, at most ``size`` bytes long): their rows become this object's, and
        the ``Checkpoint`` says what they hold. None (nothing taken) when they are absent,
        unreadable, of another journal or of another schema: the journal is then read whole."""
        try:
            decisions, failures = pq.read_table(folder / "decisions.parquet"), pq.read_table(folder / "failures.parquet")
        except (OSError, pa.ArrowException):
            return None
        marks = [_checkpoint_of(t) for t in (decisions, failures)]
        if marks[0] is None or marks[0] != marks[1] or marks[0][1] != head or marks[0][0] > size:
            return None
        if not (decisions.schema.equals(DECISIONS_SCHEMA) and failures.schema.equals(FAILURES_SCHEMA)):
            return None
        uids = decisions["uid"].to_pylist()
        self._batches = decisions.drop_columns(["in_shards"]).replace_schema_metadata(None).to_batches()
        self._index = {uid: i for i, uid in enumerate(uids)}
        self._alive = bytearray(b"\x01" * len(uids))
        errors = {}
        for row in failures.to_pylist():
            errors[row["uid"]] = json.loads(row.pop("errors_json"))
            self._failures[row["uid"]] = row
        columns = {n: decisions[n].to_pylist() for n in ("asset_uid", "decision", "reason", "stage", "whole_asset", "detail", "render_dir", "in_shards")}
        times = pc.divide(decisions["finished_at"].cast(pa.int64()), 1000.0).to_pylist()
        timings = [json.loads(t) for t in decisions["timings_json"].to_pylist()]
        results, unsharded = [], {}
        for i, uid in enumerate(uids):
            decision = columns["decision"][i]
            results.append(Outcome(uid, columns["asset_uid"][i], decision, columns["reason"][i], columns["stage"][i], bool(columns["whole_asset"][i]), times[i],
                                   timings[i], columns["detail"][i] if decision == "failed" else None,
                                   columns["render_dir"][i] if decision == "keep" else None))
            if decision == "keep" and not columns["in_shards"][i]:
                unsharded[uid] = _event_of(decisions.slice(i, 1).to_pylist()[0])
        return Checkpoint(marks[0][0], head, results, unsharded, errors)

    def failures(self, errors: dict[str, list[dict]]) -> pa.Table:
        """failures.parquet's table: every failed row with every attempt's error, sorted by uid."""
        rows = [{**row, "errors_json": json.dumps(errors.get(uid, []), sort_keys=True)} for uid, row in sorted(self._failures.items())]
        return pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA)


#: Schema metadata keys of the checkpoint the tables record (``DecisionRows.resume``).
JOURNAL_BYTES, JOURNAL_HEAD = b"d4d.journal_bytes", b"d4d.journal_head"


def _checkpoint_of(table: pa.Table) -> tuple[int, str] | None:
    meta = table.schema.metadata or {}
    try:
        return int(meta[JOURNAL_BYTES]), meta[JOURNAL_HEAD].decode()
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def _event_of(row: dict) -> dict:
    """A result event again from its decisions row (a kept row not yet in shards, which the
    shard writer may yet turn into a failed one)."""
    event = {name: row[name] for name in EVENT_COLUMNS}
    finished = row["finished_at"]
    return {**event, "event": "result", "whole_asset": row["whole_asset"], "measures": json.loads(row["measures_json"]),
            "timings": json.loads(row["timings_json"]), "time": None if finished is None else finished.timestamp()}


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    replace_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def run_stats(state: ManifestState, total: int, started: float, wall_s: float, workers: int) -> dict:
    """Counts, throughput and per-stage time of the run so far, with assets and clips apart.

    ``by_decision`` / ``by_reason`` / ``by_stage`` count clip rows (and failed assets' rows);
    ``assets`` counts the source's assets (finished, with a kept clip, failed as a whole, and the
    entries the source could not hand over, by reason: bad identifiers, broken links, duplicates).
    ``assets_per_hour`` counts the assets judged by *this* invocation over its wall time, and
    ``eta_s`` is the time left at that rate. ``stage_seconds`` sums every row's per-stage
    seconds (all invocations); ``stage_seconds_per_clip`` divides by the rows that reached it.
    """
    results = state.results.values()
    this_run_rows = [r for r in results if (r.time or 0) >= started and r.stage != "source"]
    this_run_assets = {r.asset_uid for r in this_run_rows}
    stage_s: Counter = Counter()
    stage_n: Counter = Counter()
    for r in results:
        for stage, seconds in r.timings.items():
            stage_s[stage] += seconds
            stage_n[stage] += 1
    finished = len(state.assets_done)
    rate = 3600.0 * len(this_run_assets) / wall_s if wall_s > 0 else None
    clips = [r for r in results if not r.whole_asset]
    return {
        "total_assets": total,
        "finished": finished,
        "remaining": total - finished,
        "assets": {
            "total": total,
            "finished": finished,
            "with_kept_clip": sum(any(state.results[u].decision == "keep" for u in uids) for uids in state.clips.values()),
            "failed_whole": sum(r.whole_asset and r.decision == "failed" and r.stage != "source" for r in results),
            "not_curated": dict(sorted(Counter(r.reason for r in results if r.stage == "source").items())),
        },
        "clips": {
            "judged": len(clips),
            "by_decision": dict(Counter(r.decision for r in clips)),
            "per_finished_asset": len(clips) / finished if finished else None,
        },
        "by_decision": dict(Counter(r.decision for r in results)),
        "by_reason": dict(Counter(f"{r.decision}/{r.reason}" for r in results if r.reason)),
        "by_stage": dict(Counter(f"{r.decision}@{r.stage}" for r in results)),
        "in_shards": len(state.sharded),
        "retried_attempts": sum(state.failed_attempts.values()),
        "workers": workers,
        "wall_s": wall_s,
        "finished_this_run": len(this_run_assets),
        "assets_per_hour": rate,
        "clips_per_hour": 3600.0 * len(this_run_rows) / wall_s if wall_s > 0 else None,
        "eta_s": 3600.0 * (total - finished) / rate if rate else None,
        "stage_seconds": dict(stage_s),
        "stage_seconds_per_clip": {k: stage_s[k] / stage_n[k] for k in stage_s},
        "written_at": time.time(),
    }


def write_tables(out_dir: Path, state: ManifestState, stats: dict) -> None:
    """decisions.parquet, failures.parquet and stats.json under ``out_dir``, each atomically, from
    ``state.rows`` (a ``DecisionRows``: ``Manifest(out_dir, rows=DecisionRows)``)."""
    if not isinstance(state.rows, DecisionRows):
        raise TypeError("write_tables needs a ManifestState whose rows are a DecisionRows")
    decisions, failures = state.rows.decisions(state.sharded), state.rows.failures(state.errors)
    if state.head is not None:  # the next Manifest.open starts from these tables (DecisionRows.resume)
        mark = {JOURNAL_BYTES: str(state.journal_bytes).encode(), JOURNAL_HEAD: state.head.encode()}
        decisions, failures = decisions.replace_schema_metadata(mark), failures.replace_schema_metadata(mark)
    write_parquet_atomic(decisions, out_dir / "decisions.parquet")
    write_parquet_atomic(failures, out_dir / "failures.parquet")
    write_json_atomic(out_dir / "stats.json", stats, sort_keys=True)
