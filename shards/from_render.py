"""Turn one render directory (docs/conventions.md) into one shard row (docs/shards.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.contract import RenderContractError, load_render
from d4d.shards.schema import CONTENT_COLUMNS, HASH_COLUMN, VIDEO_NAMES, content_hash, shard_schema
from d4d.shards.video import CODECS, DEFAULT_CRF, encode_rgba


def read_asset_json(render_dir: Path) -> dict:
    path = Path(render_dir) / "asset.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RenderContractError(f"{path}: not valid JSON ({exc})") from None


def render_uid(render_dir: Path, asset: dict) -> str:
    """A render's uid: asset.json ``uid`` if set, else ``source.sha256``, else the directory name."""
    return str(asset.get("uid") or (asset.get("source") or {}).get("sha256") or Path(render_dir).resolve().name)


def find_caption(render_dir: Path, asset: dict, uid: str, captions: dict[str, str] | None) -> str | None:
    """The caption file's entry for the render (tried by uid, source sha256, directory name and
    source file stem, which for Objaverse 1.0 is the 32-character uid), else asset.json ``caption``."""
    source = asset.get("source") or {}
    keys = [uid, source.get("sha256"), Path(render_dir).resolve().name, Path(source["path"]).stem if source.get("path") else None]
    for key in keys:
        if captions and key and key in captions:
            return captions[key]
    return asset.get("caption")


def row_from_render(
    render_dir: str | Path, codec: str = "lossy", crf: int = DEFAULT_CRF, captions: dict[str, str] | None = None
) -> dict:
    """Load a render directory and encode it as a shard row (a dict over the schema's columns).

    Motion magnitude comes from asset.json; when asset.json has none and both orbits exist it is
    computed here (curation.measures, same definition version). Raises RenderContractError
    (naming the file) for a directory that breaks the render contract.
    """
    render_dir = Path(render_dir)
    sample = load_render(render_dir)
    asset = read_asset_json(render_dir)
    uid = render_uid(render_dir, asset)
    lengths = {name: len(video.times) for name, video in sample.videos.items()}
    if len(set(lengths.values())) != 1:
        raise RenderContractError(f"{render_dir}: videos have different frame counts {lengths}")
    source = asset.get("source") or {}
    animation = asset.get("animation") or {}
    frame_range = animation.get("frame_range") or [None, None]
    per_frame = asset.get("motion_magnitude_per_frame")
    version = asset.get("motion_magnitude_version")
    if per_frame is None and "dynamic" in sample.videos and "static" in sample.videos:
        per_frame = motion_magnitude_per_frame(sample.videos["dynamic"].rgba, sample.videos["static"].rgba).tolist()
        version = MOTION_MAGNITUDE_VERSION
    magnitude = asset.get("motion_magnitude")
    if magnitude is None and per_frame is not None:
        magnitude = float(np.mean(per_frame))
    row = {
        "uid": uid,
        "source": source.get("url") or source.get("path"),
        "source_sha256": source.get("sha256"),
        "license": asset.get("license") or source.get("license"),
        "caption": find_caption(render_dir, asset, uid, captions),
        "width": sample.width,
        "height": sample.height,
        "num_frames": next(iter(lengths.values())),
        "camera_angle_x": sample.camera_angle_x,
        "frame_start": frame_range[0],
        "frame_end": frame_range[1],
        "fps": animation.get("fps"),
        "motion_magnitude": magnitude,
        "motion_magnitude_version": version,
        "video_codec": CODECS[codec].name,
        "K": sample.K.reshape(-1).tolist(),
        "motion_magnitude_per_frame": per_frame,
        "asset_json": json.dumps(asset, sort_keys=True) if asset else None,
    }
    for name in VIDEO_NAMES:
        video = sample.videos.get(name)
        row[f"{name}_video"] = encode_rgba(video.rgba, codec, crf) if video else None
        row[f"{name}_c2w"] = video.c2w.reshape(-1).tolist() if video else None
        row[f"{name}_times"] = video.times.tolist() if video else None
        row[f"{name}_azimuth_deg"] = video.azimuths_deg.tolist() if video else None
    # Hash what a Parquet reader will see: the row after conversion to the Arrow types.
    content_schema = pa.schema([shard_schema().field(name) for name in CONTENT_COLUMNS])
    as_read = pa.Table.from_pylist([row], schema=content_schema).to_pylist()[0]
    row[HASH_COLUMN] = content_hash(as_read)
    return row
