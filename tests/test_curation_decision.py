"""decide(): one decision per asset from asset.json and frames, with reasons and measures."""

import dataclasses
import json
import math

import numpy as np
import pytest

from d4d.curation.config import CurationConfig
from d4d.curation.decision import REASONS, Decision, decide
from d4d.rendering.contract import AssetInfo, GeometricMotion
from d4d.testing.curation_render_dirs import disc_frame

T, SIZE = 8, 48


def asset_json(has_animation=True, frame_range=(1, 48), max_disp=0.2, mean_disp=0.1, error=None) -> AssetInfo:
    """A parsed asset.json with the fields the rules read."""
    a = {
        "animation": {
            "has_animation": has_animation,
            "reason": "action" if has_animation else "no animation",
            "frame_range": list(frame_range) if has_animation else None,
            "geometric_motion": {"max_displacement": max_disp, "mean_displacement": mean_disp, "per_frame_rms": [0.0, max_disp]},
        }
    }
    if error is not None:
        a["error"] = error
    return AssetInfo.parse(a, "test asset.json")


def videos(slide=0.3, radius=0.2, x0=None, front_noise=False):
    """dynamic/static/front [T, SIZE, SIZE, 4] of a striped disc sliding by ``slide``."""
    x0 = 0.5 - slide / 2 if x0 is None else x0
    times = np.arange(T) / (T - 1)
    phases = np.radians(np.arange(T) * 360 / T)
    dyn = np.stack([disc_frame(SIZE, x0 + slide * t, radius, p) for t, p in zip(times, phases)])
    sta = np.stack([disc_frame(SIZE, x0, radius, p) for p in phases])
    front = np.stack([disc_frame(SIZE, x0 + slide * t, radius, 0.0) for t in times])
    if front_noise:
        front[1:] = np.random.default_rng(0).integers(0, 256, front[1:].shape, dtype=np.uint8)
    return {"dynamic": dyn, "static": sta, "front": front}


def test_moving_asset_is_kept_with_complete_json_safe_measures():
    d = decide(asset_json(), videos())
    assert d.decision == "keep" and d.reason is None and d.kept
    m = d.measures
    assert m["ssim_source"] == "front" and m["ssim_frame_pairs"] == [[0, 2], [0, 4]]
    assert all(0.4 <= v <= 0.95 for v in m["ssim"])
    assert m["frames_touching_border"] == 0 and m["coverage_min"] > 0.01
    assert m["motion_magnitude"] > 0 and m["rules_fired"] == [] and m["rules_skipped"] == {}
    json.dumps(d.to_json())  # plain JSON types only


def test_each_reason_fires_on_its_input():
    cases = {
        "no_animation": (asset_json(has_animation=False), None),
        "too_short": (asset_json(frame_range=(1, 6)), None),
        "too_static": (asset_json(max_disp=0.001), None),
        "import_failed": (asset_json(error={"kind": "unsupported_format", "reason": "unsupported format '.xyz'"}), None),
        "render_failed": (asset_json(error="timed out after 600 s"), None),
        "empty_render": (asset_json(), {k: np.zeros_like(v) for k, v in videos().items()}),
        "distorted": (asset_json(), videos(front_noise=True)),
        "leaves_frame": (asset_json(), videos(slide=0.1, x0=0.85)),
        "too_small": (asset_json(), videos(radius=0.04)),
    }
    for reason, (a, frames) in cases.items():
        d = decide(a, frames)
        assert d.reason == reason, (reason, d)
        assert d.decision == ("failed" if reason.endswith("_failed") else "reject")
        assert d.detail and reason in REASONS


def test_static_frames_are_too_static_by_ssim_when_geometry_barely_moves():
    d = decide(asset_json(max_disp=0.05), videos(slide=0.0))
    assert d.reason == "too_static" and d.measures["rules_fired"] == ["too_static"]
    assert all(v > 0.95 for v in d.measures["ssim"]) and "SSIM" in d.detail


def test_clear_geometric_motion_overrules_a_whole_frame_ssim_too_static():
    # A small moving part scores SSIM > 0.95 on a mostly empty frame; geometry shows it moves.
    still_looking = videos(slide=0.0)
    kept = decide(asset_json(max_disp=0.5), still_looking)
    assert kept.kept and "0.5" in kept.measures["ssim_too_static_overruled"]
    paper_only = decide(asset_json(max_disp=0.5), still_looking, CurationConfig(ssim_static_unless_geometric=None))
    assert paper_only.reason == "too_static"


def test_renderer_failure_kinds_map_to_import_or_render_failures():
    for kind, reason in (("missing_linked_files", "import_failed"), ("no_geometry", "import_failed"), ("timeout", "render_failed"), ("crashed", "render_failed")):
        d = decide(asset_json(error={"kind": kind, "reason": "why", "asset": "a.glb"}), videos())
        assert (d.decision, d.reason, d.measures["error_kind"]) == ("failed", reason, kind)
        assert d.detail == f"{kind}: why" and "ssim" not in d.measures


def test_first_rule_in_order_wins_and_all_fired_are_listed():
    d = decide(asset_json(frame_range=(1, 3), max_disp=0.0), videos(radius=0.04))
    assert d.reason == "too_short"
    assert d.measures["rules_fired"][:2] == ["too_short", "too_static"] and "too_small" in d.measures["rules_fired"]


def test_pre_pass_without_frames_uses_only_asset_json():
    d = decide(asset_json(), None)
    assert d.kept and "ssim" not in d.measures
    assert decide(asset_json(max_disp=0.005), None).reason == "too_static"
    assert decide(asset_json(max_disp=0.005), None, CurationConfig(min_geometric_max_displacement=0.001)).kept
    mean_rule = CurationConfig(min_geometric_mean_displacement=0.2)
    assert decide(asset_json(max_disp=0.5, mean_disp=0.1), None, mean_rule).reason == "too_static"


def test_quantifiers_change_which_ssim_pairs_must_cross():
    # One pair static (frames 0 and 2 equal), the other moving: "all" keeps, "any" rejects.
    frames = videos()
    frames["front"][2] = frames["front"][0]
    assert decide(asset_json(), frames).kept
    d = decide(asset_json(max_disp=0.05), frames, CurationConfig(too_static_when="any"))
    assert d.reason == "too_static" and d.measures["ssim"][0] == pytest.approx(1.0)
    # Distortion on one pair only: "any" (default) rejects, "all" keeps.
    frames = videos()
    frames["front"][4] = np.random.default_rng(1).integers(0, 256, frames["front"][4].shape, dtype=np.uint8)
    assert decide(asset_json(), frames).reason == "distorted"
    assert decide(asset_json(), frames, CurationConfig(distorted_when="all")).kept


def test_without_front_ssim_compares_dynamic_with_static_at_the_same_camera():
    frames = videos()
    del frames["front"]
    d = decide(asset_json(), frames)
    assert d.kept and d.measures["ssim_source"] == "dynamic_vs_static"
    still = videos(slide=0.0)
    del still["front"]
    assert decide(asset_json(max_disp=0.05), still).reason == "too_static"
    only_dynamic = {"dynamic": videos()["dynamic"]}
    d = decide(asset_json(), only_dynamic)
    assert "front_ssim" in d.measures["rules_skipped"] and "motion_magnitude" in d.measures["rules_skipped"]


def test_ssim_rule_is_skipped_when_it_cannot_compare_distinct_frames():
    frames = {k: v[:3] for k, v in videos().items()}  # T = 3: floor(0.25 * 3) = 0
    d = decide(asset_json(), frames)
    assert "too few" in d.measures["rules_skipped"]["front_ssim"] and "ssim" not in d.measures
    tiny = {k: v[:, :10, :10] for k, v in videos().items()}
    assert "smaller than" in decide(asset_json(), tiny).measures["rules_skipped"]["front_ssim"]


def test_border_tolerance_and_framing_videos():
    frames = videos(slide=0.1, x0=0.85)
    touching = decide(asset_json(), frames)
    assert touching.reason == "leaves_frame" and touching.measures["border_max_fraction"] > 0
    lenient = CurationConfig(border_tolerance=touching.measures["border_max_fraction"])
    assert decide(asset_json(), frames, lenient).kept
    # Only the front video leaves the frame: the default (orbits only) does not look at it.
    frames = videos()
    frames["front"] = videos(slide=0.1, x0=0.85)["front"]
    assert decide(asset_json(), frames).kept
    assert decide(asset_json(), frames, CurationConfig(frame_videos=("front",))).reason == "leaves_frame"


def test_motion_magnitude_threshold_is_optional():
    frames = videos(slide=0.02)
    d = decide(asset_json(), frames)
    m = d.measures["motion_magnitude"]
    assert m > 0
    assert decide(asset_json(), frames, CurationConfig(min_motion_magnitude=m * 2, ssim_too_static=1.0)).reason == "too_static"
    assert decide(dataclasses.replace(asset_json(), motion_magnitude=1e9), frames).measures["motion_magnitude"] == 1e9


def test_missing_or_nan_geometry_tests_nothing():
    a = asset_json()
    a.animation.geometric_motion = GeometricMotion(max_displacement=math.nan, mean_displacement=None)
    d = decide(a, None)
    assert d.kept and d.measures["geometric_max_displacement"] is None
    a.animation.geometric_motion = None
    assert "geometric_motion" in decide(a, None).measures["rules_skipped"]


def test_config_validation_and_round_trip():
    c = CurationConfig(ssim_pairs=((0.0, 0.5),), frame_videos=("dynamic",))
    assert CurationConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    for bad in (
        dict(ssim_distorted=0.9, ssim_too_static=0.5),
        dict(ssim_pairs=((0.0, 1.0),)),
        dict(too_static_when="most"),
        dict(coverage_statistic="mode"),
        dict(frame_videos=("side",)),
        dict(border_px=0),
    ):
        with pytest.raises(ValueError):
            CurationConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys"):
        CurationConfig.from_dict({"ssim_threshold": 0.9})


def test_decision_invariants():
    with pytest.raises(ValueError):
        Decision("keep", "too_static")
    with pytest.raises(ValueError):
        Decision("reject", None)
    with pytest.raises(ValueError):
        Decision("maybe", None)
