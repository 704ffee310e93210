"""Write render directories into size-bounded Parquet shards, atomically and resumably.

    report = write_shards(["renders/a", "renders/b"], "shards/", ShardWriteConfig(codec="lossy", max_shard_mb=512))

Rows are written in row groups of ``rows_per_group`` rows (rows are MBs, so a few rows per
group keep readers' memory small). A shard is closed before the row group that would take it
over ``max_shard_mb`` (a shard exceeds the bound only when a single row group does). A rerun
skips render directories whose uid is already in a shard of the output directory, and a
crashed run leaves no visible partial shard: rerunning it writes what is missing. Each call
that publishes a shard rewrites the directory's dataset card, README.md (shards.card).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from d4d import storage
from d4d.rendering.contract import RenderContractError, read_asset
from d4d.shards.card import CARD_NAME, write_card
from d4d.shards.files import FOOTER_BYTES_PER_GROUP_COLUMN, AtomicParquetFile, ShardNames, list_shards, next_shard_index, shard_name, writer_lock
from d4d.shards.from_render import render_uid, row_from_render
from d4d.shards.schema import shard_schema
from d4d.shards.video import CODECS, DEFAULT_CRF

log = logging.getLogger(__name__)


@dataclass
class WriteReport:
    """What write_shards did. ``failed`` maps a render directory to the reason it was not written."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    shards: list[Path] = field(default_factory=list)


def existing_uids(shard_dir: Path) -> set[str]:
    """uids already in the complete shards of ``shard_dir`` (reads only the uid column)."""
    return {uid for path in list_shards(shard_dir) for uid in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()}


class ShardSink:
    """Accumulates rows into row groups and row groups into size-bounded, atomically published shards."""

    def __init__(self, shard_dir: Path, max_shard_bytes: int, rows_per_group: int, names: ShardNames = ShardNames()):
        if rows_per_group < 1:
            raise ValueError(f"rows_per_group must be >= 1, got {rows_per_group}")
        if max_shard_bytes < 1:
            raise ValueError(f"max shard size must be positive, got {max_shard_bytes} bytes")
        self.shard_dir = shard_dir
        self.max_shard_bytes = max_shard_bytes
        self.rows_per_group = rows_per_group
        self.names = names
        self.schema = shard_schema()
        self.pending: list[dict] = []
        self.current: AtomicParquetFile | None = None
        self.published: list[Path] = []

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.rows_per_group:
            self._flush_group()

    def _flush_group(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_pylist(self.pending, schema=self.schema)
        self.pending = []
        if self.current is not None and self.current.size() + table.nbytes + FOOTER_BYTES_PER_GROUP_COLUMN * len(self.schema) > self.max_shard_bytes:
            self._publish()
        if self.current is None:
            self.current = AtomicParquetFile(self.shard_dir / shard_name(next_shard_index(self.shard_dir, self.names)), self.schema)
        self.current.write(table)

    def _publish(self) -> None:
        path = self.current.publish()
        log.info("published %s (%d rows, %.2f MB)", path, self.current.rows, path.stat().st_size / 1e6)
        self.published.append(path)
        self.current = None

    def close(self) -> None:
        """Write the rows still buffered and publish the open shard."""
        self._flush_group()
        if self.current is not None:
            self._publish()

    def discard(self) -> None:
        """Drop the open shard and buffered rows (their render directories are redone on a rerun)."""
        if self.current is not None:
            self.current.discard()
            self.current = None
        self.pending = []


class Progress:
    """The time left of ``total`` items, estimated from the pace so far."""

    def __init__(self, total: int):
        self.total, self.started = total, time.monotonic()

    def left(self, done: int) -> str:
        """", about N s left" after ``done`` items (empty before the first)."""
        if done == 0:
            return ""
        return f", about {(time.monotonic() - self.started) / done * (self.total - done):.0f} s left"


@dataclass(frozen=True)
class ShardWriteConfig:
    """How render directories are encoded into shards (d4d-shards write's options)."""

    codec: Literal["lossy", "lossless"] = "lossy"
    """"lossy": VP9 with alpha (yuva420p WebM); "lossless": FFV1 (bgra Matroska). docs/shards.md."""
    crf: int = DEFAULT_CRF
    """VP9 constant quality of the lossy codec, 0..63, lower is better."""
    max_shard_mb: float = 512.0
    """A shard is closed before it grows past this many MB."""
    rows_per_group: int = 4
    """Rows per Parquet row group (the unit a reader fetches)."""

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not 0 <= self.crf <= 63:
            raise ValueError(f"crf must be in 0..63, got {self.crf}")
        if self.max_shard_mb <= 0 or self.rows_per_group < 1:
            raise ValueError(f"max_shard_mb must be > 0 and rows_per_group >= 1, got {self.max_shard_mb} and {self.rows_per_group}")


def write_shards(
    render_dirs: list[str | Path],
    out_dir: str | Path,
    config: ShardWriteConfig = ShardWriteConfig(),
    captions: dict[str, str] | None = None,
    staging: str | Path | None = None,
    names: ShardNames = ShardNames(),
) -> WriteReport:
    """Encode render directories into the shards of ``out_dir``.

    A render directory that breaks the render contract is recorded in ``report.failed`` and the
    others are still written. Two directories with the same uid in one call: the second fails.
    Progress (with the time left) is logged per directory.

    ``out_dir`` may be a URI (``s3://bucket/prefix``, d4d.storage): the shards are built in the
    local folder ``staging`` (a temporary one when None) and each is uploaded whole as one
    object (shards.remote); ``report.shards`` then holds their URIs.

    ``names``: this writer's share of the shard names when several write ``out_dir`` at the same
    time (each with its own ``staging``), see shards.files.ShardNames.
    """
    if storage.is_uri(out_dir):
        from d4d.shards.remote import write_shards_to_uri

        return write_shards_to_uri(render_dirs, out_dir, config, captions, staging, names)
    out_dir = Path(out_dir)
    with writer_lock(out_dir, names):
        report = encode_shards(render_dirs, out_dir, existing_uids(out_dir), config, captions, names)
        if report.shards or (list_shards(out_dir) and not (out_dir / CARD_NAME).exists()):
            write_card(out_dir)
    return report


def encode_shards(render_dirs: list[str | Path], out_dir: Path, done: set[str], config: ShardWriteConfig,
                  captions: dict[str, str] | None, names: ShardNames = ShardNames()) -> WriteReport:
    """The body of ``write_shards`` under the writer lock of ``out_dir``: encode the render
    directories whose uid is not in ``done`` into new shards of ``out_dir``, named by ``names``."""
    report = WriteReport()
    this_run: dict[str, str] = {}
    sink = ShardSink(out_dir, int(config.max_shard_mb * 1e6), config.rows_per_group, names)
    progress = Progress(len(render_dirs))
    try:
        for number, render_dir in enumerate(map(Path, render_dirs), start=1):
            key = str(render_dir)
            where = f"[{number}/{len(render_dirs)}{progress.left(number - 1)}] {render_dir}"
            try:
                uid = render_uid(render_dir, read_asset(render_dir))
                if uid in this_run:
                    raise ValueError(f"duplicate uid {uid}, already written from {this_run[uid]} in this run")
                if uid in done:
                    report.skipped.append(key)
                    log.info("%s: uid %s already in %s, skipped", where, uid, out_dir)
                    continue
                row = row_from_render(render_dir, config.codec, config.crf, captions)
            except (RenderContractError, ValueError, OSError) as exc:
                report.failed[key] = str(exc)
                log.error("%s: failed: %s", where, exc)
                continue
            sink.add(row)
            this_run[uid] = key
            report.written.append(key)
            log.info("%s: uid %s encoded", where, uid)
        sink.close()
    except BaseException:
        sink.discard()
        raise
    report.shards = sink.published
    return report
