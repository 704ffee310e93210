"""One training objective evaluation: latents and conditions of a batch, condition dropout, L_ldm + w * L_mr."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .backbone import Conditions, Denoiser
from .components import Components, encode_image, encode_text, encode_video
from .config import TrainConfig
from .data import Batch
from .motion import motion_reconstruction_loss


@dataclass
class Losses:
    """Scalars (float32 tensors): total = ldm + motion_loss_weight * mr."""

    total: torch.Tensor
    ldm: torch.Tensor
    mr: torch.Tensor


def batch_inputs(batch: Batch, parts: Components, config: TrainConfig, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    """(z0 [B, T, C, h, w], zbar [B, T, C, h, w], conditions), using cached tensors when present."""
    z0 = batch.latents_dynamic if batch.latents_dynamic is not None else encode_video(parts.vae, batch.dynamic_video)
    zbar = batch.latents_static if batch.latents_static is not None else encode_video(parts.vae, batch.static_video)
    z0, zbar = z0.to(device), zbar.to(device)
    cond = Conditions(motion=batch.motion.to(device))
    if config.task == "text":
        if batch.text_embedding is not None:
            cond.text_embeddings = batch.text_embedding.to(device)
        else:
            prompts = [config.caption_prefix + c for c in batch.captions]
            cond.text_embeddings = encode_text(parts.tokenizer, parts.text_encoder, prompts).to(device)
    else:
        # The image condition is the first dynamic frame: azimuth 0 (the front) at time 0.
        cond.image_embeddings = encode_image(parts.image_encoder, batch.dynamic_video[:, 0].to(device)).to(device)
        cond.image_latents = z0[:, 0]
    if config.task == "static":
        cond.static_latents = zbar
    return z0, zbar, cond


def drop_conditions(cond: Conditions, null: Conditions, config: TrainConfig, generator: torch.Generator) -> Conditions:
    """Condition dropout: per clip, with probability p_uncond every condition is replaced by its
    null (trains e(z)); with probability p_no_motion only the motion is set to 0 (trains the
    zero-motion reference ebar(z, y)); otherwise all are kept."""
    u = torch.rand(cond.motion.shape[0], generator=generator, device=generator.device).to(cond.motion.device)
    dropped = cond.select(u >= config.p_uncond, null)
    keep_motion = (u < config.p_uncond) | (u >= config.p_uncond + config.p_no_motion)
    dropped.motion = torch.where(keep_motion, dropped.motion, torch.zeros_like(dropped.motion))
    return dropped


def predicted_clean_latents(scheduler, noisy: torch.Tensor, prediction: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """z0_hat from the model output (epsilon or v) at integer ``timesteps`` [B]; float32, noisy's shape."""
    alpha_bar = scheduler.alphas_cumprod.to(noisy.device)[timesteps].float().view(-1, *([1] * (noisy.ndim - 1)))
    a, s = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    prediction = prediction.float()
    if scheduler.config.prediction_type == "epsilon":
        return (noisy - s * prediction) / a
    if scheduler.config.prediction_type == "v_prediction":
        return a * noisy - s * prediction
    raise ValueError(f"prediction_type {scheduler.config.prediction_type!r} is not supported (epsilon, v_prediction)")


def compute_losses(denoiser: Denoiser, scheduler, z0: torch.Tensor, zbar: torch.Tensor, cond: Conditions,
                   config: TrainConfig, generator: torch.Generator) -> Losses:
    """Noise z0 at uniform random timesteps, predict, and return L_ldm (MSE to epsilon or v) and L_mr.

    All randomness (timesteps, noise) comes from ``generator`` so a resumed run repeats it.
    """
    batch = z0.shape[0]
    device = z0.device
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator,
                              device=generator.device).to(device)
    noise = torch.randn(z0.shape, generator=generator, device=generator.device).to(device)
    noisy = scheduler.add_noise(z0, noise, timesteps)
    target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(z0, noise, timesteps)
    prediction = denoiser(noisy, timesteps, cond)
    ldm = F.mse_loss(prediction.float(), target.float())
    z0_hat = predicted_clean_latents(scheduler, noisy, prediction, timesteps)
    weights = None
    if config.motion_loss_weighting == "alpha_bar_squared":
        weights = scheduler.alphas_cumprod.to(device)[timesteps].float().pow(2)
    mr = motion_reconstruction_loss(z0, z0_hat, zbar, weights)
    return Losses(total=ldm + config.motion_loss_weight * mr, ldm=ldm, mr=mr)


def empty_prompt_embedding(parts: Components, device: torch.device) -> torch.Tensor | None:
    """Text-encoder states of the empty prompt [1, L, D] (the dropped text condition); None without text."""
    if parts.text_encoder is None:
        return None
    return encode_text(parts.tokenizer, parts.text_encoder, [""]).to(device)
