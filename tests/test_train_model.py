"""The paper's additions to the video UNets, at tiny size: motion MLP, static channels, L_mr, guidance."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from d4d.testing.train_fixtures import single_thread
from d4d.training import architectures as arch_lib
from d4d.training.backbone import Conditions, Denoiser, assert_materialised, widen_conv_in
from d4d.training.components import build_components, load_components
from d4d.training.config import preset
from d4d.training.guidance import guided_prediction
from d4d.training.motion import MotionEmbedding, latent_motion_magnitude, motion_reconstruction_loss
from d4d.training.objective import drop_conditions
from d4d.training.schedules import clean_estimate, stock_scheduler, training_schedule, with_prediction_type


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


T, C, H = 4, 4, 8


def conditions(task: str, batch: int = 2, motion: float = 300.0, seed: int = 0) -> Conditions:
    """Random conditions of every kind a tiny model of ``task`` may read (text is ignored by SVD)."""
    g = torch.Generator().manual_seed(seed)
    cond = Conditions(motion=torch.full((batch,), motion), text_embeddings=torch.randn(batch, 32, 32, generator=g))
    if task != "text":
        cond.image_embeddings = torch.randn(batch, 1, 32, generator=g)
        cond.image_latents = torch.randn(batch, C, H, H, generator=g)
    if task == "static":
        cond.static_latents = torch.randn(batch, T, C, H, H, generator=g)
    return cond


def denoiser(config: str) -> Denoiser:
    """The tiny model of preset ``config`` (e.g. "tiny-image-svd")."""
    task, architecture = preset(config).task, preset(config).architecture
    parts = build_components(task, architecture, seed=0)
    return Denoiser(parts.unet, parts.motion_embedding, task, static_input=parts.static_input).eval()


def run(model: Denoiser, cond: Conditions, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noisy = torch.randn(cond.motion.shape[0], T, C, H, H, generator=g)
    with torch.no_grad():
        return model(noisy, torch.tensor([10, 700]), cond)


@pytest.mark.parametrize("config", ["tiny-text", "tiny-image", "tiny-image-svd"])
def test_zero_initialised_motion_mlp_has_no_effect_until_trained(config):
    model, task = denoiser(config), preset(config).task
    out_static, out_moving = run(model, conditions(task, motion=0.0)), run(model, conditions(task, motion=5000.0))
    assert out_static.shape == (2, T, C, H, H)
    assert torch.equal(out_static, out_moving)
    with torch.no_grad():
        model.motion_embedding.linear_2.weight.normal_()
    assert not torch.allclose(run(model, conditions(task, motion=0.0)), run(model, conditions(task, motion=5000.0)))


@pytest.mark.parametrize("config", ["tiny-static", "tiny-static-svd"])
def test_zero_initialised_static_channels_have_no_effect_until_trained(config):
    """SVD: the widened conv_in's new channels; I2VGen-XL: the StaticOrbitInput added to conv_in."""
    model = denoiser(config)
    with_static = conditions("static")
    without = conditions("static")
    without.static_latents = torch.zeros_like(without.static_latents)
    assert torch.equal(run(model, with_static), run(model, without))
    with torch.no_grad():
        weight = model.static_input.conv.weight if model.static_input is not None else model.unet.conv_in.weight[:, 8:]
        weight.normal_()
    assert not torch.allclose(run(model, with_static), run(model, without))


def test_widen_conv_in_copies_old_weights_and_zeroes_new_channels():
    torch.manual_seed(0)
    unet = arch_lib.build_unet(arch_lib.get_architecture("tiny-svd"))
    old_weight, old_bias = unet.conv_in.weight.detach().clone(), unet.conv_in.bias.detach().clone()
    widen_conv_in(unet, 12)
    assert unet.conv_in.in_channels == 12 and unet.config.in_channels == 12
    assert torch.equal(unet.conv_in.weight[:, :8], old_weight) and torch.equal(unet.conv_in.bias, old_bias)
    assert torch.count_nonzero(unet.conv_in.weight[:, 8:]) == 0
    with pytest.raises(ValueError, match="cannot narrow"):
        widen_conv_in(unet, 4)


def test_pretrained_image_unet_is_widened_for_the_static_task_without_meta_tensors(tmp_path):
    """A Stable-Video-Diffusion-layout folder (conv_in of 8 channels) loads as a 12-channel static model."""
    source = build_components("image", "tiny-svd", seed=3)
    for name in ("unet", "vae", "image_encoder"):
        getattr(source, name).save_pretrained(tmp_path / name)
    source.scheduler.save_pretrained(tmp_path / "scheduler")
    loaded = load_components(tmp_path, "static")
    conv = loaded.unet.conv_in
    assert conv.in_channels == 12
    assert torch.equal(conv.weight[:, :8], source.unet.conv_in.weight)
    assert torch.count_nonzero(conv.weight[:, 8:]) == 0
    for module in (loaded.unet, loaded.motion_embedding, loaded.vae, loaded.image_encoder):
        assert not any(p.is_meta for p in module.parameters())
        assert all(torch.isfinite(p).all() for p in module.parameters())
    reloaded = UNetSpatioTemporalConditionModel.from_pretrained(tmp_path / "unet")
    assert reloaded.conv_in.in_channels == 8  # the source folder is untouched
    with pytest.raises(ValueError, match="task 'text' cannot run on the svd backbone"):
        load_components(tmp_path, "text")


def test_assert_materialised_rejects_meta_and_nan():
    with torch.device("meta"):
        meta = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="meta device"):
        assert_materialised(meta, "layer")
    bad = torch.nn.Linear(2, 2)
    with torch.no_grad():
        bad.bias[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        assert_materialised(bad, "layer")


def test_motion_embedding_round_trips_in_diffusers_format(tmp_path):
    emb = MotionEmbedding(time_embed_dim=12, hidden_dim=5)
    with torch.no_grad():
        emb.linear_2.weight.normal_()
    emb.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    again = MotionEmbedding.from_pretrained(tmp_path)
    assert again.config.time_embed_dim == 12 and again.config.hidden_dim == 5
    m = torch.tensor([0.0, 10.0, 2000.0])
    assert torch.equal(emb(m), again(m))


def test_latent_motion_magnitude_and_reconstruction_loss():
    g = torch.Generator().manual_seed(0)
    z0, zbar = torch.randn(3, T, C, H, H, generator=g), torch.randn(3, T, C, H, H, generator=g)
    assert torch.equal(latent_motion_magnitude(zbar, zbar), torch.zeros(3))
    expected = ((z0 - zbar) ** 2).mean(dim=(2, 3, 4)).mean(dim=1)
    assert torch.allclose(latent_motion_magnitude(z0, zbar), expected)
    assert motion_reconstruction_loss(z0, z0.clone(), zbar).item() == 0.0
    z0_hat = z0 + 0.3 * torch.randn(z0.shape, generator=g)
    loss = motion_reconstruction_loss(z0, z0_hat, zbar)
    assert loss.item() > 0
    weights = torch.tensor([1.0, 0.0, 0.0])
    first_only = (latent_motion_magnitude(z0, zbar)[0] - latent_motion_magnitude(z0_hat, zbar)[0]) ** 2 / 3
    assert torch.allclose(motion_reconstruction_loss(z0, z0_hat, zbar, weights), first_only)


@pytest.mark.parametrize(("backbone", "prediction_type"), [("modelscope", "epsilon"), ("modelscope", "v_prediction"),
                                                          ("i2vgen-xl", None), ("svd", None)])
def test_clean_latent_estimate_is_exact_for_the_true_target(backbone, prediction_type):
    """z0_hat (used by L_mr) from the training target is z0, for every schedule kind and prediction type."""
    schedule = training_schedule(with_prediction_type(stock_scheduler(backbone), prediction_type), 0.7, 1.6)
    z0 = torch.randn(64, T, C, H, H, generator=torch.Generator().manual_seed(0))
    draw = schedule.noisy(z0, torch.Generator().manual_seed(1))
    assert draw.alpha_bar.shape == (64,) and ((draw.alpha_bar >= 0) & (draw.alpha_bar <= 1)).all()
    estimate = clean_estimate(draw.model_input, draw.target, draw.alpha_bar, schedule.prediction_type)
    torch.testing.assert_close(estimate, z0, rtol=1e-4, atol=1e-4)


def test_guidance_terms():
    g = torch.Generator().manual_seed(0)
    cond, uncond, static = (torch.randn(2, T, C, H, H, generator=g) for _ in range(3))
    assert torch.equal(guided_prediction(cond, uncond, static, w1=0.0, w2=0.0), cond)
    assert torch.equal(guided_prediction(cond, None, None, w1=0.0, w2=0.0), cond)
    # the 3D-aware term vanishes when the static reference agrees with the conditional prediction
    assert torch.allclose(guided_prediction(cond, uncond, cond, w1=7.0, w2=0.5), guided_prediction(cond, uncond, None, 7.0, 0.0))
    assert torch.allclose(guided_prediction(cond, uncond, static, 7.0, 0.5),
                          cond + 7.0 * (cond - uncond) + 0.5 * (cond - static))
    # pushing away from the static reference: the guided output moves opposite to ebar
    shift = guided_prediction(cond, uncond, static + 1.0, 0.0, 0.5) - guided_prediction(cond, uncond, static, 0.0, 0.5)
    assert torch.allclose(shift, torch.full_like(shift, -0.5))
    with pytest.raises(ValueError, match="unconditional"):
        guided_prediction(cond, None, static, w1=1.0, w2=0.0)
    with pytest.raises(ValueError, match="static reference"):
        guided_prediction(cond, uncond, None, w1=1.0, w2=0.5)


def test_condition_dropout_trains_every_guidance_branch():
    cond = conditions("static", batch=4000, motion=50.0)
    cond.text_embeddings = None
    null = cond.null(None)
    g = torch.Generator().manual_seed(0)
    config = preset("tiny-static", p_uncond=0.2, p_no_motion=0.3)
    dropped = drop_conditions(cond, null, config, g)
    image_dropped = (dropped.image_embeddings == 0).flatten(1).all(dim=1)
    static_dropped = (dropped.static_latents == 0).flatten(1).all(dim=1)
    motion_dropped = dropped.motion == 0
    assert torch.equal(image_dropped, static_dropped)
    assert image_dropped.float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert motion_dropped[image_dropped].all()  # the unconditional branch drops motion too
    assert motion_dropped[~image_dropped].float().mean().item() == pytest.approx(0.3 / 0.8, abs=0.03)
    kept = ~motion_dropped
    assert torch.equal(dropped.static_latents[kept], cond.static_latents[kept])
    none = drop_conditions(cond, null, preset("tiny-static", p_uncond=0.0, p_no_motion=0.0), g)
    assert torch.equal(none.motion, cond.motion) and torch.equal(none.image_latents, cond.image_latents)


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().mean()).item()


@pytest.mark.parametrize("config", ["tiny-text", "tiny-image", "tiny-image-svd", "tiny-static-svd"])
def test_every_embedding_of_a_tiny_model_reaches_its_output(config):
    """The timestep, the (trained) motion embedding and the micro-conditions change the prediction
    by a visible fraction of its size, so tests on tiny models can catch an error in any of them
    (tiny SVD with one channel per GroupNorm group normalised them to a 1e-6 change)."""
    model, task = denoiser(config), preset(config).task
    with torch.no_grad():
        model.motion_embedding.linear_2.weight.normal_(0, 0.3)
    cond = conditions(task)
    g = torch.Generator().manual_seed(1)
    noisy = torch.randn(2, T, C, H, H, generator=g)
    svd = model.adapter.name == "svd"
    t_low, t_high = (torch.tensor([0.1, 0.1]), torch.tensor([2.0, 2.0])) if svd else (torch.tensor([10, 10]), torch.tensor([700, 700]))
    with torch.no_grad():
        base = model(noisy, t_low, cond)
        assert relative_change(base, model(noisy, t_high, cond)) > 1e-2
        moved = conditions(task, motion=5000.0)
        assert relative_change(base, model(noisy, t_low, moved)) > 1e-2
        if model.micro.fps is not None:
            model.micro = model.adapter.micro(fps=model.micro.fps + 10, motion_bucket_id=30, noise_aug_strength=0.5)
            assert relative_change(base, model(noisy, t_low, cond)) > 1e-2
