"""The render contract: write_render is load_render's exact inverse; asset.json is typed and checked."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from d4d.rendering.contract import (
    ASSET_SCHEMA_VERSION,
    AnimationInfo,
    AssetInfo,
    GeometricMotion,
    RenderContractError,
    SourceInfo,
    load_render,
    read_asset,
    write_render,
)
from d4d.rendering.orbits import OrbitLayout, layout_sample
from d4d.rendering.timeline import choose_windows, probe_frames, window_length

LAYOUT = OrbitLayout(frames=5, elevation_deg=15.0, closed=True)


def _sample(root, frames=5, size=12, layout=LAYOUT):
    rng = np.random.default_rng(0)
    videos = {name: rng.integers(0, 256, (frames, size, size, 4), dtype=np.uint8) for name in ("dynamic", "static", "front")}
    asset = AssetInfo(
        source=SourceInfo(path="/data/a.glb", sha256="ab" * 32, format="glb", size_bytes=123),
        animation=AnimationInfo(has_animation=True, reason="test", frame_range=[1.0, 9.0], fps=24.0,
                                geometric_motion=GeometricMotion(max_displacement=0.3, per_frame_rms=[0.0, 0.1])),
        motion_magnitude=12.5, caption="a box", extra={"something_new": {"kept": [1, 2]}},
    )
    return layout_sample(root, layout, size, videos, np.linspace(0, 1, frames), asset)


def _assert_same(a, b):
    assert (a.width, a.height, a.camera_angle_x) == (b.width, b.height, b.camera_angle_x)
    assert list(a.videos) == list(b.videos)
    for name in a.videos:
        x, y = a.videos[name], b.videos[name]
        for field in ("rgba", "c2w", "times", "azimuths_deg", "elevations_deg", "distances"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=f"{name}.{field}")
        assert x.files == y.files
    assert a.asset == b.asset


def test_write_render_is_the_exact_inverse_of_load_render(tmp_path):
    written = _sample(tmp_path / "r")
    write_render(tmp_path / "r", written)
    loaded = load_render(tmp_path / "r")
    _assert_same(written, loaded)
    # ... and loading what a second write produced gives the same files, byte for byte.
    write_render(tmp_path / "again", loaded)
    for name in ("transforms.json", "asset.json", "dynamic/003.png"):
        assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert json.loads((tmp_path / "r" / "asset.json").read_text())["something_new"] == {"kept": [1, 2]}
    assert read_asset(tmp_path / "r").schema_version == ASSET_SCHEMA_VERSION


def test_cameras_only_load_and_frames_already_on_disk(tmp_path):
    write_render(tmp_path / "r", _sample(tmp_path / "r"))
    cameras = load_render(tmp_path / "r", load_pixels=False)
    assert cameras.videos["dynamic"].rgba.shape == (5, 0, 0, 4)
    write_render(tmp_path / "r", cameras)  # frames stay; JSON rewritten identically
    _assert_same(load_render(tmp_path / "r"), _sample(tmp_path / "r"))
    os.remove(tmp_path / "r" / "front" / "002.png")
    with pytest.raises(ValueError, match="front/002.png does not exist"):
        write_render(tmp_path / "r", cameras)


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", "dynamic/\0.png", ""])
def test_frame_paths_must_stay_inside_the_render_directory(tmp_path, bad_path):
    root = tmp_path / "r"
    write_render(root, _sample(root))
    doc = json.loads((root / "transforms.json").read_text())
    doc["frames"][0]["file_path"] = bad_path
    (root / "transforms.json").write_text(json.dumps(doc))
    with pytest.raises(RenderContractError, match="transforms.json"):
        load_render(root)


def test_a_frame_that_is_a_link_out_of_the_directory_is_refused(tmp_path):
    root = tmp_path / "r"
    write_render(root, _sample(root))
    (tmp_path / "secret.png").write_bytes((root / "dynamic" / "000.png").read_bytes())
    (root / "dynamic" / "000.png").unlink()
    (root / "dynamic" / "000.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(RenderContractError, match="link out of the render directory"):
        load_render(root)


@pytest.mark.parametrize(
    "patch, message",
    [({"animation": {"has_animation": "yes"}}, "animation.has_animation"), ({"motion_magnitude": "big"}, "motion_magnitude"),
     ({"source": ["not", "an", "object"]}, "source"), ({"schema_version": ASSET_SCHEMA_VERSION + 1}, "schema_version")],
)
def test_asset_json_fields_are_type_checked_with_the_key_named(tmp_path, patch, message):
    root = tmp_path / "r"
    write_render(root, _sample(root))
    doc = json.loads((root / "asset.json").read_text())
    doc.update(patch)
    (root / "asset.json").write_text(json.dumps(doc))
    with pytest.raises(RenderContractError, match=message):
        read_asset(root)


def test_windows_cover_long_animations_most_motion_first():
    fps, frames, step = 24.0, 24, 0.125
    length = window_length(frames, fps, step)
    assert length == pytest.approx(23 * 3)  # 69 Blender frames: samples 3 frames (1/8 s) apart
    span = (0.0, 480.0)  # a 20 s animation
    probes = probe_frames(span, step * fps)
    assert probes[1] - probes[0] <= step * fps + 1e-9
    mids = (probes[:-1] + probes[1:]) / 2
    motion = np.where((mids > 300) & (mids < 360), 1.0, 0.01)  # a burst of motion around 12.5-15 s
    windows = choose_windows(span, length, probes, motion, 4)
    assert len(windows) == 4 and [w.rank for w in windows] == [0, 1, 2, 3]
    assert windows[0].start <= 300 and windows[0].end >= 360, "the most moving window holds the burst"
    assert all(w.end - w.start == pytest.approx(length) and 0 <= w.start and w.end <= 480 for w in windows)
    starts = sorted(w.start for w in windows)
    assert all(b - a >= length - 1e-6 for a, b in zip(starts, starts[1:])), "windows do not overlap"
    assert [w.motion for w in windows] == sorted((w.motion for w in windows), reverse=True)
    short = choose_windows((10.0, 40.0), length, np.array([10.0, 40.0]), np.array([1.0]), 4)
    assert len(short) == 1 and (short[0].start, short[0].end) == (10.0, 40.0)
