"""Test helper: synthetic render directories that follow the render contract
(docs/conventions.md): numpy-drawn RGBA PNGs of a striped disc + transforms.json + asset.json.

The disc stands for the object. In the dynamic orbit and the front video it slides
horizontally with time; the orbit's camera rotation is imitated by turning the stripe
pattern with the azimuth, identically in the dynamic and static orbits, so only the
animation differs between them (as in a real render).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from d4d.rendering.cameras import DEFAULT_FOV_DEG, orbit_azimuths, orbit_c2w


def disc_frame(size: int, centre_x: float, radius: float, phase: float, centre_y: float = 0.5) -> np.ndarray:
    """uint8 [size, size, 4]: a striped, shaded disc on a transparent background.

    Args:
        centre_x, centre_y, radius: in fractions of the image side.
        phase: turns the stripes (radians), imitating a change of view.
    """
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    dx, dy = xx - centre_x, yy - centre_y
    inside = dx**2 + dy**2 <= radius**2
    u = dx * math.cos(phase) + dy * math.sin(phase)
    stripes = (np.sin(u * 2 * math.pi * 6) > 0).astype(np.float64)
    shade = 0.5 + 0.5 * (1 - np.sqrt(dx**2 + dy**2) / max(radius, 1e-6))
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., 0] = np.clip(255 * (0.3 + 0.7 * stripes) * shade, 0, 255)
    rgba[..., 1] = np.clip(255 * (0.8 - 0.6 * stripes) * shade, 0, 255)
    rgba[..., 2] = np.clip(255 * 0.4 * shade, 0, 255)
    rgba[..., 3] = np.where(inside, 255, 0)
    rgba[~inside, :3] = 0
    return rgba


def make_render_dir(
    root: Path,
    *,
    frames: int = 8,
    size: int = 48,
    slide: float = 0.25,
    radius: float = 0.2,
    start_x: float | None = None,
    animated: bool = True,
    frame_range: tuple[float, float] = (1.0, 48.0),
    geometric_max: float | None = None,
    empty: bool = False,
    noise_after_start: bool = False,
    videos: tuple[str, ...] = ("dynamic", "static", "front"),
    error: dict | None = None,
    seed: int = 0,
) -> Path:
    """Write one render directory and return it.

    Args:
        frames: T per video.
        size: image side in pixels.
        slide: how far the disc moves by the last frame, fraction of the image side.
        radius: disc radius, fraction of the image side.
        start_x: disc centre at time 0 (default: 0.5 - slide / 2, so the motion is centred).
        animated: asset.json animation.has_animation (False also freezes the disc).
        frame_range: asset.json animation.frame_range (Blender frames).
        geometric_max: animation.geometric_motion.max_displacement (default: ``slide``).
        empty: every frame fully transparent.
        noise_after_start: the front video's frames after the first show random noise
            instead of the disc (a distorted render).
        error: written as asset.json "error" (a failed render, as rendering.errors.AssetError.to_dict()).
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    slide = slide if animated else 0.0
    x0 = 0.5 - slide / 2 if start_x is None else start_x
    times = np.arange(frames) / (frames - 1)
    azimuths = orbit_azimuths(frames)
    c2w = orbit_c2w(azimuths, 0.0, 2.0)
    front_c2w = orbit_c2w(np.zeros(frames), 0.0, 2.0)
    entries = []

    def draw(t: float, phase: float) -> np.ndarray:
        if empty:
            return np.zeros((size, size, 4), dtype=np.uint8)
        return disc_frame(size, x0 + slide * t, radius, phase)

    for video in videos:
        (root / video).mkdir(exist_ok=True)
        for i in range(frames):
            if video == "front":
                image, t, matrix, az = draw(times[i], 0.0), times[i], front_c2w[i], 0.0
                if noise_after_start and i > 0:
                    image = rng.integers(0, 256, size=(size, size, 4), dtype=np.uint8)
                    image[..., 3] = 255
            else:
                t = times[i] if video == "dynamic" else 0.0
                image, matrix, az = draw(t, math.radians(azimuths[i])), c2w[i], float(azimuths[i])
            name = f"{video}/{i:03d}.png"
            Image.fromarray(image, "RGBA").save(root / name)
            entries.append(
                {
                    "file_path": name,
                    "video": video,
                    "index": i,
                    "time": float(t),
                    "azimuth_deg": az,
                    "elevation_deg": 0.0,
                    "distance": 2.0,
                    "transform_matrix": matrix.tolist(),
                }
            )
    angle = math.radians(DEFAULT_FOV_DEG)
    focal = 0.5 * size / math.tan(0.5 * angle)
    transforms = {
        "convention": "nerf-synthetic: camera-to-world, camera +X right, +Y up, looks along -Z; world +Z up",
        "camera_angle_x": angle,
        "w": size,
        "h": size,
        "fl_x": focal,
        "fl_y": focal,
        "cx": size / 2,
        "cy": size / 2,
        "frames": entries,
    }
    geometric = slide if geometric_max is None else geometric_max
    asset = {
        "schema_version": 1,
        "source": {"path": "synthetic.glb", "sha256": "0" * 64, "format": "glb", "size_bytes": 0},
        "animation": {
            "has_animation": animated,
            "reason": "action 'slide'" if animated else "no actions, NLA strips, shape keys or caches",
            "sources": ["action:slide"] if animated else [],
            "frame_range": list(frame_range) if animated else None,
            "sampled_frames": [frame_range[0] + (frame_range[1] - frame_range[0]) * t for t in times],
            "fps": 24,
            "geometric_motion": {
                "max_displacement": geometric,
                "mean_displacement": geometric / 2,
                "per_frame_rms": [float(geometric * t) for t in times],
            },
        },
        "render": {"engine": "workbench", "resolution": size, "frames": frames},
    }
    if error is not None:
        asset["error"] = error
    (root / "transforms.json").write_text(json.dumps(transforms))
    (root / "asset.json").write_text(json.dumps(asset))
    return root
