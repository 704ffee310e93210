"""One render directory (docs/conventions.md) as one shard row (docs/shards.md), and back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.contract import VIDEO_NAMES, AssetInfo, RenderContractError, RenderSample, VideoFrames, load_render
from d4d.shards.schema import CONTENT_COLUMNS, HASH_COLUMN, content_hash, shard_schema
from d4d.shards.video import CODECS, DEFAULT_CRF, VideoDecodeError, decode_rgba, encode_rgba


def render_uid(render_dir: Path, asset: AssetInfo) -> str:
    """A render's uid: asset.json ``uid`` (the clip id d4d-curate sets) if set, else
    ``source.sha256``, else the directory name."""
    return str(asset.uid or asset.source.sha256 or Path(render_dir).resolve().name)


def find_caption(render_dir: Path, asset: AssetInfo, uid: str, captions: dict[str, str] | None) -> str | None:
    """The caption file's entry for the render (tried by uid, asset uid, source sha256, directory
    name and source file stem, which for Objaverse 1.0 is the 32-character uid), else asset.json ``caption``."""
    source = asset.source
    keys = [uid, asset.asset_uid, source.sha256, Path(render_dir).resolve().name, Path(source.path).stem if source.path else None]
    for key in keys:
        if captions and key and key in captions:
            return captions[key]
    return asset.caption


def row_from_render(
    render_dir: str | Path, codec: str = "lossy", crf: int = DEFAULT_CRF, captions: dict[str, str] | None = None
) -> dict:
    """Load a render directory and encode it as a shard row (a dict over the schema's columns).

    Motion magnitude comes from asset.json; when asset.json has none and both orbits exist it is
    computed here (d4d.measures, same definition version). Raises RenderContractError
    (naming the file) for a directory that breaks the render contract.
    """
    render_dir = Path(render_dir)
    sample = load_render(render_dir)
    asset = sample.asset
    uid = render_uid(render_dir, asset)
    lengths = {name: len(video) for name, video in sample.videos.items()}
    if len(set(lengths.values())) != 1:
        raise RenderContractError(f"{render_dir}: videos have different frame counts {lengths}")
    animation = asset.animation
    frame_range = animation.frame_range or [None, None]
    window = animation.window or {}
    per_frame = asset.motion_magnitude_per_frame
    version = asset.motion_magnitude_version
    if per_frame is None and "dynamic" in sample.videos and "static" in sample.videos:
        per_frame = motion_magnitude_per_frame(sample.videos["dynamic"].rgba, sample.videos["static"].rgba).tolist()
        version = MOTION_MAGNITUDE_VERSION
    magnitude = asset.motion_magnitude
    if magnitude is None and per_frame is not None:
        magnitude = float(np.mean(per_frame))
    row = {
        "uid": uid,
        "source": asset.source.url or asset.source.path,
        "source_sha256": asset.source.sha256,
        "license": asset.license,
        "caption": find_caption(render_dir, asset, uid, captions),
        "width": sample.width,
        "height": sample.height,
        "num_frames": next(iter(lengths.values())),
        "camera_angle_x": sample.camera_angle_x,
        "frame_start": frame_range[0],
        "frame_end": frame_range[1],
        "fps": animation.fps,
        "motion_magnitude": magnitude,
        "motion_magnitude_version": version,
        "video_codec": CODECS[codec].name,
        "asset_uid": asset.asset_uid,
        "action": animation.action,
        "window_start_s": window.get("start_s"),
        "window_end_s": window.get("end_s"),
        "warnings": asset.warnings,
        "K": sample.K.reshape(-1).tolist(),
        "motion_magnitude_per_frame": per_frame,
        "asset_json": json.dumps(asset.to_dict(), sort_keys=True),
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


def sample_from_row(row: dict, videos: tuple[str, ...], root: Path) -> RenderSample:
    """A shard row (its scalar and video columns, as pyarrow's ``to_pylist`` gives them) as a
    RenderSample with decoded uint8 RGBA frames; ValueError naming the row when a video does not
    decode to its recorded size, frame count and codec (the decoder stops there). The row's
    values should have passed shards.checks (d4d-reconstruct checks them). Per-frame elevation and distance come from the cameras."""
    where = f"{root} (uid {row['uid']})"
    sample = RenderSample(root=root, width=row["width"], height=row["height"], camera_angle_x=row["camera_angle_x"],
                          asset=AssetInfo.parse(json.loads(row["asset_json"]), f"{where} asset_json") if row.get("asset_json") else AssetInfo())
    for video in videos:
        if row.get(f"{video}_video") is None:
            continue
        times = np.asarray(row[f"{video}_times"], dtype=np.float64)
        try:  # within the budget the row declares: its frame count, size and codec
            rgba = decode_rgba(row[f"{video}_video"], frames=len(times), size=(sample.height, sample.width), codec=row.get("video_codec"))
        except VideoDecodeError as exc:
            raise ValueError(f"{where}: {video} video: {exc}") from None
        c2w = np.asarray(row[f"{video}_c2w"], dtype=np.float64).reshape(-1, 4, 4)
        centres = c2w[:, :3, 3]
        distances = np.linalg.norm(centres, axis=1)
        sample.videos[video] = VideoFrames(
            name=video, rgba=rgba, c2w=c2w, times=times,
            azimuths_deg=np.asarray(row[f"{video}_azimuth_deg"] or [np.nan] * len(times), dtype=np.float64),
            elevations_deg=np.degrees(np.arcsin(np.clip(centres[:, 2] / np.maximum(distances, 1e-12), -1.0, 1.0))),
            distances=distances, files=[f"{video}#{i}" for i in range(len(times))],
        )
    if not sample.videos:
        raise ValueError(f"{where}: none of the videos {videos} is present")
    return sample
