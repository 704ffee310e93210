"""Shards written to object storage (a URI: ``s3://bucket/prefix``, d4d.storage).

    report = write_shards(render_dirs, "s3://bucket/run/shards", staging=Path("work/shards-staging"))

An object store has no rename and no lock, but an object appears whole when its upload
completes. So the shards are built in a local staging folder with the local writer (its
lock: one writer per staging folder), then each complete shard is uploaded as one object
under the next free ``part-NNNNN.parquet`` of the URI and removed from staging; the dataset
card follows. A reader of the URI sees whole shards only. uids already under the URI are
skipped (read from its shards' uid columns), so a batch written again after an interruption
adds no duplicate rows; a shard built but not uploaded before a crash is dropped from staging
at the next call, and its rows are written again. Several writers of one URI at a time each
need a staging folder and shard names of their own (shards.files.ShardNames): writers of the
same names would race for a part name (each checks the name is free just before its upload).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pyarrow.fs import FileType

from d4d import storage
from d4d.shards.card import publish_card
from d4d.shards.files import ShardNames, list_shards, shard_name, writer_lock
from d4d.shards.writer import ShardWriteConfig, WriteReport, encode_shards, existing_uids

log = logging.getLogger(__name__)


def write_shards_to_uri(render_dirs: list[str | Path], uri: str, config: ShardWriteConfig, captions: dict[str, str] | None,
                        staging: str | Path | None, names: ShardNames = ShardNames()) -> WriteReport:
    """``write_shards`` for a URI (see the module doc); ``report.shards`` holds the new objects' URIs."""
    if staging is None:
        with tempfile.TemporaryDirectory(prefix="d4d-shards-") as temporary:
            return write_shards_to_uri(render_dirs, uri, config, captions, temporary, names)
    staging = Path(staging)
    with writer_lock(staging):
        for stale in list_shards(staging):  # built, never uploaded: their rows are not under the URI
            stale.unlink()
        done = existing_uids(uri) if storage.file_type(uri) == FileType.Directory else set()  # a missing bucket is a ValueError
        report = encode_shards(render_dirs, staging, done, config, captions)
        uploaded = []
        for built in report.shards:
            uploaded.append(upload_shard(built, uri, names))
            built.unlink()
        report.shards = uploaded
        if uploaded:
            publish_card(uri, staging)
    return report


def upload_shard(built: Path, uri: str, names: ShardNames = ShardNames()) -> str:
    """Upload the complete shard ``built`` as this writer's next free part name under ``uri``; its URI."""
    index = names.next_index(storage.list_names(uri) if storage.file_type(uri) == FileType.Directory else [])
    while storage.file_type(target := storage.join(uri, shard_name(index))) != FileType.NotFound:
        index = names.after(index)
    storage.upload(built, target)
    log.info("uploaded %s (%.2f MB)", target, built.stat().st_size / 1e6)
    return target
