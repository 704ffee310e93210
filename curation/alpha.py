"""Measures over the alpha channel of rendered frames, pure numpy: empty, coverage, border contact.

Frames are [T, H, W, 4] uint8 (straight alpha, as d4d-render writes) or float in [0, 1].
A pixel is *covered* when its alpha is >= ``threshold`` (a fraction of full opacity), so
faint anti-aliased edges do not count.
"""

from __future__ import annotations

import numpy as np


def alpha01(frames: np.ndarray) -> np.ndarray:
    """Alpha as float64 in [0, 1], [T, H, W]; frames [T, H, W, 4]."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 4:
        raise ValueError(f"frames must be RGBA [T, H, W, 4], got {frames.shape}")
    alpha = frames[..., 3].astype(np.float64)
    return alpha / 255.0 if frames.dtype == np.uint8 else alpha


def empty_frames(frames: np.ndarray) -> np.ndarray:
    """bool [T]: True where a frame has no alpha at all (every pixel fully transparent)."""
    return ~(alpha01(frames) > 0).any(axis=(1, 2))


def coverage(frames: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """float64 [T]: fraction of each frame's pixels that are covered (alpha >= threshold)."""
    return (alpha01(frames) >= threshold).mean(axis=(1, 2))


def border_mask(height: int, width: int, border_px: int = 1) -> np.ndarray:
    """bool [H, W]: the band of ``border_px`` pixels along the four image edges."""
    if border_px < 1 or 2 * border_px > min(height, width):
        raise ValueError(f"border_px must be in [1, {min(height, width) // 2}] for {height}x{width}, got {border_px}")
    mask = np.zeros((height, width), dtype=bool)
    mask[:border_px], mask[-border_px:], mask[:, :border_px], mask[:, -border_px:] = True, True, True, True
    return mask


def border_fraction(frames: np.ndarray, border_px: int = 1, threshold: float = 0.5) -> np.ndarray:
    """float64 [T]: fraction of the border band's pixels that are covered, per frame.

    0 means the object stays clear of the image edges; any value above 0 means some of it
    touches (and so probably continues beyond) the frame.
    """
    alpha = alpha01(frames)
    band = border_mask(alpha.shape[1], alpha.shape[2], border_px)
    return (alpha[:, band] >= threshold).mean(axis=1)
