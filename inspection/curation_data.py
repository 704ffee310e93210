"""Read a curation output into one record per asset, with previews.

Three layouts (``inspection.detect``):

- a curation run: ``DIR/decisions.parquet`` (one row per asset considered), ``DIR/shards/``
  (the kept clips, docs/shards.md) and ``DIR/stats.json`` (docs/pipeline.md);
- a shard directory alone (``part-*.parquet``): every row is a kept clip;
- a directory of render directories (or one render directory): each is decided here with
  ``curation.decision.decide`` from its frames and asset.json.

decisions.parquet is read as d4d-curate writes it (pipelines/tables.py): ``uid`` and
``decision`` are required; ``reason``, ``detail``, ``caption`` and ``render_dir`` are used when
present; ``measures_json`` (or ``measures``: JSON text or a struct) holds the measures;
``timings_json`` is dropped (its stages are also the ``STAGE_s`` columns); every other column
(the flattened measures, ``STAGE_s``, ``seconds``, the record's identity) is shown as a measure.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from d4d.curation.config import CurationConfig
from d4d.curation.decision import Decision
from d4d.curation.procedure import decide_render
from d4d.inspection.media import MediaStore, Sprite, file_key, sprite_sheet
from d4d.rendering.contract import VIDEO_NAMES, AssetInfo, RenderContractError, load_render, read_asset
from d4d.shards.files import list_shards

log = logging.getLogger("d4d.inspect")

#: decisions.parquet columns with a meaning of their own; every other column is a measure.
DECISION_COLUMNS = ("uid", "decision", "reason", "detail", "measures", "measures_json", "timings_json", "caption", "render_dir",
                    "asset_uid", "action", "window_start_s", "window_end_s", "name", "sha256")


class InspectError(ValueError):
    """An input that cannot be inspected; the message names the path and the reason."""


@dataclass
class ClipRecord:
    """One clip of a curation output (or an asset that failed as a whole).

    Attributes:
        uid: the clip's id (the asset's, for its only clip). decision: keep / reject / failed.
            reason: None for keep.
        measures: JSON-safe measures behind the decision (``Decision.measures``).
        caption: Cap3D caption (with the training prefix when the shard stored it so).
        timings: seconds per render stage (asset.json ``timings``), when known.
        render_dir: where its frames can be read, when they can.
        content_sha256: the shard row's content hash, when it is in a shard.
        shard_videos: the videos that shard row holds.
        previews: video name -> preview.
        asset_uid: the asset the clip comes from (its uid when unknown).
        action: the animation the clip plays, when known.
        window: (start, end) of the clip on the animation's timeline, seconds, when known.
        name: the asset's file name (or the source's name for it), when known.
        sha256: hex sha256 of the asset's file, when known.
    """

    uid: str
    decision: str
    reason: str | None = None
    detail: str = ""
    measures: dict = field(default_factory=dict)
    caption: str | None = None
    timings: dict = field(default_factory=dict)
    render_dir: Path | None = None
    content_sha256: str | None = None
    shard_videos: tuple[str, ...] = ()
    previews: dict[str, Sprite] = field(default_factory=dict)
    asset_uid: str | None = None
    action: str | None = None
    window: tuple[float, float] | None = None
    name: str | None = None
    sha256: str | None = None

    @property
    def motion_magnitude(self) -> float | None:
        value = self.measures.get("motion_magnitude")
        return float(value) if isinstance(value, (int, float)) else None


# ---------------------------------------------------------------- decisions.parquet and shards


def _measures_of(row: dict) -> dict:
    raw = row.get("measures_json", row.get("measures"))
    if isinstance(raw, str):
        try:
            measures = json.loads(raw)
        except json.JSONDecodeError:
            measures = {"measures": raw}
    elif isinstance(raw, dict):
        measures = dict(raw)
    else:
        measures = {}
    measures.update({k: v for k, v in row.items() if k not in DECISION_COLUMNS and v is not None})
    return measures


def file_name(identifier: str | None) -> str | None:
    """The last component of a path or URL (``a/b/robot.glb`` -> ``robot.glb``), or None."""
    name = str(identifier or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or None


def source_name(asset: AssetInfo) -> str | None:
    """The file name of what was rendered: of the source's identifier (asset.json ``source.url``,
    set by d4d-curate; the fetched copy may be named by its content), else of ``source.path``."""
    return file_name(asset.source.url) or file_name(asset.source.path)


def read_decisions(path: Path) -> list[ClipRecord]:
    """One record per row of decisions.parquet (see the module docstring for the columns read)."""
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InspectError(f"{path}: cannot read as Parquet ({exc})") from None
    missing = [c for c in ("uid", "decision") if c not in table.column_names]
    if missing:
        raise InspectError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(table.column_names)})")
    records = []
    for row in table.to_pylist():
        measures = _measures_of(row)
        render_dir = row.get("render_dir") or measures.get("render_dir")
        window = (row["window_start_s"], row["window_end_s"]) if row.get("window_start_s") is not None else None
        records.append(ClipRecord(
            uid=str(row["uid"]), decision=str(row["decision"]), reason=row.get("reason"), detail=row.get("detail") or "",
            measures=measures, caption=row.get("caption"), render_dir=Path(render_dir) if render_dir else None,
            asset_uid=row.get("asset_uid") or str(row["uid"]), action=row.get("action"), window=window,
            name=row.get("name") or file_name(row.get("file_identifier")), sha256=row.get("sha256"),
        ))
    return records


SHARD_SCALARS = ("uid", "caption", "motion_magnitude", "content_sha256", "asset_json", "asset_uid", "action", "window_start_s", "window_end_s")


def _present(path: Path, columns: list[str]) -> list[str]:
    """The ``columns`` a shard has (version-1 shards lack the clip and second-orbit columns)."""
    names = set(pq.read_schema(path).names)
    return [c for c in columns if c in names]


def read_shard_records(shard_dir: Path) -> dict[str, ClipRecord]:
    """uid -> a kept record from the shards' scalar columns (no video bytes are read)."""
    records: dict[str, ClipRecord] = {}
    for path in list_shards(shard_dir):
        try:
            table = pq.read_table(path, columns=_present(path, list(SHARD_SCALARS) + [f"{v}_times" for v in VIDEO_NAMES]))
        except (OSError, ValueError, KeyError) as exc:
            raise InspectError(f"{path}: not a d4d shard ({exc})") from None
        for row in table.to_pylist():
            asset = AssetInfo.parse(json.loads(row["asset_json"]), f"{path} uid {row['uid']}") if row["asset_json"] else AssetInfo()
            measures = {"motion_magnitude": row["motion_magnitude"]} if row["motion_magnitude"] is not None else {}
            measures.update({k: v for k, v in (("asset_policy", asset.policy), ("asset_warnings", asset.warnings)) if v})
            records[row["uid"]] = ClipRecord(
                uid=row["uid"], decision="keep", detail=f"in {path.name}", measures=measures, caption=row["caption"],
                timings=asset.timings or {}, content_sha256=row["content_sha256"],
                shard_videos=tuple(v for v in VIDEO_NAMES if row.get(f"{v}_times") is not None),
                asset_uid=row.get("asset_uid") or row["uid"], action=row.get("action"),
                window=(row["window_start_s"], row["window_end_s"]) if row.get("window_start_s") is not None else None,
                name=source_name(asset), sha256=asset.source.sha256,
            )
    return records


def _shard_rows_with_videos(shard_dir: Path, wanted: set[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(uid, video name -> encoded bytes) for the wanted uids, one row group in memory at a time."""
    for path in list_shards(shard_dir):
        columns = _present(path, ["uid"] + [f"{v}_video" for v in VIDEO_NAMES])
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            uids = parquet.read_row_group(group, columns=["uid"]).column("uid").to_pylist()
            if not wanted.intersection(uids):
                continue
            for row in parquet.read_row_group(group, columns=columns).to_pylist():
                if row["uid"] in wanted:
                    yield row["uid"], {v: row[f"{v}_video"] for v in VIDEO_NAMES if row.get(f"{v}_video") is not None}


# ---------------------------------------------------------------- previews (run in worker processes)


def _sheets_from_video_bytes(job: tuple[str, dict[str, bytes], int]) -> tuple[str, dict[str, tuple], dict[str, str]]:
    """(uid, video name -> sprite strip, video name -> why it could not be decoded)."""
    from d4d.shards.video import VideoDecodeError, decode_rgba

    uid, videos, size = job
    sheets, errors = {}, {}
    for name, data in videos.items():
        try:
            sheets[name] = sprite_sheet(decode_rgba(data), size)
        except VideoDecodeError as exc:
            errors[name] = str(exc)
    return uid, sheets, errors


def video_file_sprite(path: Path, store: MediaStore, notes: list[str]) -> Sprite | None:
    """The preview of a video file (an MP4 of training, sampling or reconstruction), reused from
    ``store`` while the file is unchanged; None, with a line in ``notes``, when it does not decode."""
    from d4d.shards.video import VideoDecodeError, decode_rgba

    key = f"file|{file_key(path)}"
    sprite = store.cached(key)
    if sprite is None:
        try:
            sprite = store.put(key, *sprite_sheet(decode_rgba(path.read_bytes()), store.size))
        except (VideoDecodeError, OSError) as exc:
            notes.append(f"{path}: cannot decode ({exc})")
    return sprite


def _decide_render_dir(job: tuple[str, dict | None, int, bool, bool]) -> tuple[str, dict, AssetInfo, dict[str, tuple]]:
    """Load a render directory, give it the pipeline's final decision (``curation.procedure``),
    make its previews: (dir, decision json, asset.json, sheets).

    ``job`` = (directory, CurationConfig fields, preview size, decide?, make previews?); a
    directory neither decided nor previewed only has its asset.json read.
    """
    root, config, size, want_decision, want_sheets = job
    try:
        if not (want_decision or want_sheets):
            return root, {}, read_asset(root), {}
        sample = load_render(root)
    except (RenderContractError, OSError) as exc:
        return root, Decision("failed", "render_failed", {}, f"unreadable render directory: {exc}").to_json(), AssetInfo(), {}
    decision = decide_render(sample, CurationConfig.from_dict(config or {})).to_json() if want_decision else {}
    sheets = {name: sprite_sheet(video.rgba, size) for name, video in sample.videos.items()} if want_sheets else {}
    return root, decision, sample.asset, sheets


def _run(function, jobs: Iterable, workers: int) -> Iterator:
    """``function(job)`` for each job, in order; with ``workers`` > 1 in a process pool that holds
    at most two jobs per worker in flight (jobs may carry megabytes of video)."""
    if workers <= 1:
        yield from map(function, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.submit(function, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _progress(done: int, total: int, what: str) -> None:
    if done == total or done % 100 == 0:
        log.info("%s: %d/%d", what, done, total)


def add_shard_previews(records: list[ClipRecord], shard_dir: Path, store: MediaStore, workers: int) -> list[str]:
    """Previews of the records that are in the shards (cached ones are reused, not decoded).

    Returns one line per video that could not be decoded.
    """
    by_uid = {r.uid: r for r in records if r.content_sha256}
    todo: set[str] = set()
    for uid, record in by_uid.items():
        cached = {v: store.cached(f"shard|{record.content_sha256}|{v}") for v in record.shard_videos}
        if cached and all(cached.values()):
            record.previews = cached
        else:
            todo.add(uid)
    problems = []
    jobs = ((uid, videos, store.size) for uid, videos in _shard_rows_with_videos(shard_dir, todo))
    for done, (uid, sheets, errors) in enumerate(_run(_sheets_from_video_bytes, jobs, workers), start=1):
        record = by_uid[uid]
        record.previews = {v: store.put(f"shard|{record.content_sha256}|{v}", *sheet) for v, sheet in sheets.items()}
        problems += [f"shard row {uid}: {v} video: {error}" for v, error in errors.items()]
        _progress(done, len(todo), "shard previews")
    return problems


def _render_files(root: Path) -> list[Path]:
    files = [root / "transforms.json"] + [root / "asset.json"] * (root / "asset.json").exists()
    return files + sorted(p for v in VIDEO_NAMES if (root / v).is_dir() for p in (root / v).glob("*.png"))


def read_render_dirs(dirs: list[Path], store: MediaStore, config: dict | None, workers: int, decide_them: bool = True) -> list[ClipRecord]:
    """Records (decided with ``curation.decision.decide`` when ``decide_them``) with previews of render directories.

    Previews cached from an earlier report (same files, sizes and modification times) are reused.
    """
    keys, cached = {}, {}
    for d in dirs:
        keys[d] = file_key(*_render_files(d)) if (d / "transforms.json").is_file() else str(d)
        names = [v for v in VIDEO_NAMES if (d / v).is_dir()]
        found = {v: store.cached(f"render|{keys[d]}|{v}") for v in names}
        cached[d] = found if names and all(found.values()) else None
    jobs = [(str(d), config, store.size, decide_them, cached[d] is None) for d in dirs]
    records = []
    for done, (d, (_root, decision, asset, sheets)) in enumerate(zip(dirs, _run(_decide_render_dir, jobs, workers)), start=1):
        window = asset.animation.window or {}
        record = ClipRecord(
            uid=d.name, decision=decision.get("decision", "keep"), reason=decision.get("reason"), detail=decision.get("detail", ""),
            measures=decision.get("measures", {}), caption=asset.caption, timings=asset.timings or {}, render_dir=d,
            asset_uid=asset.asset_uid or d.name, action=asset.animation.action,
            window=(window["start_s"], window["end_s"]) if "start_s" in window else None,
            name=source_name(asset), sha256=asset.source.sha256,
        )
        record.previews = cached[d] or {v: store.put(f"render|{keys[d]}|{v}", *sheet) for v, sheet in sheets.items()}
        records.append(record)
        _progress(done, len(jobs), "render directories")
    return records


def add_render_dir_previews(records: list[ClipRecord], store: MediaStore, workers: int) -> None:
    """Previews for records without any whose ``render_dir`` exists (e.g. rejects rendered at preview size)."""
    pending = [r for r in records if not r.previews and r.render_dir is not None and (r.render_dir / "transforms.json").exists()]
    if not pending:
        return
    by_dir = {str(r.render_dir): r for r in pending}
    for fresh in read_render_dirs([r.render_dir for r in pending], store, None, workers, decide_them=False):
        target = by_dir[str(fresh.render_dir)]
        target.previews = fresh.previews
        target.timings = target.timings or fresh.timings
        target.caption = target.caption or fresh.caption
        target.name = target.name or fresh.name
        target.sha256 = target.sha256 or fresh.sha256


def find_render_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a render directory, else its subdirectories (any depth) that are."""
    if (path / "transforms.json").is_file():
        return [path]
    found = []
    for root, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if "transforms.json" in filenames:
            found.append(Path(root))
            dirnames[:] = []
    return found


def mean_timings(records: list[ClipRecord]) -> dict[str, float]:
    """Mean seconds per stage over the records that report it."""
    sums: dict[str, list[float]] = {}
    for record in records:
        for stage, seconds in record.timings.items():
            if isinstance(seconds, (int, float)) and np.isfinite(seconds):
                sums.setdefault(stage, []).append(float(seconds))
    return {stage: float(np.mean(values)) for stage, values in sums.items()}
