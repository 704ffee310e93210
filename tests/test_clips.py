"""Clips a researcher would cut from real-shaped assets: one per animation, short windows chosen by
motion, textures that cannot be decoded caught, and the second orbit. Real Blender throughout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import requires_bpy

from d4d.curation.procedure import DecisionConfig, StagedDecision
from d4d.rendering.api import AssetPolicy
from d4d.rendering.clips import clip_id
from d4d.rendering.contract import load_render
from d4d.rendering.errors import AssetError
from d4d.rendering.options import PRESETS, RenderOptions
from d4d.testing.wild_assets import CHARACTER_ACTIONS

pytestmark = [requires_bpy, pytest.mark.blender]

QUICK = dict(engine="workbench", resolution=32, frames=8)


def decide_all(renderer, path, tmp_path, **render):
    config = DecisionConfig(render=RenderOptions(**{**QUICK, **render}), prepass_resolution=32)
    return StagedDecision(config, renderer, tmp_path / "scratch").run(path, "asset", tmp_path / "renders", tmp_path / "previews")


@pytest.mark.parametrize("name", ["character", "soldier"])
def test_every_animation_is_a_clip_and_a_t_pose_is_rejected_on_its_own(renderer, wild_assets, tmp_path, name):
    (tmp_path / "scratch").mkdir()
    outcomes = decide_all(renderer, wild_assets[name], tmp_path)
    by_action = {o.action: o for o in outcomes}
    assert sorted(by_action) == sorted(CHARACTER_ACTIONS)  # glTF animations and FBX takes alike
    assert len({o.clip_id for o in outcomes}) == len(outcomes) and all(o.clip_id.startswith("asset--") for o in outcomes)
    tpose = by_action["TPose"]
    assert (tpose.decision.decision, tpose.decision.reason, tpose.stage) == ("reject", "no_animation", "precheck")
    for action in ("Walk", "Jump"):  # moving siblings are judged on their own motion, not the T-pose's
        assert by_action[action].decision.kept, (action, by_action[action].decision.detail)
        asset = json.loads((by_action[action].render_dir / "asset.json").read_text())
        assert asset["animation"]["action"] == action and asset["animation"]["has_animation"]
        assert asset["animation"]["actions"] == sorted(CHARACTER_ACTIONS)  # the names --action takes, FBX takes too
    # Clip ids are stable: planning again gives the same ids.
    again = renderer.open(wild_assets[name]).clips(RenderOptions(**QUICK))
    assert sorted(clip_id("asset", p) for p in again) == sorted(o.clip_id for o in outcomes)


def test_a_20_second_animation_becomes_windows_of_video_rate_samples_chosen_by_motion(renderer, wild_assets, tmp_path):
    options = RenderOptions(engine="workbench", resolution=32, frames=24)
    opened = renderer.open(wild_assets["dance_20s"])
    plans = opened.clips(options)
    assert 2 <= len(plans) <= options.max_windows_per_action
    fps = opened.description["fps"]
    for plan in plans:
        steps = np.diff(plan.sampling.frames) / fps
        assert len(plan.sampling.frames) == 24 and steps.max() <= options.max_sample_step_s + 1e-9
    starts = sorted((p.window.start, p.window.end) for p in plans)
    assert all(b[0] >= a[1] - 1e-6 for a, b in zip(starts, starts[1:])), "windows overlap"
    best = next(p for p in plans if p.window.rank == 0)
    burst = (1 + 9 * fps, 1 + 12 * fps)  # the dance's burst of motion, 9-12 s
    assert best.window.start < burst[1] and best.window.end > burst[0], "the most moving window misses the burst"
    asset = opened.render(best, tmp_path / "best", options)
    window = json.loads((tmp_path / "best" / "asset.json").read_text())["animation"]["window"]
    assert window["rank"] == 0 and window["candidates"] > len(plans) and window["end_s"] - window["start_s"] == pytest.approx(23 / 8)
    assert asset.animation.window == window and "by motion" in asset.animation.reason
    # The previous behaviour, on request: the whole 20 s squeezed into one clip of 24 frames.
    (squeezed,) = opened.clips(RenderOptions(engine="workbench", resolution=32, frames=24, max_sample_step_s=None))
    assert np.diff(squeezed.sampling.frames).max() / fps > 0.8


def test_short_animations_still_give_t_frames_and_the_paper_preset_plays_frames_0_to_23(renderer, builtin_assets, tmp_path):
    opened = renderer.open(builtin_assets["rigid"])  # 47 frames: shorter than one 24-frame window at 1/8 s
    (plan,) = opened.clips(RenderOptions(frames=24))
    assert len(plan.sampling.frames) == 24 and (plan.sampling.start, plan.sampling.end) == (1.0, 48.0)
    (paper,) = opened.clips(RenderOptions(**PRESETS["paper"]))
    np.testing.assert_array_equal(paper.sampling.frames, np.arange(24.0))


def test_an_undecodable_texture_fails_the_asset_unless_allowed_and_then_is_recorded(renderer, wild_assets, tmp_path):
    path = wild_assets["broken_texture"]
    with pytest.raises(AssetError) as err:
        renderer.render(path, tmp_path / "strict", RenderOptions(**QUICK))
    assert err.value.kind == "unreadable_texture" and "skin.jpg" in err.value.reason and not (tmp_path / "strict").exists()
    asset = renderer.render(path, tmp_path / "untextured", RenderOptions(**QUICK, videos=("front",)), policy=AssetPolicy(allow_untextured=True))
    assert asset.warnings == ["unreadable_texture: rendered without skin.jpg"] and asset.policy == {"allow_untextured": True}
    assert json.loads((tmp_path / "untextured" / "asset.json").read_text())["policy"] == {"allow_untextured": True}
    rgba = load_render(tmp_path / "untextured").videos["front"].rgba.astype(int)
    covered = rgba[..., 3] > 200
    magenta = (rgba[..., 0] > 200) & (rgba[..., 1] < 60) & (rgba[..., 2] > 200)
    assert covered.any() and not (magenta & covered).any(), "Blender's missing-texture magenta was rendered"

    import pyarrow.parquet as pq

    from d4d.shards.files import list_shards
    from d4d.shards.writer import ShardWriteConfig, write_shards

    write_shards([tmp_path / "untextured"], tmp_path / "shards", ShardWriteConfig(codec="lossless"))
    (shard,) = list_shards(tmp_path / "shards")  # the folder also holds the dataset card, README.md
    row = pq.read_table(shard, columns=["warnings", "asset_json"]).to_pylist()[0]
    assert row["warnings"] == asset.warnings and json.loads(row["asset_json"])["warnings"] == asset.warnings


def test_the_second_orbit_starts_at_a_random_azimuth_recorded_and_sharded(renderer, builtin_assets, tmp_path):
    options = RenderOptions(**QUICK, orbits=2, max_sample_step_s=None)
    renderer.render(builtin_assets["rigid"], tmp_path / "rigid", options)
    renderer.render(builtin_assets["rigid"], tmp_path / "again", options)
    renderer.render(builtin_assets["skinned"], tmp_path / "skinned", options)
    sample = load_render(tmp_path / "rigid")
    assert set(sample.videos) == {"dynamic", "static", "front", "dynamic2", "static2"}
    start = sample.videos["dynamic2"].azimuths_deg[0]
    assert start != sample.videos["dynamic"].azimuths_deg[0]
    np.testing.assert_allclose(np.diff(sample.videos["dynamic2"].azimuths_deg), 360 / 8)
    np.testing.assert_array_equal(sample.videos["dynamic2"].times, sample.videos["dynamic"].times)
    assert np.all(sample.videos["static2"].times == 0)
    assert load_render(tmp_path / "again").videos["dynamic2"].azimuths_deg[0] == start  # a rerun draws the same
    assert load_render(tmp_path / "skinned").videos["dynamic2"].azimuths_deg[0] != start  # another asset, another draw
    transforms = json.loads((tmp_path / "rigid" / "transforms.json").read_text())
    assert {f["video"] for f in transforms["frames"]} >= {"dynamic2", "static2"}
    from d4d.shards.dataset import ShardDataset
    from d4d.shards.writer import ShardWriteConfig, write_shards

    write_shards([tmp_path / "rigid"], tmp_path / "shards", ShardWriteConfig(codec="lossless"))
    (decoded,) = list(ShardDataset(tmp_path / "shards", videos=("dynamic2", "static2"), shuffle=False))
    assert decoded["dynamic2_video"].shape == (8, 3, 32, 32) and decoded["dynamic2_c2w"].shape == (8, 4, 4)
