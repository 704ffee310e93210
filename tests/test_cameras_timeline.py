"""Camera math and time sampling, without Blender."""

import math

import numpy as np
import pytest

from d4d.rendering.cameras import (
    DEFAULT_FOV_DEG,
    intrinsics,
    look_at,
    opengl_to_opencv,
    orbit_azimuths,
    orbit_c2w,
    orbit_position,
    project,
)
from d4d.rendering.contract import AssetInfo, transforms_json
from d4d.rendering.options import RenderOptions
from d4d.rendering.orbits import layout_sample
from d4d.rendering.timeline import fcurve_active_span, sample_timeline, trim_still_ends, union_span


def test_orbit_front_camera_looks_at_origin_along_plus_y():
    c2w = look_at(orbit_position(0.0, 0.0, 2.0))
    np.testing.assert_allclose(c2w[:3, 3], [0, -2, 0], atol=1e-12)
    # OpenGL camera frame: looks along its -Z axis, which must point at the origin (+Y here).
    np.testing.assert_allclose(-c2w[:3, 2], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 1], [0, 0, 1], atol=1e-12)  # camera up is world up
    np.testing.assert_allclose(c2w[:3, 0], [1, 0, 0], atol=1e-12)  # camera right is +X
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)


def test_azimuth_turns_counter_clockwise_seen_from_above():
    assert np.allclose(orbit_position(90.0, 0.0, 1.0), [1, 0, 0], atol=1e-12)
    assert np.allclose(orbit_position(0.0, 90.0, 1.0), [0, 0, 1], atol=1e-12)


def test_orbit_azimuths_open_and_closed():
    assert np.allclose(orbit_azimuths(4), [0, 90, 180, 270])
    assert np.allclose(orbit_azimuths(4, closed=True), [0, 120, 240, 360])
    assert np.allclose(orbit_azimuths(3, start_deg=10), [10, 130, 250])
    with pytest.raises(ValueError, match="n_views"):
        orbit_azimuths(0)


def test_projection_of_origin_is_image_centre_and_matches_fov():
    K = intrinsics(DEFAULT_FOV_DEG, 256, 256)
    c2ws = orbit_c2w(orbit_azimuths(24, 17.0), elevation_deg=20.0, distance=2.0)
    for c2w in c2ws:
        uv = project(np.zeros((1, 3)), c2w, K)
        np.testing.assert_allclose(uv[0], [128, 128], atol=1e-9)
    # A point on the edge of the horizontal field of view lands on the image border.
    half = 2.0 * math.tan(math.radians(DEFAULT_FOV_DEG) / 2)
    uv = project(np.array([[half, 0.0, 0.0]]), look_at(orbit_position(0, 0, 2)), K)
    np.testing.assert_allclose(uv[0], [256, 128], atol=1e-9)


def test_opencv_conversion_flips_y_and_z_only():
    c2w = look_at(orbit_position(33.0, 12.0, 2.0))
    cv = opengl_to_opencv(c2w)
    np.testing.assert_allclose(cv[:3, 0], c2w[:3, 0])
    np.testing.assert_allclose(cv[:3, 1], -c2w[:3, 1])
    np.testing.assert_allclose(cv[:3, 2], -c2w[:3, 2])
    np.testing.assert_allclose(cv[:3, 3], c2w[:3, 3])


def test_look_at_rejects_degenerate_views():
    with pytest.raises(ValueError, match="parallel"):
        look_at(np.array([0.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="coincide"):
        look_at(np.zeros(3))


def test_active_span_skips_held_keys_at_both_ends():
    keys = [(1, 0.0), (120, 0.0), (150, 2.0), (180, 3.0), (250, 3.0)]
    assert fcurve_active_span(keys) == (120.0, 180.0)
    assert fcurve_active_span([(1, 5.0), (50, 5.0)]) is None
    assert fcurve_active_span([(10, 0.0)]) is None
    assert union_span([None, (3, 8), (1, 4)]) == (1, 8)
    assert union_span([None]) is None


def test_sample_timeline_covers_span_inclusively():
    s = sample_timeline((120.0, 180.0), 7, fallback_frame=1)
    assert s.has_animation
    np.testing.assert_allclose(s.frames, [120, 130, 140, 150, 160, 170, 180])
    np.testing.assert_allclose(s.times, np.linspace(0, 1, 7))
    still = sample_timeline(None, 5, fallback_frame=3)
    assert not still.has_animation and np.all(still.frames == 3) and "no animation" in still.reason
    short = sample_timeline((10.0, 10.5), 5, fallback_frame=1)
    assert not short.has_animation and np.all(short.frames == 10.0)


def test_trim_still_ends_finds_the_moving_part():
    probe = np.arange(10.0)
    steps = [0, 0, 0, 0.3, 0.7, 0, 0, 0, 0]  # motion between probes 3-4 and 4-5
    assert trim_still_ends(probe, steps) == (3.0, 5.0)
    assert trim_still_ends(probe, [0.0] * 9) is None
    assert trim_still_ends(probe[:3], [0.0, 1.0]) == (1.0, 2.0)


def test_transforms_json_layout():
    options = RenderOptions(frames=6, resolution=64, videos=("dynamic", "static"))
    empty = np.zeros((6, 0, 0, 4), np.uint8)
    sample = layout_sample("unused", options.layout(), 64, {"dynamic": empty, "static": empty}, np.linspace(0, 1, 6), AssetInfo())
    doc = transforms_json(sample)
    assert doc["w"] == doc["h"] == 64
    assert math.isclose(doc["fl_x"], 32 / math.tan(doc["camera_angle_x"] / 2))
    dynamic = [f for f in doc["frames"] if f["video"] == "dynamic"]
    static = [f for f in doc["frames"] if f["video"] == "static"]
    assert [f["file_path"] for f in dynamic] == [f"dynamic/{i:03d}.png" for i in range(6)]
    assert [f["time"] for f in dynamic] == pytest.approx(np.linspace(0, 1, 6))
    assert all(f["time"] == 0.0 for f in static)
    # Same cameras for the dynamic and static orbits: that is what makes Eq. 1 cancel camera motion.
    for d, s in zip(dynamic, static):
        assert d["transform_matrix"] == s["transform_matrix"]


def test_render_options_validate_with_named_errors():
    with pytest.raises(ValueError, match="engine"):
        RenderOptions(engine="povray")
    with pytest.raises(ValueError, match="frames"):
        RenderOptions(frames=1)
    with pytest.raises(ValueError, match="videos"):
        RenderOptions(videos=("side",))
    assert RenderOptions.from_dict(RenderOptions(videos=("front",)).to_dict()) == RenderOptions(videos=("front",))
