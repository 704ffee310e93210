"""The alpha matte of generated frames (training.matte): renders composited over the training
background are matted back to their alpha."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_bpy

from d4d.testing.curation_render_dirs import disc_frame
from d4d.training.matte import alpha_matte, matte_rgba


def composite(rgba: np.ndarray, background: float) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return np.round((rgba[..., :3] / 255.0 * alpha + background * (1 - alpha)) * 255.0).astype(np.uint8)


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    est, true = alpha > 0.5, truth > 127
    return float((est & true).sum() / (est | true).sum())


def test_edges_get_their_coverage_and_enclosed_background_coloured_pixels_stay_opaque():
    disc = disc_frame(64, 0.5, 0.3, 0.0)[None].copy()
    disc[0, 30:34, 30:34, :3] = 255  # a white highlight inside the asset, on a white background
    edge = np.zeros((1, 64, 64, 4), np.uint8)
    edge[0, 20:40, 20:40] = (200, 40, 40, 255)
    edge[0, 20:40, 40] = (200, 40, 40, 128)  # a half-covered column
    for frame in (disc, edge):
        alpha = alpha_matte(composite(frame, 1.0), 1.0)
        assert iou(alpha, frame[..., 3]) == 1.0
    alpha = alpha_matte(composite(edge, 1.0), 1.0)
    assert np.allclose(alpha[0, 22:38, 40], 128 / 255, atol=0.02) and alpha[0, 30, 30] == 1.0
    rgba = matte_rgba(composite(edge, 1.0), 1.0)
    assert np.abs(rgba[0, 22:38, 40, :3].astype(int) - (200, 40, 40)).max() <= 3  # straight colour recovered
    assert alpha_matte(np.full((1, 8, 8, 3), 255, np.uint8), 1.0).max() == 0.0


def test_a_hazy_generated_background_is_measured_and_left_out_of_the_matte():
    """A small model's background is a faint haze, not the flat training grey: the threshold is
    measured on the frames' border, so the haze stays background and the asset keeps its shape;
    the fixed floor alone would make the haze opaque."""
    rng = np.random.default_rng(0)
    truth = disc_frame(32, 0.5, 0.3, 0.0)[None].repeat(4, axis=0)
    rgb = composite(truth, 1.0).astype(np.float32)
    haze = rng.uniform(0, 0.06, size=rgb.shape[:3] + (1,)) * 255  # up to 0.06 darker than white
    hazy = np.clip(rgb - haze * (truth[..., 3:] < 128), 0, 255).astype(np.uint8)
    assert iou(alpha_matte(hazy, 1.0), truth[..., 3]) >= 0.95
    assert iou(alpha_matte(hazy, 1.0, low=0.03), truth[..., 3]) < 0.5


@requires_bpy
@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("background", [1.0, 0.5])
def test_matte_of_cycles_renders_over_the_training_background(render_builtin, background):
    from d4d.rendering.builtin_assets import BUILTIN_ASSETS
    from d4d.rendering.contract import load_render

    for name in BUILTIN_ASSETS:
        rgba = load_render(render_builtin(name, resolution=96, frames=8, engine="cycles", videos=("dynamic",))).videos["dynamic"].rgba
        score = iou(alpha_matte(composite(rgba, background), background), rgba[..., 3])
        assert score >= 0.95, (name, background, score)
