"""Test helper for the shards tests: synthetic render directories following the render contract
(docs/conventions.md) - numpy-drawn RGBA PNGs + transforms.json + asset.json.

The object is a shaded, striped ball with an anti-aliased edge (so alpha has intermediate
values, as in a real render). It slides and spins with time in the dynamic orbit and front
video and is frozen at time 0 in the static orbit; the camera's orbit turns the stripe pattern.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.cameras import DEFAULT_FOV_DEG, orbit_azimuths, orbit_c2w


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
) -> Path:
    """Write a render directory ``root/name`` and return it.

    Args:
        frames, size: T frames of size x size pixels per video.
        caption: asset.json ``caption`` (None: no key).
        with_motion: write motion magnitude into asset.json (False leaves it to the shard writer).
        source_sha256: asset.json ``source.sha256``; "derive" hashes ``name``, None omits it.
    """
    out = Path(root) / name
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) / 0xFFFF
    azimuths = orbit_azimuths(frames)
    times = np.linspace(0.0, 1.0, frames)
    layout = {
        "dynamic": (azimuths, times),
        "static": (azimuths, np.zeros(frames)),
        "front": (np.zeros(frames), times),
    }
    angle_x = math.radians(DEFAULT_FOV_DEG)
    focal = 0.5 * size / math.tan(0.5 * angle_x)
    records, pixels = [], {}
    for video in videos:
        az, ts = layout[video]
        (out / video).mkdir(parents=True, exist_ok=True)
        pixels[video] = np.stack([ball_frame(size, t, a, hue) for a, t in zip(az, ts)])
        for i, (c2w, a, t) in enumerate(zip(orbit_c2w(az, 0.0, 2.0), az, ts)):
            Image.fromarray(pixels[video][i], "RGBA").save(out / video / f"{i:03d}.png")
            records.append(
                {"file_path": f"{video}/{i:03d}.png", "video": video, "index": i, "time": float(t), "azimuth_deg": float(a),
                 "elevation_deg": 0.0, "distance": 2.0, "transform_matrix": c2w.tolist()}
            )
    transforms = {"convention": "nerf-synthetic", "camera_angle_x": angle_x, "w": size, "h": size, "fl_x": focal, "fl_y": focal,
                  "cx": size / 2, "cy": size / 2, "frames": records}
    (out / "transforms.json").write_text(json.dumps(transforms))
    source = {"path": f"/assets/{name}.glb", "format": "glb", "size_bytes": 1234}
    if source_sha256 == "derive":
        source["sha256"] = hashlib.sha256(f"asset:{name}".encode()).hexdigest()
    elif source_sha256 is not None:
        source["sha256"] = source_sha256
    asset = {
        "schema_version": 1,
        "source": source,
        "animation": {"has_animation": True, "reason": "test", "frame_range": [1.0, 1.0 + 2 * frames], "fps": 24.0},
    }
    if caption is not None:
        asset["caption"] = caption
    if with_motion and "dynamic" in pixels and "static" in pixels:
        per_frame = motion_magnitude_per_frame(pixels["dynamic"], pixels["static"])
        asset.update(motion_magnitude=float(per_frame.mean()), motion_magnitude_per_frame=per_frame.tolist(),
                     motion_magnitude_version=MOTION_MAGNITUDE_VERSION)
    (out / "asset.json").write_text(json.dumps(asset))
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
