"""A render's preview video, ``preview.mp4`` beside its frames (what ``d4d-render`` writes): every
orbit of the render side by side, frame by frame (the dynamic orbit first, then the others with
as many frames, in transforms.json's order), composited over white, at ``PREVIEW_FPS``. One
file a user can open to see the asset move and turn, instead of a folder of PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4d.rendering.contract import RenderSample, load_render
from d4d.video import write_mp4

PREVIEW_NAME = "preview.mp4"
#: Frames per second of the preview (24 frames: 3 s).
PREVIEW_FPS = 8


def preview_frames(sample: RenderSample) -> np.ndarray:
    """uint8 [T, H, W * n, 3]: the n orbits of ``sample`` with as many frames as its first one,
    side by side, over white (straight alpha)."""
    videos = [v for v in sample.videos.values() if v.has_pixels]
    if not videos:
        raise ValueError(f"{sample.root}: no frames to preview")
    frames = len(videos[0])
    rgba = np.concatenate([v.rgba for v in videos if len(v) == frames], axis=2).astype(np.float32) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def write_preview(render_dir: str | Path) -> Path:
    """Write ``render_dir``/preview.mp4 from the render there; returns its path."""
    sample = load_render(render_dir)
    return write_mp4(preview_frames(sample), Path(render_dir) / PREVIEW_NAME, fps=PREVIEW_FPS)
