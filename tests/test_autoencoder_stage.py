"""The autoencoder stage: a from-scratch model's VAE is fitted on the shards' frames before the UNet trains.

Shards of rendered balls (d4d.testing.shards_helpers) written with the real shard writer; the
stage runs through d4d-train's own path (train_on_shards) and on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from d4d.shards.writer import write_shards
from d4d.testing.shards_helpers import make_shard_render
from d4d.testing.train_fixtures import single_thread
from d4d.training.architectures import build_vae, get_architecture
from d4d.training.autoencoder import fit_autoencoder, load_frames, reconstruction_psnr
from d4d.training.config import AutoencoderConfig, preset


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ae")
    renders = [make_shard_render(root / "renders", f"ball{i}", frames=8, size=16, videos=("dynamic", "static")) for i in range(3)]
    assert not write_shards(renders, root / "shards").failed
    return root / "shards"


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


def _vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return build_vae(get_architecture("tiny-modelscope"))


def test_frames_are_split_by_index_and_held_out_frames_are_never_trained_on(shards):
    frames = load_frames(shards, 16, 1.0, AutoencoderConfig(holdout_every=4))
    # 3 clips x 2 videos x 8 frames: frames 0 and 4 of each video are held out
    assert frames.train.shape == (36, 3, 16, 16) and frames.heldout.shape == (12, 3, 16, 16)
    assert frames.train.min() >= -1 and frames.train.max() <= 1
    for held in frames.heldout:
        assert not any(torch.equal(held, seen) for seen in frames.train)  # each ball frame differs (time, azimuth)
    capped = load_frames(shards, 8, 1.0, AutoencoderConfig(holdout_every=4, max_frames=12))
    assert len(capped.train) <= 12 and capped.train.shape[-1] == 8


def test_fitting_learns_to_reconstruct_held_out_frames_and_sets_the_latent_scale(shards, tmp_path):
    config = AutoencoderConfig(steps=150, batch_frames=8, learning_rate=2e-3, checkpointing_steps=1000, log_every=50)
    random_psnr = reconstruction_psnr(_vae(), load_frames(shards, 16, 1.0, config).heldout)
    vae = fit_autoencoder(_vae(), shards, tmp_path / "stage", config, 16, 1.0)
    metrics = json.loads((tmp_path / "stage" / "metrics.json").read_text())
    assert metrics["heldout_psnr"] > random_psnr + 10, (metrics["heldout_psnr"], random_psnr)
    assert metrics["heldout_psnr"] > 20
    frames = load_frames(shards, 16, 1.0, config)
    latents = torch.cat([vae.encode(frames.train).latent_dist.mode()]) * vae.config.scaling_factor
    assert latents.std().item() == pytest.approx(1.0, rel=1e-3)  # unit-variance latents for the UNet
    saved = AutoencoderKL.from_pretrained(tmp_path / "stage" / "vae")
    assert saved.config.scaling_factor == pytest.approx(vae.config.scaling_factor)
    assert [h["step"] for h in metrics["history"]] == [50, 100, 150]


def test_an_interrupted_stage_resumes_exactly(shards, tmp_path):
    """A stage killed after its step-20 checkpoint (of 40) and rerun ends with the weights of an
    uninterrupted 40-step fit, bit for bit; the checkpoint holds tensors and JSON only."""
    config = AutoencoderConfig(steps=40, batch_frames=4, checkpointing_steps=20, log_every=20)
    straight = fit_autoencoder(_vae(), shards, tmp_path / "straight", config, 16, 1.0)
    fit_autoencoder(_vae(), shards, tmp_path / "split", config, 16, 1.0)
    (tmp_path / "split" / "metrics.json").unlink()  # what a kill between step 20 and the end leaves:
    shutil.rmtree(tmp_path / "split" / "vae")  # the step-20 checkpoint alone
    state = load_file(str(tmp_path / "split" / "checkpoint" / "state.safetensors"))
    assert "state.generator" in state and any(k.startswith("state.optimizer.") for k in state)
    assert json.loads((tmp_path / "split" / "checkpoint" / "state.json").read_text())["step"] == 20
    resumed = fit_autoencoder(_vae(seed=1), shards, tmp_path / "split", config, 16, 1.0)  # other init: the checkpoint wins
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_foreign_checkpoint_is_refused_in_one_line(shards, tmp_path):
    config = AutoencoderConfig(steps=4, batch_frames=2, checkpointing_steps=2)
    fit_autoencoder(_vae(), shards, tmp_path / "stage", config, 16, 1.0)
    (tmp_path / "stage" / "metrics.json").unlink()
    shutil.rmtree(tmp_path / "stage" / "vae")
    state = json.loads((tmp_path / "stage" / "checkpoint" / "state.json").read_text())
    state["vae"].pop(next(iter(state["vae"])))  # a checkpoint of another VAE
    (tmp_path / "stage" / "checkpoint" / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="checkpoint/state.vae: expected the keys"):
        fit_autoencoder(_vae(), shards, tmp_path / "stage", config, 16, 1.0)


def test_a_rerun_with_other_settings_is_refused(shards, tmp_path):
    fit_autoencoder(_vae(), shards, tmp_path / "stage", AutoencoderConfig(steps=2, batch_frames=2), 16, 1.0)
    with pytest.raises(ValueError, match="other settings for \\['kl_weight'\\]"):
        fit_autoencoder(_vae(), shards, tmp_path / "stage", AutoencoderConfig(steps=2, batch_frames=2, kl_weight=1e-3), 16, 1.0)


def test_d4d_train_from_scratch_fits_the_vae_first_and_exports_it(shards, tmp_path):
    """The production path: no --pretrained, so RUN/autoencoder is fitted and the exported model's
    VAE is that one, not the preset's random VAE; --vae skips the stage."""
    from d4d.training.train import train_on_shards

    config = preset("tiny-text", num_frames=8, max_steps=2, checkpointing_steps=2, use_ema=False)
    model = train_on_shards(config, shards, tmp_path / "run")
    fitted = AutoencoderKL.from_pretrained(tmp_path / "run" / "autoencoder" / "vae")
    exported = AutoencoderKL.from_pretrained(model / "vae")
    random = _vae(config.seed)
    for (name, a), b in zip(fitted.state_dict().items(), exported.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, r) for a, r in zip(fitted.state_dict().values(), random.state_dict().values()))
    assert exported.config.scaling_factor == fitted.config.scaling_factor != random.config.scaling_factor
    assert json.loads((tmp_path / "run" / "autoencoder" / "metrics.json").read_text())["heldout_psnr"] is not None

    given = train_on_shards(config, shards, tmp_path / "run-given", vae=tmp_path / "run" / "model")
    assert not (tmp_path / "run-given" / "autoencoder").exists()
    for a, b in zip(fitted.state_dict().values(), AutoencoderKL.from_pretrained(given / "vae").state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="--vae"):
        train_on_shards(config, shards, tmp_path / "run-both", pretrained=model, vae=tmp_path / "run" / "model")
