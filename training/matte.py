"""An alpha matte for generated frames: the model paints the asset over the background it was trained on.

d4d trains on renders composited over a flat grey level (``TrainConfig.background``, white by
default), so a generated frame is the asset over that colour. The matte (docs/training.md,
"Alpha of generated frames"):

1. **distance**: per pixel, the largest absolute difference of its RGB from the background,
   in 0..1; a pixel under ``low`` is background. ``low`` is measured on the video itself
   (``background_noise``): twice the 90th percentile of the distance on the frames' outermost
   pixel ring, where the asset rarely is, clamped to [LOW, HIGH]; a small model's generated
   background is a faint haze (measured 0.035-0.075 at that percentile on the demo's 32-pixel
   samples, where LOW alone made half the background opaque: matte IoU 0.03-0.67 against the
   renders, 0.80-0.98 with the measured threshold);
2. **edges**: a pixel next to background is partly covered: a composite a * colour + (1 - a) *
   background is a times as far from the background as the colour, so its alpha is its
   distance over the largest distance within ``EDGE_RADIUS`` pixels (the asset's colour there);
3. **inside**: every other asset pixel is opaque, and so are background-coloured regions that
   do not touch the image border (a white highlight on a white background);
4. **colour**: the composite is undone where 0 < alpha < 1, giving straight (not
   premultiplied) colour, as renders are stored.

Pure numpy.
"""

from __future__ import annotations

import numpy as np

#: Bounds of the colour distance (0..1) below which a pixel is background.
LOW = 0.03
HIGH = 0.25
#: Pixels around an edge pixel that tell the asset's colour there.
EDGE_RADIUS = 2


def _border_connected(mask: np.ndarray) -> np.ndarray:
    """The part of boolean ``mask`` [H, W] connected (4-neighbourhood) to the image border."""
    reached = np.zeros_like(mask)
    reached[0, :], reached[-1, :], reached[:, 0], reached[:, -1] = mask[0, :], mask[-1, :], mask[:, 0], mask[:, -1]
    while True:
        grown = reached.copy()
        grown[1:, :] |= reached[:-1, :]
        grown[:-1, :] |= reached[1:, :]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= mask
        if np.array_equal(grown, reached):
            return reached
        reached = grown


def _max_filter(image: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over the (2 radius + 1)^2 neighbourhood of each pixel of ``image`` [H, W]."""
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    return np.max([padded[dy : dy + height, dx : dx + width] for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)], axis=0)


def background_noise(distance: np.ndarray) -> float:
    """The background threshold of a video from its colour distances ``distance`` float [T, H, W]:
    2 x the 90th percentile on the outermost pixel ring of every frame, clamped to [LOW, HIGH]."""
    ring = np.concatenate([distance[:, 0, :], distance[:, -1, :], distance[:, 1:-1, 0], distance[:, 1:-1, -1]], axis=1)
    return float(np.clip(2.0 * np.quantile(ring, 0.9), LOW, HIGH))


def alpha_matte(rgb: np.ndarray, background: float, low: float | None = None) -> np.ndarray:
    """Alpha float32 [T, H, W] in [0, 1] of frames ``rgb`` uint8 [T, H, W, 3] painted over the grey
    ``background`` in [0, 1]; ``low`` None measures the background threshold on the frames (``background_noise``)."""
    distance = np.abs(rgb.astype(np.float32) / 255.0 - background).max(axis=-1)
    low = background_noise(distance) if low is None else low
    if not 0.0 < low < 1.0:
        raise ValueError(f"low must be in (0, 1), got {low}")
    alpha = np.zeros_like(distance)
    for t, d in enumerate(distance):
        background_pixels = d < low
        outside = _border_connected(background_pixels)
        near_outside = _max_filter(outside.astype(np.float32), 1) > 0
        edge = near_outside & ~outside
        alpha[t] = np.where(outside, 0.0, 1.0)
        alpha[t][edge] = np.clip(d[edge] / np.maximum(_max_filter(d, EDGE_RADIUS)[edge], low), 0.0, 1.0)
    return alpha


def matte_rgba(rgb: np.ndarray, background: float) -> np.ndarray:
    """uint8 RGBA [T, H, W, 4] (straight alpha) of frames ``rgb`` uint8 [T, H, W, 3] over ``background``."""
    alpha = alpha_matte(rgb, background)[..., None]
    colour = rgb.astype(np.float32) / 255.0
    straight = np.where(alpha > 0, (colour - (1.0 - alpha) * background) / np.maximum(alpha, 1e-6), 0.0)
    rgba = np.concatenate([np.clip(straight, 0.0, 1.0), alpha], axis=-1)
    return np.round(rgba * 255.0).astype(np.uint8)
