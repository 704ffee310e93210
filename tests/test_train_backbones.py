"""Each backbone on its own terms: d4d's pipeline and training step against the stock diffusers ones.

For ModelScope (TextToVideoSDPipeline), Stable Video Diffusion (StableVideoDiffusionPipeline) and
I2VGen-XL (I2VGenXLPipeline), a tiny random folder is saved in the stock layout
(d4d.testing.stock_folders) and loaded both ways. With d4d's additions zero-initialised and
w2 = 0, d4d's sampler must reproduce the stock pipeline's latents after each denoising step;
and a training draw must hand the UNet the input and timestep the backbone's scheduler defines,
with a target from which that scheduler's own step recovers the clean latents.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from diffusers import I2VGenXLPipeline, StableVideoDiffusionPipeline, TextToVideoSDPipeline
from PIL import Image

from d4d.testing.stock_folders import STOCK_FOLDERS
from d4d.testing.train_fixtures import single_thread
from d4d.training.backbone import Conditions, Denoiser
from d4d.training.components import load_components
from d4d.training.config import preset
from d4d.training.objective import compute_losses
from d4d.training.pipeline import Diffusion4DPipeline
from d4d.training.schedules import EDMSchedule, training_schedule

T, R, H = 4, 16, 8
GUIDANCE = 3.0


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("stock")
    return {name: build(root / name) for name, build in STOCK_FOLDERS.items()}


def condition_image() -> tuple[Image.Image, torch.Tensor]:
    """An 8-bit RGB image as PIL (for the stock pipelines) and as float [1, 3, R, R] in [-1, 1] (for d4d)."""
    pixels = np.random.default_rng(0).integers(0, 256, (R, R, 3), dtype=np.uint8)
    return Image.fromarray(pixels), torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def d4d_pipeline(folder, task: str, **micro) -> Diffusion4DPipeline:
    parts = load_components(folder, task)
    return Diffusion4DPipeline(unet=parts.unet, vae=parts.vae, scheduler=parts.scheduler, motion_embedding=parts.motion_embedding,
                               static_input=parts.static_input, tokenizer=parts.tokenizer, text_encoder=parts.text_encoder,
                               image_encoder=parts.image_encoder, task=task, num_frames=T, resolution=R, caption_prefix="", **micro)


def stock_latents(backbone: str, folder, steps: int, noise: torch.Tensor, seed: int) -> torch.Tensor:
    """The stock pipeline's final latents, [1, T, C, h, w]."""
    image, _ = condition_image()
    common = dict(num_frames=T, height=R, width=R, num_inference_steps=steps, output_type="latent")
    if backbone == "modelscope":
        pipe = TextToVideoSDPipeline.from_pretrained(folder)
        out = pipe(prompt="a red ball", guidance_scale=GUIDANCE, latents=noise.permute(0, 2, 1, 3, 4), **common).frames
        return out.permute(0, 2, 1, 3, 4)
    if backbone == "svd":
        pipe = StableVideoDiffusionPipeline.from_pretrained(folder)
        return pipe(image, min_guidance_scale=GUIDANCE, max_guidance_scale=GUIDANCE, latents=noise,
                    generator=torch.Generator().manual_seed(seed), **common).frames
    pipe = I2VGenXLPipeline.from_pretrained(folder)
    # The deprecated stock pipeline reads the final layer norm as text_encoder.text_model.final_layer_norm,
    # the transformers < 5 layout; point that name at the layer (the computation is untouched).
    pipe.text_encoder.text_model = types.SimpleNamespace(final_layer_norm=pipe.text_encoder.final_layer_norm)
    torch.manual_seed(seed)  # it samples the image posterior from the global generator
    out = pipe(prompt="a red ball", image=image, guidance_scale=GUIDANCE, latents=noise.permute(0, 2, 1, 3, 4), **common).frames
    return out.permute(0, 2, 1, 3, 4)


CASES = [("modelscope", "text"), ("svd", "image"), ("svd", "static"), ("i2vgen-xl", "image"), ("i2vgen-xl", "static")]


@pytest.mark.parametrize(("backbone", "task"), CASES)
def test_sampling_equals_the_stock_pipeline_step_for_step(folders, backbone, task):
    """Zero-initialised motion embedding and static channels, w2 = 0, w1 = guidance_scale - 1:
    d4d's latents equal the stock pipeline's after 1 and after 3 denoising steps."""
    _, image = condition_image()
    noise = torch.randn(1, T, 4, H, H, generator=torch.Generator().manual_seed(5))
    static = torch.rand(1, T, 3, R, R, generator=torch.Generator().manual_seed(6)) * 2 - 1
    pipe = d4d_pipeline(folders[backbone], task)
    for steps in (1, 3):
        ours = pipe(prompt="a red ball", image=None if task == "text" else image, static_video=static if task == "static" else None,
                    motion_magnitude=800.0, num_inference_steps=steps, w1=GUIDANCE - 1, w2=0.0, latents=noise,
                    generator=torch.Generator().manual_seed(7)).latents
        theirs = stock_latents(backbone, folders[backbone], steps, noise, seed=7)
        assert ours.shape == theirs.shape
        # Float32 tolerance: SVD's Euler step computes x + (x - x0) / sigma * (sigma' - sigma) from
        # x ~ sigma_max = 700, so rounding of order 1e-7 * 700 survives the cancellation.
        atol = 2e-6 * pipe.scheduler.config.sigma_max if backbone == "svd" else 1e-4
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("slip", [dict(fps=8), dict(motion_bucket_id=30), dict(noise_aug_strength=0.1)])
def test_the_svd_equivalence_catches_a_micro_condition_slip(folders, slip):
    """Each SVD micro-condition reaches the tiny UNet's output: telling it fps instead of fps - 1,
    another motion bucket or another noise level moves one step's latents far past the tolerance."""
    _, image = condition_image()
    noise = torch.randn(1, T, 4, H, H, generator=torch.Generator().manual_seed(5))
    theirs = stock_latents("svd", folders["svd"], 1, noise, seed=7)
    pipe = d4d_pipeline(folders["svd"], "image", **slip)
    ours = pipe(image=image, motion_magnitude=800.0, num_inference_steps=1, w1=GUIDANCE - 1, w2=0.0, latents=noise,
                generator=torch.Generator().manual_seed(7)).latents
    assert (ours - theirs).abs().max() > 10 * 2e-6 * pipe.scheduler.config.sigma_max


@pytest.mark.parametrize("backbone", ["modelscope", "svd", "i2vgen-xl"])
def test_training_noise_and_target_follow_the_backbone_scheduler(folders, backbone):
    """The UNet receives the scheduler's noisy input and timestep, and the scheduler's own step
    turns the training target back into the clean latents."""
    task = "text" if backbone == "modelscope" else "image"
    parts = load_components(folders[backbone], task)
    denoiser = Denoiser(parts.unet, parts.motion_embedding, task).eval()
    schedule = training_schedule(parts.scheduler, edm_p_mean=0.7, edm_p_std=1.6)
    assert isinstance(schedule, EDMSchedule) == (backbone == "svd")
    z0 = torch.randn(2, T, 4, H, H, generator=torch.Generator().manual_seed(0))
    cond = Conditions(motion=torch.zeros(2), text_embeddings=torch.randn(2, 16, 32) if parts.adapter.uses_text else None)
    if task == "image":
        cond.image_embeddings, cond.image_latents = torch.randn(2, 1, 32), torch.randn(2, 4, H, H)
    seen = {}

    def capture(module, args, kwargs):
        seen["sample"], seen["timestep"] = args[0], args[1]

    handle = parts.unet.register_forward_pre_hook(capture, with_kwargs=True)
    with torch.no_grad():
        compute_losses(denoiser, schedule, z0, z0.clone(), cond, preset("tiny-image"), torch.Generator().manual_seed(3))
    handle.remove()
    draw = schedule.noisy(z0, torch.Generator().manual_seed(3))  # the same draw, replayed
    sample = seen["sample"] if backbone == "svd" else seen["sample"].permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(sample[:, :, :4], draw.model_input)
    torch.testing.assert_close(seen["timestep"], draw.timesteps)
    for clip in range(2):
        if backbone == "svd":
            sigma = (draw.timesteps[clip] * 4).exp()  # c_noise = 0.25 ln sigma
            scheduler = type(parts.scheduler).from_config(parts.scheduler.config)
            scheduler.set_timesteps(sigmas=[sigma.item(), 0.0])
            torch.testing.assert_close(scheduler.timesteps[0], draw.timesteps[clip])
            x = draw.model_input[clip] * (sigma**2 + 1).sqrt()  # undo c_in: the EDM sample z0 + sigma eps
            scheduler.scale_model_input(x, scheduler.timesteps[0])
            recovered = scheduler.step(draw.target[clip], scheduler.timesteps[0], x).pred_original_sample
        else:
            t = int(draw.timesteps[clip])
            assert draw.timesteps.dtype == torch.int64 and 0 <= t < 1000
            scheduler = type(parts.scheduler).from_config(parts.scheduler.config)
            scheduler.set_timesteps(10)
            recovered = scheduler.step(draw.target[clip], t, draw.model_input[clip]).pred_original_sample
        torch.testing.assert_close(recovered, z0[clip], rtol=1e-4, atol=1e-4)


def test_a_modelscope_unet_with_a_timestep_condition_hears_the_pooled_caption():
    """small-modelscope's UNet (time_cond_proj_dim set) gets the caption twice: by cross-attention
    and, pooled over tokens, through its timestep embedding; with every cross-attention silenced
    the caption still changes the prediction, and a UNet without the setting is not given it."""
    from diffusers import UNet3DConditionModel

    from d4d.training.architectures import get_architecture

    torch.manual_seed(0)
    unet = UNet3DConditionModel(**{**get_architecture("small-modelscope").unet, "sample_size": 4}).eval()
    assert unet.config.time_cond_proj_dim == unet.config.cross_attention_dim
    for name, module in unet.named_modules():
        if name.endswith("attn2.to_out.0"):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    denoiser = Denoiser(unet, None, "text")
    noisy = torch.randn(1, 2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    texts = torch.randn(2, 1, 5, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(2))
    seen = {}
    handle = unet.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)
    with torch.no_grad():
        outs = [denoiser(noisy, torch.tensor([500]), Conditions(motion=torch.zeros(1), text_embeddings=t)) for t in texts]
    handle.remove()
    torch.testing.assert_close(seen["timestep_cond"], texts[1].mean(dim=1))
    assert (outs[0] - outs[1]).abs().max() > 1e-3
    plain = UNet3DConditionModel(**{**get_architecture("tiny-modelscope").unet, "sample_size": 4}).eval()
    plain.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)
    with torch.no_grad():
        Denoiser(plain, None, "text")(noisy, torch.tensor([500]), Conditions(motion=torch.zeros(1), text_embeddings=torch.randn(1, 5, 32)))
    assert seen["timestep_cond"] is None
