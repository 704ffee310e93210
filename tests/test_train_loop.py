"""The training loop at tiny size on CPU: overfitting, exact resume, shards + latent cache, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from d4d.testing.train_fixtures import make_clips, single_thread
from d4d.training.backbone import Denoiser
from d4d.training.components import build_components
from d4d.training.config import preset
from d4d.training.data import Batch, EpochBatches, collate
from d4d.training.objective import batch_inputs, compute_losses, ldm_loss
from d4d.training.reference import STARTING_BACKBONE, pipeline_config
from d4d.training.schedules import training_schedule
from d4d.training.train import main, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each run builds its own Accelerator; reset accelerate's process-wide singletons between them."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_loss_is_finite_and_falls_on_a_fixed_batch():
    config = preset("tiny-text", p_uncond=0.0, p_no_motion=0.0)
    parts = build_components("text", "tiny-modelscope", seed=0)
    model = Denoiser(parts.unet, parts.motion_embedding, "text")
    batch: Batch = collate(make_clips(2), config.num_frames, config.resolution)
    z0, zbar, cond = batch_inputs(batch, parts, config, torch.device("cpu"), torch.Generator().manual_seed(0))
    schedule = training_schedule(parts.scheduler, config.edm_p_mean, config.edm_p_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        generator = torch.Generator().manual_seed(7)  # the same timesteps and noise every step
        loss = compute_losses(model, schedule, z0, zbar, cond, config, generator)
        assert torch.isfinite(loss.total) and torch.isfinite(loss.mr)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(loss.total.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weighting_caps_each_clips_weight_at_gamma(prediction_type):
    """Min-SNR-gamma: a clip at SNR below gamma keeps the plain weight (1 for epsilon, SNR / (SNR + 1)
    for v); one above it is weighted gamma / SNR (or gamma / (SNR + 1)); a huge gamma is plain MSE for epsilon."""
    parts = build_components("text", "tiny-modelscope", seed=0, prediction_type=prediction_type)
    schedule = training_schedule(parts.scheduler, 0.7, 1.6)
    alpha_bar = schedule.scheduler.alphas_cumprod[torch.tensor([999, 10])].float()  # SNR ~ 0.005 and ~ 1000
    prediction, target = torch.zeros(2, 3, 4), torch.stack([torch.full((3, 4), 1.0), torch.full((3, 4), 2.0)])
    per_clip = torch.tensor([1.0, 4.0])
    snr = alpha_bar / (1 - alpha_bar)
    assert snr[0] < 5 < snr[1]
    expected = torch.minimum(snr, torch.tensor(5.0)) / (snr if prediction_type == "epsilon" else snr + 1)
    got = ldm_loss(prediction, target, alpha_bar, schedule, snr_gamma=5.0)
    assert torch.allclose(got, (expected * per_clip).mean(), rtol=1e-5)
    plain = ldm_loss(prediction, target, alpha_bar, schedule, snr_gamma=None)
    assert torch.allclose(plain, per_clip.mean())
    if prediction_type == "epsilon":
        assert torch.allclose(ldm_loss(prediction, target, alpha_bar, schedule, snr_gamma=1e9), plain)


def test_a_shifted_schedule_divides_every_steps_snr_and_survives_the_model_folder(tmp_path):
    """noise_shift s: SNR'_t = SNR_t / s^2 at every step; the shift lives in the scheduler's config
    (trained_betas), so the exported folder samples and fine-tunes on the same schedule."""
    from d4d.training.schedules import load_scheduler, shifted_scheduler, stock_scheduler

    stock = stock_scheduler("modelscope")
    shifted = build_components("text", "tiny-modelscope", seed=0, prediction_type="v_prediction", noise_shift=4.0).scheduler
    snr = lambda s: (s.alphas_cumprod.double() / (1 - s.alphas_cumprod.double()))  # noqa: E731
    torch.testing.assert_close(snr(shifted) * 16, snr(stock), rtol=1e-4, atol=0)
    assert shifted.config.prediction_type == "v_prediction"
    shifted.save_pretrained(tmp_path / "scheduler")
    torch.testing.assert_close(load_scheduler(tmp_path).alphas_cumprod, shifted.alphas_cumprod)
    assert shifted_scheduler(stock, 1.0) is stock
    with pytest.raises(ValueError, match="noise_shift"):
        shifted_scheduler(stock_scheduler("svd"), 2.0)
    with pytest.raises(ValueError, match="noise_shift"):
        preset("tiny-text", noise_shift=0.0)


def test_min_snr_weighting_is_refused_on_edm_schedules():
    parts = build_components("image", "tiny-svd", seed=0)
    schedule = training_schedule(parts.scheduler, 0.7, 1.6)
    with pytest.raises(ValueError, match="snr_gamma"):
        ldm_loss(torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([0.5]), schedule, snr_gamma=5.0)


def run_config(**overrides):
    values = dict(max_steps=3, checkpointing_steps=2, train_batch_size=1, gradient_accumulation_steps=2,
                  learning_rate=1e-3, log_every=1, p_uncond=0.3, p_no_motion=0.3, validation_steps=2)
    values.update(overrides)
    return preset("tiny-image", **values)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    """3 clips, batch 1, 2 micro-batches per step: the interruption falls mid-epoch, and resuming
    must reproduce data order, noise, dropout, optimizer, LR schedule and EMA bit for bit. The
    uninterrupted run validates at step 2 (its UNet has dropout): that must not change step 3."""
    clips = make_clips(3)
    straight = tmp_path / "straight"
    train(run_config(), EpochBatches(clips, 1, seed=0), straight)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()

    split = tmp_path / "split"
    train(run_config(max_steps=2), EpochBatches(clips, 1, seed=0), split)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    train(run_config(), EpochBatches(clips, 1, seed=0), split, resume="latest")

    a = load_file(straight / "checkpoints" / "step-000003" / "model.safetensors")
    b = load_file(split / "checkpoints" / "step-000003" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    start = load_file(split / "checkpoints" / "step-000002" / "model.safetensors")
    assert any(not torch.equal(a[k], start[k]) for k in a)  # steps 3-4 did change the weights
    for part in ("unet", "motion_embedding"):  # the exported (EMA) model too
        ea = load_file(next((straight / "model" / part).glob("*.safetensors")))
        eb = load_file(next((split / "model" / part).glob("*.safetensors")))
        assert all(torch.equal(ea[k], eb[k]) for k in ea)
    state = json.loads((split / "checkpoints" / "step-000003" / "process-0.json").read_text())["train"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 3)  # 6 micro-batches: epoch 0 and all of epoch 1


def test_resume_refuses_a_run_started_with_other_settings(tmp_path):
    train(run_config(max_steps=1, checkpointing_steps=1), EpochBatches(make_clips(2), 1, seed=0), tmp_path)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    with pytest.raises(ValueError, match="learning_rate"):
        train(run_config(learning_rate=5e-4), EpochBatches(make_clips(2), 1, seed=0), tmp_path, resume="latest")


def test_cli_trains_from_shards_with_cached_latents(tmp_path):
    """d4d-train on real shards (shards.writer), caching latents and text embeddings into them."""
    from d4d.shards.writer import write_shards
    from d4d.testing.shards_helpers import make_shard_render
    from d4d.training.latent_cache import producers, usable_cached_columns

    renders = [make_shard_render(tmp_path / "renders", f"ball{i}", frames=4, size=16, caption=f"ball {i}")
               for i in range(3)]
    report = write_shards(renders, tmp_path / "shards")
    assert not report.failed
    run = tmp_path / "run"
    argv = ["--shards", str(tmp_path / "shards"), "--output", str(run), "--config", "tiny-text", "--max-steps", "2",
            "--checkpointing-steps", "1", "--validation-steps", "2", "--cache-latents"]
    assert main(argv) == 0
    from diffusers import AutoencoderKL

    parts = build_components("text", "tiny-modelscope", seed=0)
    parts.vae = AutoencoderKL.from_pretrained(run / "autoencoder" / "vae")  # a from-scratch run's latents are its fitted VAE's
    config = json.loads((run / "train_config.json").read_text())
    assert config["max_steps"] == 2 and config["task"] == "text"
    expected = producers(parts, preset("tiny-text"))
    assert sorted(usable_cached_columns(tmp_path / "shards", expected)) == ["latents_dynamic", "latents_static", "text_embedding"]
    assert (run / "model" / "model_index.json").is_file()
    assert (run / "validation" / "step-000002.mp4").stat().st_size > 0
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    assert main(argv[:-1] + ["--max-steps", "3", "--resume", "latest"]) == 0
    assert (run / "checkpoints" / "step-000003").is_dir()


def test_cli_reports_bad_arguments_in_one_line(tmp_path, caplog):
    assert main(["--shards", str(tmp_path), "--output", str(tmp_path / "run"), "--config", "tiny-text"]) == 2
    assert "no shards" in caplog.text
    assert main(["--shards", str(tmp_path), "--output", str(tmp_path / "run"), "--config", "nope"]) == 2
    assert "unknown preset 'nope'" in caplog.text
    assert main(["--shards", str(tmp_path), "--output", str(tmp_path / "run"), "--num-train-timesteps", "500"]) == 2
    assert "--num-train-timesteps was removed: the noise schedule is the backbone's own" in caplog.text
    from d4d.shards.writer import write_shards
    from d4d.testing.shards_helpers import make_shard_render

    renders = [make_shard_render(tmp_path / "renders", f"ball{i}", frames=4, size=16) for i in range(2)]
    assert not write_shards(renders, tmp_path / "shards").failed
    assert main(["--shards", str(tmp_path / "shards"), "--output", str(tmp_path / "run"), "--config", "tiny-text", "--task", "image"]) == 2
    assert "task 'image' cannot run on the modelscope backbone" in caplog.text


def test_cli_fine_tunes_a_local_pretrained_text_to_video_folder(tmp_path):
    """--pretrained: a stock diffusers text-to-video folder (no motion_embedding/, as ModelScope ships)."""
    from d4d.shards.writer import write_shards
    from d4d.testing.shards_helpers import make_shard_render

    source = build_components("text", "tiny-modelscope", seed=3)
    folder = tmp_path / "t2v"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        getattr(source, name).save_pretrained(folder / name)
    renders = [make_shard_render(tmp_path / "renders", f"ball{i}", frames=4, size=16, caption=f"ball {i}") for i in range(2)]
    assert not write_shards(renders, tmp_path / "shards").failed
    run = tmp_path / "run"
    assert main(["--shards", str(tmp_path / "shards"), "--output", str(run), "--config", "tiny-text", "--pretrained", str(folder),
                 "--max-steps", "2", "--validation-steps", "0"]) == 0
    trained = load_file(next((run / "model" / "unet").glob("*.safetensors")))
    start = source.unet.state_dict()
    # Training started from the pretrained weights (same shapes, close values after two small steps), not from scratch.
    assert set(trained) == set(start)
    drift = max((trained[k].float() - start[k].float()).abs().max().item() for k in start)
    assert 0 < drift < 1e-2
    motion = load_file(next((run / "model" / "motion_embedding").glob("*.safetensors")))
    assert any(v.abs().sum() > 0 for v in motion.values())
    # The starting folder is kept as the run's reference, marked as what it is: not a static-orbit model.
    recorded = pipeline_config(run / "model")
    assert recorded["static_reference"] == str(folder.resolve()) and recorded["static_reference_kind"] == STARTING_BACKBONE
