"""Resolve d4d-reconstruct's INPUT into a render sample (rendering.contract.RenderSample).

Accepted forms:

- a render directory (d4d-render output) or a d4d-sample output directory: both follow the
  render contract (docs/conventions.md) and are read with ``rendering.contract.load_render``;
- a shard row, ``SHARD.parquet#N`` (row N, 0-based, of that shard file) or
  ``SHARD.parquet#UID`` (the row whose ``uid`` column is UID). Only the row group holding
  the row is read, and ``shards.from_render.sample_from_row`` turns it back into a render sample.
"""

from __future__ import annotations

from pathlib import Path

from d4d.rendering.contract import RenderSample, load_render
from d4d.shards.from_render import sample_from_row


def parse_shard_spec(spec: str) -> tuple[Path, int | str] | None:
    """(shard path, row index or uid) for ``FILE.parquet#KEY``; None for any other string."""
    path, sep, key = spec.rpartition("#")
    if not sep or not path.endswith(".parquet") or not key:
        return None
    return Path(path), int(key) if key.isdigit() else key


def load_shard_row(path: Path, key: int | str, videos: tuple[str, ...]) -> RenderSample:
    """One shard row as a RenderSample (uint8 RGBA frames, cameras, times), after checking the
    shard's schema and the row's values (shards.checks) and decoding its videos within the
    budget those values set; ValueError naming the row otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from d4d.shards.checks import CHECKED_COLUMNS, check_table
    from d4d.shards.schema import schema_problems

    if not path.is_file():
        raise ValueError(f"{path}: shard file not found")
    try:
        shard = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: cannot open as Parquet ({exc})") from None
    problems = schema_problems(shard.schema_arrow)
    if problems:
        raise ValueError(f"{path}: not a valid shard: {problems[0]}")
    if isinstance(key, int):
        if key >= shard.metadata.num_rows:
            raise ValueError(f"{path}#{key}: the shard has {shard.metadata.num_rows} rows")
        index = key
    else:
        uids = shard.read(columns=["uid"]).column("uid").to_pylist()
        if key not in uids:
            raise ValueError(f"{path}#{key}: no row with that uid")
        index = uids.index(key)
    group, offset = 0, index
    while offset >= shard.metadata.row_group(group).num_rows:
        offset -= shard.metadata.row_group(group).num_rows
        group += 1
    names = shard.schema_arrow.names
    columns = [c for c in dict.fromkeys([*CHECKED_COLUMNS, "asset_json"]) if c in names]
    columns += [f"{v}_video" for v in videos if f"{v}_video" in names]
    try:
        table = shard.read_row_group(group, columns=columns).slice(offset, 1)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}#{key}: row group {group} unreadable ({exc})") from None
    check_table(table, f"{path}#{key}", index)
    row = {f"{v}_{suffix}": None for v in videos for suffix in ("video", "c2w", "times", "azimuth_deg")} | table.to_pylist()[0]
    return sample_from_row(row, videos, Path(f"{path}#{key}"))


def load_input(spec: str, videos: tuple[str, ...] = ("dynamic", "static")) -> RenderSample:
    """A render directory, a d4d-sample output directory, or ``SHARD.parquet#ROW`` as a RenderSample."""
    shard = parse_shard_spec(spec)
    if shard is not None:
        return load_shard_row(shard[0], shard[1], videos)
    if Path(spec).is_dir():
        return load_render(spec, videos=videos)
    raise ValueError(f"{spec}: not a render directory nor SHARD.parquet#ROW")
