"""Check every shard of a directory: it opens, its schema, every row's hash, values (shards.checks),
videos (decoded within the budget the row's values set) and tensor columns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from d4d.rendering.contract import VIDEO_NAMES
from d4d.shards.checks import geometry_ok, table_problems
from d4d.shards.files import list_shards
from d4d.shards.schema import HASH_COLUMN, VIDEO_NAMES_V1, content_columns, content_hash, schema_problems, schema_version, tensors_in
from d4d.shards.tensors import tensor_from_columns
from d4d.shards.video import VideoDecodeError, decode_rgba
from d4d.untrusted import printable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the file, and the row (index in the file) and uid when it is row-level."""

    path: Path
    message: str
    row: int | None = None
    uid: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}" if self.row is None else f"{self.path}: row {self.row} (uid {printable(str(self.uid), 200)})"
        return f"{where}: {self.message}"


def group_problems(table: pa.Table, tensors: dict[str, str], version: int) -> list[list[str]]:
    """What is wrong with each row of a row group read back from a shard of schema ``version``
    (a list per row, empty when nothing is): its hash, its values (``checks.table_problems``),
    its videos decoded within the budget its values set, and its tensor columns."""
    values: list[list[str]] = [[] for _ in range(table.num_rows)]
    for index, reason in table_problems(table):
        values[index].append(reason)
    decodable = geometry_ok(table)
    found = []
    for index, row in enumerate(table.to_pylist()):
        problems = []
        if content_hash({k: row[k] for k in content_columns(version)}, version) != row[HASH_COLUMN]:
            problems.append(f"{HASH_COLUMN} does not match the row's content")
        problems += values[index]
        present = [v for v in (VIDEO_NAMES_V1 if version == 1 else VIDEO_NAMES) if row[f"{v}_video"] is not None]
        if not present:
            problems.append("no video")
        for video in present if decodable[index] else ():
            try:
                decode_rgba(row[f"{video}_video"], frames=row["num_frames"], size=(row["height"], row["width"]), codec=row["video_codec"])
            except VideoDecodeError as exc:
                problems.append(f"{video} video: {exc}")
        for name in tensors:
            if row[name] is not None:
                try:
                    tensor_from_columns(row[name], row[f"{name}_shape"], row[f"{name}_dtype"])
                except (ValueError, TypeError) as exc:
                    problems.append(f"{name}: {exc}")
        found.append(problems)
    return found


def verify_shards(shard_dir: str | Path, progress: Callable[[Path, int], None] | None = None) -> tuple[int, list[Problem]]:
    """Verify every shard of ``shard_dir``; returns (rows checked, problems). Also reports a uid
    present in two rows. ``progress(path, rows)`` is called after each shard."""
    problems: list[Problem] = []
    first_seen: dict[str, tuple[Path, int]] = {}
    checked = 0
    paths = list_shards(shard_dir)
    if not paths:
        return 0, [Problem(Path(shard_dir), "no shards (part-*.parquet)")]
    for path in paths:
        try:
            parquet = pq.ParquetFile(path, page_checksum_verification=True)
        except Exception as exc:  # pyarrow raises several types for a damaged footer
            problems.append(Problem(path, f"cannot open as Parquet ({type(exc).__name__}: {exc})"))
            continue
        schema_issues = schema_problems(parquet.schema_arrow)
        problems += [Problem(path, issue) for issue in schema_issues]
        if schema_issues:
            continue
        tensors = tensors_in(parquet.schema_arrow)
        version = schema_version(parquet.schema_arrow)
        index = 0
        for group in range(parquet.num_row_groups):
            try:
                table = parquet.read_row_group(group)
            except Exception as exc:  # damaged pages surface as OSError or ArrowInvalid
                count = parquet.metadata.row_group(group).num_rows
                problems.append(Problem(path, f"row group {group} (rows {index}-{index + count - 1}) unreadable ({type(exc).__name__}: {exc})"))
                index += count
                continue
            for uid, issues in zip(table.column("uid").to_pylist(), group_problems(table, tensors, version)):
                problems += [Problem(path, issue, index, uid) for issue in issues]
                if uid in first_seen:
                    other, other_index = first_seen[uid]
                    problems.append(Problem(path, f"duplicate uid, also {other} row {other_index}", index, uid))
                first_seen.setdefault(uid, (path, index))
                index += 1
                checked += 1
        if progress:
            progress(path, index)
    return checked, problems
