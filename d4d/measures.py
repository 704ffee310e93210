"""Measures over rendered frames, pure numpy (no Blender). Shared by the renderer and curation.

Frames are uint8 RGBA arrays [T, H, W, 4] (or float arrays in [0, 1] of the same shape) as
d4d-render writes them: straight (not premultiplied) colour on a transparent background.
"""

from __future__ import annotations

import numpy as np

#: Version of the motion-magnitude definition. Bump only with a new definition; stored
#: values are comparable across d4d versions with the same MOTION_MAGNITUDE_VERSION.
MOTION_MAGNITUDE_VERSION = 1


def _premultiplied_rgb_255(frames: np.ndarray) -> np.ndarray:
    """RGB composited over black, float64 in [0, 255]; input [..., H, W, 3 or 4], uint8 or float in [0, 1]."""
    frames = np.asarray(frames)
    scale = 1.0 if frames.dtype == np.uint8 else 255.0
    rgb = frames[..., :3].astype(np.float64) * scale
    if frames.shape[-1] == 4:
        alpha = frames[..., 3:4].astype(np.float64) * (scale / 255.0)
        rgb = rgb * alpha
    return rgb


def motion_magnitude_per_frame(dynamic: np.ndarray, static: np.ndarray) -> np.ndarray:
    """The paper's 3D-to-4D motion magnitude, per frame: m_i = mean over pixels of ||I_i - Ibar_i||^2.

    Args:
        dynamic: dynamic orbital frames I, [T, H, W, C] with C = 3 or 4.
        static: static orbital frames Ibar with the same cameras, same shape.

    Returns:
        [T] float64. Pixel scale (version 1): RGB composited over black (alpha premultiplied),
        in 0..255, squared difference summed over the three channels and averaged over the H*W
        pixels. The same camera in both videos cancels camera motion; identical videos give 0;
        the largest possible value is 3 * 255**2 = 195075.
    """
    dynamic, static = np.asarray(dynamic), np.asarray(static)
    if dynamic.shape != static.shape:
        raise ValueError(f"dynamic {dynamic.shape} and static {static.shape} frames differ in shape")
    if dynamic.ndim != 4 or dynamic.shape[-1] not in (3, 4):
        raise ValueError(f"frames must be [T, H, W, 3|4], got {dynamic.shape}")
    diff = _premultiplied_rgb_255(dynamic) - _premultiplied_rgb_255(static)
    return (diff**2).sum(axis=-1).mean(axis=(1, 2))


def motion_magnitude(dynamic: np.ndarray, static: np.ndarray) -> float:
    """The paper's Eq. 1, m(V) = (1/T) sum_i ||I_i - Ibar_i||^2, at the scale of motion_magnitude_per_frame."""
    return float(motion_magnitude_per_frame(dynamic, static).mean())
