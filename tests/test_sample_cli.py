"""d4d-sample and Diffusion4DPipeline at tiny size: render-contract output, the static reference, the guidance branches."""

from __future__ import annotations

import dataclasses
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from PIL import Image

from d4d.rendering.contract import load_render
from d4d.testing.stock_folders import STOCK_FOLDERS
from d4d.testing.train_fixtures import make_clips, single_thread
from d4d.training.config import preset
from d4d.training.data import EpochBatches
from d4d.training.pipeline import Diffusion4DPipeline
from d4d.training.reference import STARTING_BACKBONE, STATIC_ORBIT_MODEL, pipeline_config, starting_reference
from d4d.training.sample import main
from d4d.training.train import make_components, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


def train_tiny(run, config_name: str, pretrained=None, **overrides):
    config = preset(config_name, max_steps=2, checkpointing_steps=2, learning_rate=1e-2, use_ema=False, **overrides)
    reference = starting_reference(pretrained) if config.target == "dynamic" else (None, None)
    train(config, EpochBatches(make_clips(2), 1, seed=0), run, make_components(config, pretrained), reference=reference)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Run directories of tiny models trained for two steps: "text" (from scratch, no reference),
    "static-base" (d4d-train --target static) and "static" (the 4D model fine-tuned from it)."""
    out = {"text": train_tiny(tmp_path_factory.mktemp("run-text"), "tiny-text"),
           "static-base": train_tiny(tmp_path_factory.mktemp("run-static-base"), "tiny-static", target="static")}
    out["static"] = train_tiny(tmp_path_factory.mktemp("run-static"), "tiny-static", pretrained=out["static-base"] / "model")
    return out


@pytest.fixture(scope="module")
def static_render(tmp_path_factory):
    from d4d.testing.shards_helpers import make_shard_render

    return make_shard_render(tmp_path_factory.mktemp("renders"), "ball", frames=4, size=32)


def test_text_sample_is_a_render_directory_d4d_reconstruct_can_read(runs, tmp_path):
    out = tmp_path / "out"
    assert main(["--model", str(runs["text"]), "--out", str(out), "--prompt", "a red ball", "--steps", "2",
                 "--motion-magnitude", "400", "--static-reference", "zero-motion", "--device", "cpu"]) == 0
    render = load_render(out)
    video = render.videos["dynamic"]
    assert video.rgba.shape == (4, 16, 16, 4) and video.rgba.dtype == np.uint8
    assert np.allclose(video.times, [0, 1 / 3, 2 / 3, 1])
    assert np.allclose(video.azimuths_deg, [0, 90, 180, 270])
    assert np.allclose(np.linalg.norm(video.c2w[:, :3, 3], axis=1), 2.0)
    assert np.allclose(video.c2w[:, 2, 3], 0.0)  # elevation 0
    assert math.degrees(render.camera_angle_x) == pytest.approx(49.13, abs=0.01)
    assert render.asset.generated["motion_magnitude"] == 400
    assert iio.imread(out / "dynamic.mp4", plugin="pyav").shape[0] == 4


def test_a_run_fine_tuned_from_a_static_model_keeps_it_as_the_default_reference(runs, static_render, tmp_path):
    base, recorded = runs["static-base"] / "model", pipeline_config(runs["static"] / "model")
    assert pipeline_config(base)["target"] == "static" and not (base / "motion_embedding").exists()
    assert recorded["static_reference"] == str(base.resolve()) and recorded["static_reference_kind"] == STATIC_ORBIT_MODEL
    out = tmp_path / "out"
    assert main(["--model", str(runs["static"]), "--out", str(out), "--static", str(static_render), "--steps", "2",
                 "--device", "cpu"]) == 0
    assert load_render(out).videos["dynamic"].rgba.shape == (4, 16, 16, 4)
    # the old spelling of the same choice still works
    assert main(["--model", str(runs["static"]), "--out", str(tmp_path / "old"), "--static", str(static_render), "--steps", "2",
                 "--static-reference", "frozen", "--static-model", str(runs["static-base"]), "--device", "cpu"]) == 0
    # the static model itself samples static orbits: no m, no 3D-aware term
    assert main(["--model", str(runs["static-base"]), "--out", str(tmp_path / "base"), "--static", str(static_render),
                 "--steps", "2", "--device", "cpu"]) == 0


def test_cli_errors_name_the_missing_input(runs, tmp_path, caplog):
    assert main(["--model", str(runs["text"]), "--out", str(tmp_path / "o")]) == 2
    assert "give --prompt" in caplog.text
    assert main(["--model", str(runs["text"]), "--out", str(tmp_path / "o"), "--prompt", "a ball"]) == 2
    assert "needs a static reference and the model records none" in caplog.text
    assert main(["--model", str(runs["static-base"]), "--out", str(tmp_path / "o"), "--static", str(tmp_path),
                 "--w2", "0.5"]) == 2
    assert main(["--model", str(runs["static"]), "--out", str(tmp_path / "o")]) == 2
    assert "give --static" in caplog.text
    assert main(["--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "model_index.json" in caplog.text


def sample(pipe, seed=0, **kwargs):
    noise = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
    return pipe(prompt="a red ball", num_inference_steps=3, latents=noise, **kwargs).latents


def test_guidance_branches_of_the_pipeline(runs):
    pipe = Diffusion4DPipeline.from_pretrained(runs["text"] / "model")
    conditional = sample(pipe, w1=0.0, w2=0.0, motion_magnitude=400.0)
    assert conditional.shape == (1, 4, 4, 8, 8) and torch.isfinite(conditional).all()
    # the unconditional branch matters (text dropped), so does the zero-motion shortcut (m = 0) once trained
    assert not torch.allclose(sample(pipe, w1=7.0, w2=0.0, motion_magnitude=400.0), conditional)
    zero_motion = sample(pipe, w1=0.0, w2=0.5, motion_magnitude=400.0, static_reference="zero-motion")
    assert not torch.allclose(zero_motion, conditional)
    # a separate reference that is this very model, given the conditions without m, is the zero-motion branch
    separate = sample(pipe, w1=0.0, w2=0.5, motion_magnitude=400.0, static_reference="static-model",
                      static_denoiser=pipe.denoiser())
    assert torch.allclose(separate, zero_motion, atol=1e-5)
    with pytest.raises(ValueError, match="needs static_denoiser"):
        sample(pipe, w1=0.0, w2=0.5)
    # at motion 0 the conditional prediction is the zero-motion branch: that w2 term vanishes
    assert torch.allclose(sample(pipe, w1=0.0, w2=0.5, motion_magnitude=0.0, static_reference="zero-motion"),
                          sample(pipe, w1=0.0, w2=0.0, motion_magnitude=0.0), atol=1e-5)


def test_a_static_3d_sample_carries_its_input_static_orbit_for_the_coarse_stage(runs, static_render, tmp_path):
    out = tmp_path / "out"
    assert main(["--model", str(runs["static"]), "--out", str(out), "--static", str(static_render), "--steps", "2", "--device", "cpu"]) == 0
    sample, given = load_render(out), load_render(static_render)
    assert list(sample.videos) == ["dynamic", "static"]
    static = sample.videos["static"]
    assert static.rgba.shape == (4, 16, 16, 4)  # at the sample's size
    np.testing.assert_allclose(static.c2w, given.videos["static"].c2w)
    assert np.all(static.times == 0) and static.rgba[..., 3].max() == 255


def test_a_text_sample_gets_a_static_orbit_from_the_static_model_for_the_coarse_stage(tmp_path):
    """A text model fine-tuned from a static base: the sample carries a static orbit the base
    sampled from the same prompt (at time 0, on the same cameras), unless --static-orbit none."""
    base = train_tiny(tmp_path / "base", "tiny-text", target="static")
    run = train_tiny(tmp_path / "run", "tiny-text", pretrained=base / "model")
    out = tmp_path / "out"
    assert main(["--model", str(run), "--out", str(out), "--prompt", "a red ball", "--steps", "2", "--device", "cpu"]) == 0
    sample = load_render(out)
    assert list(sample.videos) == ["dynamic", "static"]
    dynamic, static = sample.videos["dynamic"], sample.videos["static"]
    assert static.rgba.shape == dynamic.rgba.shape and np.all(static.times == 0)
    np.testing.assert_allclose(static.c2w, dynamic.c2w)
    assert not np.array_equal(static.rgba, dynamic.rgba)  # another model's output, not a copy
    assert main(["--model", str(run), "--out", str(tmp_path / "alone"), "--prompt", "a red ball", "--steps", "2",
                 "--static-orbit", "none", "--device", "cpu"]) == 0
    assert list(load_render(tmp_path / "alone").videos) == ["dynamic"]


def test_samples_use_the_orbit_the_model_was_trained_on(tmp_path):
    """Train on shards rendered on a closed, raised orbit; the sample's transforms.json has exactly
    those cameras (and mixed layouts are refused when training)."""
    from d4d.rendering.orbits import OrbitLayout, layout_videos
    from d4d.shards.writer import write_shards
    from d4d.testing.shards_helpers import make_shard_render
    from d4d.training.train import train_on_shards

    layout = OrbitLayout(frames=4, distance=2.5, elevation_deg=20.0, fov_deg=40.0, azimuth_start_deg=30.0, closed=True)
    two_orbits = dataclasses.replace(layout, second_start_deg=200.0)  # rendered with --orbits 2: trained on with second_orbit
    renders = [make_shard_render(tmp_path / "renders", f"ball{i}", frames=4, size=32, layout=two_orbits,
                                 videos=("dynamic", "static", "dynamic2", "static2")) for i in range(2)]
    assert not write_shards(renders, tmp_path / "shards").failed
    config = preset("tiny-text", max_steps=1, checkpointing_steps=1, use_ema=False, second_orbit=0.5)
    model = train_on_shards(config, tmp_path / "shards", tmp_path / "run")
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    assert OrbitLayout.from_dict(pipeline_config(model)["orbit_layout"]) == layout  # the first orbit's cameras
    out = tmp_path / "sample"
    assert main(["--model", str(tmp_path / "run"), "--out", str(out), "--prompt", "a ball", "--steps", "1", "--w2", "0", "--device", "cpu"]) == 0
    video = load_render(out).videos["dynamic"]
    expected = layout_videos(layout, ("dynamic",), np.linspace(0, 1, 4))["dynamic"]
    np.testing.assert_allclose(video.c2w, expected.c2w, atol=1e-9)
    np.testing.assert_allclose(video.azimuths_deg, [30, 150, 270, 390])  # closed: the last view repeats the first pose
    assert math.degrees(load_render(out).camera_angle_x) == pytest.approx(40.0)

    make_shard_render(tmp_path / "renders", "other", frames=4, size=32)  # d4d's default orbit
    write_shards([tmp_path / "renders" / "other"], tmp_path / "shards")
    with pytest.raises(ValueError, match="2 orbit layouts"):
        train_on_shards(config, tmp_path / "shards", tmp_path / "run2")


@pytest.mark.parametrize(("backbone", "config_name"), [("modelscope", "tiny-text"), ("i2vgen-xl", "tiny-image"),
                                                       ("svd", "tiny-image-svd")])
def test_a_model_fine_tuned_from_a_stock_folder_samples_with_defaults(tmp_path, backbone, config_name):
    """Fine-tuned straight from a stock diffusers folder: d4d-sample with only the condition uses
    that folder as ebar and samples the static orbit from it on the model's own task (the stock
    model's conventions: no motion embedding, no caption prefix), on the sample's cameras."""
    stock = STOCK_FOLDERS[backbone](tmp_path / "stock")
    run = train_tiny(tmp_path / "run", config_name, pretrained=stock)
    recorded = pipeline_config(run / "model")
    assert recorded["static_reference"] == str(stock.resolve()) and recorded["static_reference_kind"] == STARTING_BACKBONE
    condition = ["--prompt", "a red ball"]
    if backbone != "modelscope":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "front.png")
        condition = ["--image", str(tmp_path / "front.png")]
    out = tmp_path / "out"
    assert main(["--model", str(run), "--out", str(out), *condition, "--steps", "2", "--device", "cpu"]) == 0
    sample = load_render(out)
    assert list(sample.videos) == ["dynamic", "static"]
    dynamic, static = sample.videos["dynamic"], sample.videos["static"]
    assert static.rgba.shape == dynamic.rgba.shape == (4, 16, 16, 4) and np.all(static.times == 0)
    np.testing.assert_allclose(static.c2w, dynamic.c2w)
    assert sample.asset.generated["static_model"] == str(stock.resolve()) and sample.asset.generated["w2"] == 0.5
