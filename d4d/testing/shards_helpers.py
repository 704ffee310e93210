"""Test helper for the shards tests: synthetic render directories following the render contract
(docs/conventions.md) - numpy-drawn RGBA PNGs + transforms.json + asset.json.

The object is a shaded, striped ball with an anti-aliased edge (so alpha has intermediate
values, as in a real render). It slides and spins with time in the dynamic orbit and front
video and is frozen at time 0 in the static orbit; the camera's orbit turns the stripe pattern.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.contract import AnimationInfo, AssetInfo, SourceInfo, write_render
from d4d.rendering.orbits import OrbitLayout, layout_sample


def ball_frame(size: int, time: float, azimuth_deg: float, hue: float) -> np.ndarray:
    """uint8 [size, size, 4], straight alpha; ``time`` in [0, 1] moves the ball, ``hue`` in [0, 1] tints it."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    cx, cy, radius = 0.35 + 0.3 * time, 0.5 + 0.1 * math.sin(2 * math.pi * time), 0.22
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    alpha = np.clip((radius - dist) * size + 0.5, 0.0, 1.0)  # one-pixel anti-aliased edge
    z = np.sqrt(np.clip(1.0 - (dist / radius) ** 2, 0.0, 1.0))
    phase = math.radians(azimuth_deg) + 2.0 * time
    stripes = 0.5 + 0.5 * np.sin(((xx - cx) * math.cos(phase) + (yy - cy) * math.sin(phase)) * 2 * math.pi * 5)
    shade = 0.35 + 0.65 * z
    rgb = np.stack([0.9 - 0.5 * hue + 0.1 * stripes, 0.3 + 0.5 * stripes, np.full_like(stripes, 0.2 + 0.6 * hue)], axis=-1) * shade[..., None]
    rgba = np.concatenate([rgb * (alpha > 0)[..., None], alpha[..., None]], axis=-1)
    return np.round(np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8)


def make_shard_render(
    root: Path,
    name: str,
    *,
    frames: int = 8,
    size: int = 32,
    videos: tuple[str, ...] = ("dynamic", "static", "front"),
    caption: str | None = None,
    with_motion: bool = True,
    source_sha256: str | None = "derive",
    layout: OrbitLayout | None = None,
) -> Path:
    """Write a render directory ``root/name`` and return it.

    Args:
        frames, size: T frames of size x size pixels per video.
        caption: asset.json ``caption`` (None: no key).
        with_motion: write motion magnitude into asset.json (False leaves it to the shard writer).
        source_sha256: asset.json ``source.sha256``; "derive" hashes ``name``, None omits it.
        layout: the cameras (default d4d's default orbit of ``frames`` views).
    """
    out = Path(root) / name
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) / 0xFFFF
    times = np.linspace(0.0, 1.0, frames)
    source = SourceInfo(path=f"/assets/{name}.glb", format="glb", size_bytes=1234)
    if source_sha256 == "derive":
        source.sha256 = hashlib.sha256(f"asset:{name}".encode()).hexdigest()
    elif source_sha256 is not None:
        source.sha256 = source_sha256
    asset = AssetInfo(source=source, caption=caption,
                      animation=AnimationInfo(has_animation=True, reason="test", frame_range=[1.0, 1.0 + 2 * frames], fps=24.0))
    empty = {v: np.zeros((frames, 0, 0, 4), np.uint8) for v in videos}
    sample = layout_sample(out, layout or OrbitLayout(frames=frames), size, empty, times, asset)
    for video in sample.videos.values():
        video.rgba = np.stack([ball_frame(size, t, a, hue) for a, t in zip(video.azimuths_deg, video.times)])
    if with_motion and "dynamic" in sample.videos and "static" in sample.videos:
        per_frame = motion_magnitude_per_frame(sample.videos["dynamic"].rgba, sample.videos["static"].rgba)
        asset.motion_magnitude, asset.motion_magnitude_per_frame = float(per_frame.mean()), per_frame.tolist()
        asset.motion_magnitude_version = MOTION_MAGNITUDE_VERSION
    write_render(out, sample)
    return out


def premultiplied_psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of RGB composited over black, 0..255 scale; inputs uint8 [..., 4]."""
    premultiply = lambda x: x[..., :3].astype(np.float64) * x[..., 3:4] / 255.0  # noqa: E731
    mse = float(((premultiply(decoded) - premultiply(reference)) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


#: The lossy codec's documented tolerance (docs/shards.md), at 64 px and above.
LOSSY_MIN_PSNR_DB = 35.0
LOSSY_MAX_ALPHA_MEAN_ERROR = 1.0  # in 0..255 units
LOSSY_MAX_ALPHA_ERROR = 64  # in 0..255 units, reached only on anti-aliased edges


def downgrade_to_v1(shard: Path, out: Path) -> Path:
    """Write ``shard`` (schema 2) as d4d 0.1 wrote shards (schema 1: no clip columns, no second
    orbit, its own content hashes), to ``out``: a fixture for readers of old shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from d4d.shards.schema import HASH_COLUMN, content_columns, content_hash, shard_schema

    schema = shard_schema(version=1)
    rows = pq.read_table(shard).select(list(content_columns(1))).to_pylist()
    for row in rows:
        row[HASH_COLUMN] = content_hash(row, version=1)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    return out
