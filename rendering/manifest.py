"""Cameras of a render and transforms.json, pure numpy (docs/conventions.md)."""

from __future__ import annotations

import math

import numpy as np

from d4d.rendering.cameras import focal_from_fov, orbit_azimuths, orbit_c2w
from d4d.rendering.options import RenderOptions

ASSET_SCHEMA_VERSION = 1
CONVENTION = "nerf-synthetic: camera-to-world, camera +X right, +Y up, looks along -Z; world +Z up"


def video_cameras(options: RenderOptions) -> dict[str, dict]:
    """Per video: ``azimuths`` [T] (degrees), ``c2w`` [T, 4, 4] and ``animated`` (does the asset move)."""
    orbit = orbit_azimuths(options.frames, options.azimuth_start_deg, closed=options.closed_orbit)
    front = np.full(options.frames, options.azimuth_start_deg)
    layout = {
        "dynamic": (orbit, True),
        "static": (orbit, False),
        "front": (front, True),
    }
    return {
        name: {"azimuths": az, "c2w": orbit_c2w(az, options.elevation_deg, options.distance), "animated": animated}
        for name, (az, animated) in layout.items()
        if name in options.videos
    }


def frame_file(video: str, index: int) -> str:
    return f"{video}/{index:03d}.png"


def transforms_json(options: RenderOptions, cameras: dict[str, dict], times: np.ndarray) -> dict:
    """The transforms.json of a render (NeRF-synthetic layout plus per-frame video, time and pose)."""
    focal = focal_from_fov(options.fov_deg, options.resolution)
    frames = []
    for video, cam in cameras.items():
        for i, (azimuth, c2w) in enumerate(zip(cam["azimuths"], cam["c2w"])):
            frames.append(
                {
                    "file_path": frame_file(video, i),
                    "video": video,
                    "index": i,
                    "time": float(times[i]) if cam["animated"] else 0.0,
                    "azimuth_deg": float(azimuth),
                    "elevation_deg": float(options.elevation_deg),
                    "distance": float(options.distance),
                    "transform_matrix": np.asarray(c2w).tolist(),
                }
            )
    return {
        "convention": CONVENTION,
        "camera_angle_x": math.radians(options.fov_deg),
        "w": options.resolution,
        "h": options.resolution,
        "fl_x": focal,
        "fl_y": focal,
        "cx": options.resolution / 2.0,
        "cy": options.resolution / 2.0,
        "frames": frames,
    }
