"""Alpha measures (curation.alpha): empty frames, coverage, border contact."""

import numpy as np
import pytest

from d4d.curation.alpha import border_fraction, border_mask, coverage, empty_frames


def frames_with_square(size, top, left, side, alpha=255, t=1):
    f = np.zeros((t, size, size, 4), dtype=np.uint8)
    f[:, top : top + side, left : left + side, 3] = alpha
    return f


def test_coverage_counts_pixels_at_or_above_threshold():
    f = frames_with_square(20, 5, 5, 10)
    assert coverage(f)[0] == pytest.approx(100 / 400)
    faint = frames_with_square(20, 5, 5, 10, alpha=100)
    assert coverage(faint, threshold=0.5)[0] == 0.0
    assert coverage(faint, threshold=0.3)[0] == pytest.approx(0.25)
    assert coverage(f.astype(np.float64) / 255)[0] == pytest.approx(0.25)


def test_empty_frames_means_no_alpha_at_all():
    f = np.zeros((3, 8, 8, 4), dtype=np.uint8)
    f[1, 4, 4, 3] = 1  # one barely visible pixel: not empty
    f[2, :, :, :3] = 255  # colour but no alpha: empty
    np.testing.assert_array_equal(empty_frames(f), [True, False, True])


def test_border_band_and_fraction():
    mask = border_mask(10, 12, 2)
    assert mask.sum() == 10 * 12 - 6 * 8
    inside = frames_with_square(20, 1, 1, 18)
    assert border_fraction(inside)[0] == 0.0
    assert border_fraction(inside, border_px=2)[0] > 0
    touching = frames_with_square(20, 0, 5, 4)  # touches the top edge along 4 pixels
    assert border_fraction(touching)[0] == pytest.approx(4 / (20 * 4 - 4))
    with pytest.raises(ValueError, match="border_px"):
        border_mask(10, 10, 6)


def test_rejects_non_rgba():
    with pytest.raises(ValueError, match="RGBA"):
        coverage(np.zeros((2, 8, 8, 3), dtype=np.uint8))
