"""Test helper: synthetic render directories written through the render contract's
``write_render`` (docs/conventions.md): numpy-drawn RGBA frames of a striped disc.

The disc stands for the object. In the dynamic orbit and the front video it slides
horizontally with time; the orbit's camera rotation is imitated by turning the stripe
pattern with the azimuth, identically in the dynamic and static orbits, so only the
animation differs between them (as in a real render).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from d4d.rendering.contract import AnimationInfo, AssetInfo, GeometricMotion, SourceInfo, write_render
from d4d.rendering.orbits import OrbitLayout, layout_sample


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
    rng = np.random.default_rng(seed)
    slide = slide if animated else 0.0
    x0 = 0.5 - slide / 2 if start_x is None else start_x
    times = np.arange(frames) / (frames - 1)

    def draw(t: float, phase: float) -> np.ndarray:
        if empty:
            return np.zeros((size, size, 4), dtype=np.uint8)
        return disc_frame(size, x0 + slide * t, radius, phase)

    geometric = slide if geometric_max is None else geometric_max
    asset = AssetInfo(
        source=SourceInfo(path="synthetic.glb", sha256="0" * 64, format="glb", size_bytes=0),
        animation=AnimationInfo(
            has_animation=animated,
            reason="action 'slide'" if animated else "no actions, NLA strips, shape keys or caches",
            frame_range=list(frame_range) if animated else None,
            sampled_frames=[frame_range[0] + (frame_range[1] - frame_range[0]) * t for t in times],
            fps=24.0,
            geometric_motion=GeometricMotion(max_displacement=geometric, mean_displacement=geometric / 2,
                                             per_frame_rms=[float(geometric * t) for t in times]),
        ),
        render={"engine": "workbench", "resolution": size, "frames": frames},
        error=error,
    )
    empty_frames = {v: np.zeros((frames, 0, 0, 4), np.uint8) for v in videos}
    sample = layout_sample(root, OrbitLayout(frames=frames), size, empty_frames, times if animated else np.zeros(frames), asset)
    for name, video in sample.videos.items():
        images = []
        for i in range(frames):
            if name == "front":
                image = draw(video.times[i], 0.0)
                if noise_after_start and i > 0:
                    image = rng.integers(0, 256, size=(size, size, 4), dtype=np.uint8)
                    image[..., 3] = 255
            else:
                image = draw(video.times[i], math.radians(video.azimuths_deg[i]))
            images.append(image)
        video.rgba = np.stack(images)
    write_render(root, sample)
    return root
