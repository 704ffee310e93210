"""SSIM (curation.ssim) against hand-computed values, a slow windowed twin, and its known properties."""

import numpy as np
import pytest

from d4d.curation.ssim import composite, frame_ssim, gaussian_window, ssim, ssim_map


def ssim_map_slow(x, y, data_range=255.0, size=11, sigma=1.5):
    """Readable twin: for every window position, weighted statistics with the explicit 2-D window."""
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = x.shape
    out = np.empty((h - size + 1, w - size + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w2 * px).sum(), (w2 * py).sum()
            vx, vy = (w2 * (px - mx) ** 2).sum(), (w2 * (py - my) ** 2).sum()
            cov = (w2 * (px - mx) * (py - my)).sum()
            out[i, j] = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return out


def test_window_is_normalised_symmetric_gaussian():
    w = gaussian_window()
    assert w.shape == (11,) and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    assert w.argmax() == 5 and w[5] / w[6] == pytest.approx(np.exp(1 / (2 * 1.5**2)))


def test_constant_images_match_the_hand_computed_luminance_term():
    # Flat images: every variance and covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    # with C1 = (0.01 * 255)^2 = 6.5025: (30000 + 6.5025) / (10000 + 22500 + 6.5025).
    x, y = np.full((16, 16), 100.0), np.full((16, 16), 150.0)
    assert ssim(x, y) == pytest.approx(30006.5025 / 32506.5025, rel=1e-12)
    assert ssim(x, np.zeros((16, 16))) == pytest.approx(6.5025 / 10006.5025, rel=1e-12)


def test_matches_the_slow_twin_on_random_images():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (17, 14))
    y = np.clip(x + rng.normal(0, 40, x.shape), 0, 255)
    fast, slow = ssim_map(x, y), ssim_map_slow(x, y)
    assert fast.shape == slow.shape == (7, 4)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)
    # Also at another data range (images in [0, 1]).
    np.testing.assert_allclose(ssim_map(x / 255, y / 255, data_range=1.0), ssim_map_slow(x / 255, y / 255, 1.0), rtol=1e-9)


def test_identity_symmetry_bounds_and_monotonic_in_noise():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 32))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    noisy = [np.clip(x + rng.normal(0, s, x.shape), 0, 255) for s in (5, 20, 60)]
    values = [ssim(x, n) for n in noisy]
    assert values[0] > values[1] > values[2]
    assert all(-1 <= v < 1 for v in values)
    assert ssim(x, noisy[1]) == pytest.approx(ssim(noisy[1], x), rel=1e-12)
    # An inverted image has negative structure correlation.
    assert ssim(x, 255 - x) < 0


def test_rejects_mismatched_and_too_small_images():
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((16, 16)), np.zeros((16, 15)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))


def test_frame_ssim_ignores_colour_under_zero_alpha_and_sees_visible_changes():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    a[..., 3] = 0
    b = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    b[..., 3] = 0
    # Fully transparent frames composite to the same flat background whatever their RGB.
    assert frame_ssim(a, b) == pytest.approx(1.0)
    assert frame_ssim(a, b, channels="rgb", background=0.5) == pytest.approx(1.0)
    a[..., 3], b[..., 3] = 255, 255
    assert frame_ssim(a, b) < 0.2
    assert frame_ssim(a, a, channels="rgb") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="channels"):
        frame_ssim(a, b, channels="hsv")


def test_composite_over_background():
    px = np.array([[[200, 100, 0, 128]]], dtype=np.uint8)
    alpha = 128 / 255
    np.testing.assert_allclose(composite(px)[0, 0], [200 * alpha, 100 * alpha, 0])
    np.testing.assert_allclose(composite(px, background=1.0)[0, 0], np.array([200, 100, 0]) * alpha + 255 * (1 - alpha))
    # float input in [0, 1] gives the same as its uint8 equivalent
    np.testing.assert_allclose(composite(px.astype(np.float64) / 255), composite(px))
