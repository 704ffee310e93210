"""Tiny training data for the training/ tests: in-memory clips in the shard sample layout.

Each clip is a disc that moves along a circle across T frames (the dynamic orbit) and the
same disc frozen at its first position (the static orbit), drawn with numpy, in [-1, 1] over a
white background. Motion magnitudes are computed from the RGBA frames with the project's
Eq. 1 implementation (curation.measures.motion_magnitude), so they are on the real scale.
"""

from __future__ import annotations

import numpy as np
import torch

from d4d.measures import motion_magnitude

CAPTIONS = ("a red ball rolling", "a blue cube spinning", "a green frog jumping", "a yellow star waving")
COLOURS = ((220, 40, 40), (40, 60, 220), (40, 180, 60), (230, 200, 40))


def disc_rgba(frames: int, size: int, colour, speed: float, phase: float) -> np.ndarray:
    """uint8 [T, size, size, 4]: a disc of radius size/5 on a transparent background."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((frames, size, size, 4), np.uint8)
    for t in range(frames):
        angle = phase + speed * t
        cx, cy = size / 2 + size / 5 * np.cos(angle), size / 2 + size / 5 * np.sin(angle)
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= (size / 5) ** 2
        out[t][inside] = (*colour, 255)
    return out


def to_video(rgba: np.ndarray, background: float = 1.0) -> torch.Tensor:
    """uint8 RGBA [T, H, W, 4] -> float32 [T, 3, H, W] in [-1, 1] composited over ``background``."""
    x = torch.from_numpy(rgba).permute(0, 3, 1, 2).float() / 255.0
    rgb = x[:, :3] * x[:, 3:] + background * (1 - x[:, 3:])
    return rgb * 2 - 1


def make_clip(index: int, frames: int = 4, size: int = 16, speed: float = 0.6) -> dict:
    """One training sample dict (keys as shards/decode.py); ``speed`` 0 gives a static clip."""
    dynamic = disc_rgba(frames, size, COLOURS[index % 4], speed * (1 + index % 3), phase=index)
    static = np.repeat(dynamic[:1], frames, axis=0)
    return {"uid": f"clip{index:03d}", "caption": CAPTIONS[index % 4],
            "motion_magnitude": torch.tensor(motion_magnitude(dynamic, static), dtype=torch.float32),
            "dynamic_video": to_video(dynamic), "static_video": to_video(static)}


def make_clips(n: int, frames: int = 4, size: int = 16) -> list[dict]:
    return [make_clip(i, frames, size) for i in range(n)]


def single_thread():
    """Generator for a pytest fixture: run torch on one thread (tiny models on a shared 2-core
    machine are several times faster without intra-op thread contention), then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
