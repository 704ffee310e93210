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
    """One shard row as a RenderSample (uint8 RGBA frames, cameras, times); ValueError naming the row otherwise."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ValueError(f"{path}: shard file not found")
    shard = pq.ParquetFile(path)
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
    columns = ["uid", "width", "height", "camera_angle_x", "asset_json"]
    columns += [f"{v}_{suffix}" for v in videos for suffix in ("video", "c2w", "times", "azimuth_deg")]
    row = shard.read_row_group(group, columns=columns).slice(offset, 1).to_pylist()[0]
    return sample_from_row(row, videos, Path(f"{path}#{key}"))


def load_input(spec: str, videos: tuple[str, ...] = ("dynamic", "static")) -> RenderSample:
    """A render directory, a d4d-sample output directory, or ``SHARD.parquet#ROW`` as a RenderSample."""
    shard = parse_shard_spec(spec)
    if shard is not None:
        return load_shard_row(shard[0], shard[1], videos)
    if Path(spec).is_dir():
        return load_render(spec, videos=videos)
    raise ValueError(f"{spec}: not a render directory nor SHARD.parquet#ROW")
