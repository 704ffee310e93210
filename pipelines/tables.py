"""The run's tables under OUT, rebuilt from the manifest and written atomically.

- ``decisions.parquet``: one row per asset (keep / reject / failed) with its reason, the
  identity of its record, the flattened scalar measures (``MEASURE_COLUMNS``), per-stage
  seconds, and every measure and timing as JSON (``measures_json``, ``timings_json``).
- ``failures.parquet``: one row per failed asset with every attempt's error (``errors_json``).
- ``stats.json``: counts by decision and reason, assets per hour, seconds per stage.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from d4d.pipelines.manifest import ManifestState
from d4d.pipelines.work import WorkItem

STAGES = ("fetch", "precheck", "prepass", "quality", "motion")
#: Columns copied as they are from a result event.
EVENT_COLUMNS = ("uid", "name", "source", "file_identifier", "local_path", "sha256", "license", "caption", "decision", "reason", "detail", "stage", "error_kind", "attempts", "render_dir", "worker")

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
    [DECISIONS_SCHEMA.field(n) for n in ("uid", "name", "source", "file_identifier", "local_path", "stage", "reason", "error_kind", "detail", "attempts")]
    + [pa.field("errors_json", pa.string())]
)


def result_event(item: WorkItem, attempt: int, worker: str) -> dict:
    """The manifest's result event for a closed item (one decisions row before flattening)."""
    record = item.record
    return {
        "event": "result",
        "uid": item.uid,
        "name": item.name,
        "source": record.source,
        "file_identifier": record.file_identifier,
        "local_path": None if record.local_path is None else str(record.local_path),
        "sha256": record.sha256,
        "license": record.license,
        "caption": item.caption,
        "decision": item.decision,
        "reason": item.reason,
        "detail": item.detail,
        "stage": item.stage,
        "error_kind": item.error_kind,
        "attempts": attempt,
        "render_dir": item.render_dir,
        "worker": worker,
        "measures": item.measures,
        "timings": item.timings,
    }


def _number(value, kind: pa.DataType):
    if value is None or isinstance(value, (list, dict, str)):
        return None
    if pa.types.is_boolean(kind):
        return bool(value)
    if pa.types.is_integer(kind):
        return int(value)
    return float(value)


def decision_rows(state: ManifestState) -> list[dict]:
    rows = []
    for uid, event in sorted(state.results.items()):
        measures, timings = event.get("measures") or {}, event.get("timings") or {}
        row = {name: event.get(name) for name in EVENT_COLUMNS}
        row["in_shards"] = uid in state.sharded
        row["finished_at"] = int(event["time"] * 1000) if event.get("time") else None
        row["seconds"] = float(sum(timings.values())) if timings else None
        for stage in STAGES:
            row[f"{stage}_s"] = timings.get(stage)
        for name, kind in MEASURE_COLUMNS.items():
            row[name] = _number(measures.get(name), kind)
        row["measures_json"] = json.dumps(measures, sort_keys=True)
        row["timings_json"] = json.dumps(timings, sort_keys=True)
        rows.append(row)
    return rows


def failure_rows(state: ManifestState) -> list[dict]:
    rows = []
    for uid, event in sorted(state.results.items()):
        if event["decision"] != "failed":
            continue
        row = {name: event.get(name) for name in FAILURES_SCHEMA.names[:-1]}
        row["errors_json"] = json.dumps(state.errors.get(uid, []), sort_keys=True)
        rows.append(row)
    return rows


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, temp, compression="zstd")
    os.replace(temp, path)


def write_json_atomic(data: dict, path: Path) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temp, path)


def run_stats(state: ManifestState, total: int, started: float, wall_s: float, workers: int) -> dict:
    """Counts, throughput and per-stage time of the run so far.

    ``assets_per_hour`` counts the assets finished by *this* invocation over its wall time;
    ``stage_seconds`` sums every finished asset's per-stage seconds (all invocations), and
    ``stage_seconds_per_asset`` divides by the assets that reached the stage.
    """
    results = list(state.results.values())
    this_run = [r for r in results if r.get("time", 0) >= started]
    stage_s: Counter = Counter()
    stage_n: Counter = Counter()
    for r in results:
        for stage, seconds in (r.get("timings") or {}).items():
            stage_s[stage] += seconds
            stage_n[stage] += 1
    return {
        "total_assets": total,
        "finished": len(results),
        "remaining": total - len(results),
        "by_decision": dict(Counter(r["decision"] for r in results)),
        "by_reason": dict(Counter(f"{r['decision']}/{r['reason']}" for r in results if r["reason"])),
        "by_stage": dict(Counter(f"{r['decision']}@{r['stage']}" for r in results)),
        "in_shards": len(state.sharded),
        "retried_attempts": sum(state.failed_attempts.values()),
        "workers": workers,
        "wall_s": wall_s,
        "finished_this_run": len(this_run),
        "assets_per_hour": 3600.0 * len(this_run) / wall_s if wall_s > 0 else None,
        "stage_seconds": dict(stage_s),
        "stage_seconds_per_asset": {k: stage_s[k] / stage_n[k] for k in stage_s},
        "written_at": time.time(),
    }


def write_tables(out_dir: Path, state: ManifestState, stats: dict) -> None:
    """decisions.parquet, failures.parquet and stats.json under ``out_dir``, each atomically."""
    write_parquet_atomic(pa.Table.from_pylist(decision_rows(state), schema=DECISIONS_SCHEMA), out_dir / "decisions.parquet")
    write_parquet_atomic(pa.Table.from_pylist(failure_rows(state), schema=FAILURES_SCHEMA), out_dir / "failures.parquet")
    write_json_atomic(stats, out_dir / "stats.json")
