"""Read a render directory (the render contract, docs/conventions.md) into typed arrays.

Pure Python + numpy + Pillow: shards, training, reconstruction and inspection read renders
through ``load_render`` and never parse Blender output themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

VIDEO_NAMES = ("dynamic", "static", "front")


@dataclass
class VideoFrames:
    """One rendered video.

    Attributes:
        name: "dynamic", "static" or "front".
        rgba: uint8 [T, H, W, 4], straight alpha, sRGB.
        c2w: float64 [T, 4, 4], camera-to-world, OpenGL camera frame (docs/conventions.md).
        times: float64 [T], normalised animation time in [0, 1] shown by each frame.
        azimuths_deg: float64 [T].
        files: the frame files, relative to the render directory.
    """

    name: str
    rgba: np.ndarray
    c2w: np.ndarray
    times: np.ndarray
    azimuths_deg: np.ndarray
    files: list[str]


@dataclass
class RenderSample:
    """A whole render directory.

    Attributes:
        root: the directory.
        width, height: pixels.
        camera_angle_x: horizontal field of view, radians.
        K: float64 [3, 3] pinhole intrinsics in pixels.
        videos: name -> VideoFrames, for the videos present.
        asset: the parsed asset.json.
    """

    root: Path
    width: int
    height: int
    camera_angle_x: float
    K: np.ndarray
    videos: dict[str, VideoFrames] = field(default_factory=dict)
    asset: dict = field(default_factory=dict)

    @property
    def motion_magnitude(self) -> float | None:
        return self.asset.get("motion_magnitude")


class RenderContractError(ValueError):
    """A render directory that does not follow the contract; the message names the file."""


def load_transforms(root: str | Path) -> dict:
    path = Path(root) / "transforms.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RenderContractError(f"{path}: missing (not a d4d render directory?)") from None
    except json.JSONDecodeError as exc:
        raise RenderContractError(f"{path}: not valid JSON ({exc})") from None


def read_rgba(path: Path) -> np.ndarray:
    """One frame as uint8 [H, W, 4]; RGB images get an opaque alpha."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA"))
    except (FileNotFoundError, OSError) as exc:
        raise RenderContractError(f"{path}: cannot read frame ({exc})") from None


def load_render(root: str | Path, videos: tuple[str, ...] = VIDEO_NAMES, load_pixels: bool = True) -> RenderSample:
    """Load a render directory.

    Args:
        root: the directory d4d-render (or d4d-sample) wrote.
        videos: which videos to load; absent ones are skipped.
        load_pixels: False leaves ``rgba`` as an empty [T, 0, 0, 4] array (cameras only).
    """
    root = Path(root)
    transforms = load_transforms(root)
    width, height = int(transforms["w"]), int(transforms["h"])
    angle_x = float(transforms["camera_angle_x"])
    focal = 0.5 * width / np.tan(0.5 * angle_x)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    asset_path = root / "asset.json"
    asset = json.loads(asset_path.read_text()) if asset_path.exists() else {}
    sample = RenderSample(root=root, width=width, height=height, camera_angle_x=angle_x, K=K, asset=asset)
    for name in videos:
        frames = sorted((f for f in transforms["frames"] if f.get("video") == name), key=lambda f: f["index"])
        if not frames:
            continue
        files = [f["file_path"] for f in frames]
        if load_pixels:
            rgba = np.stack([read_rgba(root / p) for p in files])
            if rgba.shape[1:3] != (height, width):
                raise RenderContractError(f"{root / files[0]}: frame is {rgba.shape[1:3]}, transforms.json says {(height, width)}")
        else:
            rgba = np.zeros((len(files), 0, 0, 4), dtype=np.uint8)
        sample.videos[name] = VideoFrames(
            name=name,
            rgba=rgba,
            c2w=np.array([f["transform_matrix"] for f in frames], dtype=np.float64),
            times=np.array([f["time"] for f in frames], dtype=np.float64),
            azimuths_deg=np.array([f.get("azimuth_deg", np.nan) for f in frames], dtype=np.float64),
            files=files,
        )
    if not sample.videos:
        raise RenderContractError(f"{root / 'transforms.json'}: no frames of videos {videos}")
    return sample
