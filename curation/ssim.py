"""Structural similarity (SSIM), pure numpy: Wang, Bovik, Sheikh & Simoncelli (2004).

The standard form: an 11x11 Gaussian window (sigma 1.5, normalised to sum 1), constants
C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L the data range, local statistics

    mu_x = w * x,  sigma_x^2 = w * x^2 - mu_x^2,  sigma_xy = w * (x y) - mu_x mu_y

and the map SSIM = ((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
evaluated where the window fits entirely inside the image ("valid", as in the authors'
MATLAB reference, so no padding choice enters) and averaged. For colour, d4d compares
luma (ITU-R BT.601: Y = 0.299 R + 0.587 G + 0.114 B) of the frame composited over a flat
background; ``channels="rgb"`` averages the SSIM of the three channels instead.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WINDOW_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
BT601 = np.array([0.299, 0.587, 0.114])


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """1-D Gaussian weights [size], float64, summing to 1 (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def _filter_valid(image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [..., H, W] with the outer product of ``w``: [..., H-k+1, W-k+1]."""
    rows = sliding_window_view(image, w.size, axis=-1) @ w
    return sliding_window_view(rows, w.size, axis=-2) @ w


def ssim_map(
    x: np.ndarray, y: np.ndarray, data_range: float = 255.0, window_size: int = WINDOW_SIZE, sigma: float = SIGMA
) -> np.ndarray:
    """Per-window SSIM of two single-channel images.

    Args:
        x, y: [..., H, W] with the same shape, any real dtype (computed in float64).
        data_range: L, the span of possible values (255 for 8-bit, 1 for [0, 1] floats).

    Returns:
        float64 [..., H - window_size + 1, W - window_size + 1], values in [-1, 1].
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim: images differ in shape, {x.shape} vs {y.shape}")
    if x.ndim < 2 or min(x.shape[-2:]) < window_size:
        raise ValueError(f"ssim: images must be at least {window_size}x{window_size}, got {x.shape}")
    w = gaussian_window(window_size, sigma)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    var_x = _filter_valid(x * x, w) - mu_x**2
    var_y = _filter_valid(y * y, w) - mu_y**2
    cov = _filter_valid(x * y, w) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two single-channel images [H, W] (see ``ssim_map``)."""
    return float(ssim_map(x, y, data_range).mean())


def composite(frame: np.ndarray, background: float = 0.0) -> np.ndarray:
    """RGB over a flat grey background, float64 [..., H, W, 3] in 0..255.

    Args:
        frame: uint8 [..., H, W, 3 or 4] (straight alpha) or float in [0, 1].
        background: grey level of the background in [0, 1] (0 = black, as the motion
            magnitude composites).
    """
    frame = np.asarray(frame)
    scale = 1.0 if frame.dtype == np.uint8 else 255.0
    rgb = frame[..., :3].astype(np.float64) * scale
    if frame.shape[-1] == 4:
        alpha = frame[..., 3:4].astype(np.float64) * (scale / 255.0)
        rgb = rgb * alpha + 255.0 * background * (1.0 - alpha)
    return rgb


def frame_ssim(a: np.ndarray, b: np.ndarray, channels: str = "luma", background: float = 0.0) -> float:
    """SSIM of two whole rendered frames [H, W, 3|4] (uint8 or float in [0, 1]) at the 0..255 scale.

    Args:
        channels: "luma" compares BT.601 luma; "rgb" averages the three per-channel SSIMs.
        background: grey level in [0, 1] the frames are composited over (see ``composite``).
    """
    if channels not in ("luma", "rgb"):
        raise ValueError(f"channels must be 'luma' or 'rgb', got {channels!r}")
    ca, cb = composite(a, background), composite(b, background)
    if channels == "luma":
        return ssim(ca @ BT601, cb @ BT601)
    return float(np.mean([ssim(ca[..., c], cb[..., c]) for c in range(3)]))
