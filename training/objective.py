"""One training objective evaluation: latents and conditions of a batch, condition dropout, L_ldm + w * L_mr.

The noise, the UNet's inputs and the regression target follow the model's own scheduler
(training.schedules: discrete VP for ModelScope and I2VGen-XL, EDM for SVD); the conditions
follow its pipeline (training.unets). With ``target="static"`` the clip's static orbit is the
target, m is absent and L_mr is not computed (the base multi-view model of static orbits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .backbone import Conditions, Denoiser
from .components import Components, encode_text, encode_video
from .config import TrainConfig
from .data import Batch
from .motion import motion_reconstruction_loss
from .schedules import DiscreteSchedule, clean_estimate
from .unets import MicroConditions, UNetAdapter


@dataclass
class Losses:
    """Scalars (float32 tensors): total = ldm + motion_loss_weight * mr (mr is 0 for a static model)."""

    total: torch.Tensor
    ldm: torch.Tensor
    mr: torch.Tensor


def micro_conditions(config: TrainConfig, adapter: UNetAdapter) -> MicroConditions:
    """The run's constant micro-conditions on ``adapter``'s backbone."""
    return adapter.micro(config.fps, config.motion_bucket_id, config.noise_aug_strength)


def batch_inputs(batch: Batch, parts: Components, config: TrainConfig, device: torch.device, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    """(z0 [B, T, C, h, w] the target latents, zbar [B, T, C, h, w] the static orbit's latents,
    conditions), using cached tensors when present.

    z0 is the dynamic orbit's latents, or the static orbit's for a static model. The image
    condition is the first dynamic frame (azimuth 0, time 0), encoded as the backbone's pipeline
    does; SVD's condition-image noise is drawn from ``generator``.
    """
    adapter = parts.adapter
    zbar = batch.latents_static if batch.latents_static is not None else encode_video(parts.vae, batch.static_video)
    zbar = zbar.to(device)
    dynamic = None
    if config.target == "dynamic" or config.task != "text":
        dynamic = batch.latents_dynamic if batch.latents_dynamic is not None else encode_video(parts.vae, batch.dynamic_video)
        dynamic = dynamic.to(device)
    motion = batch.motion.to(device) if config.target == "dynamic" else torch.zeros(len(batch.uids), device=device)
    cond = Conditions(motion=motion)
    if adapter.uses_text:
        if batch.text_embedding is not None:
            cond.text_embeddings = batch.text_embedding.to(device)
        else:
            prompts = [config.caption_prefix + c for c in batch.captions]
            cond.text_embeddings = encode_text(parts.tokenizer, parts.text_encoder, prompts, adapter.text_clip_skip).to(device)
    if config.task != "text":
        first = batch.dynamic_video[:, 0].to(device)
        cond.image_embeddings = adapter.image_embeddings(parts.image_encoder, first).to(device)
        cond.image_latents = adapter.image_latents(parts.vae, first, generator, micro_conditions(config, adapter),
                                                   first_frame_latents=dynamic[:, 0]).to(device)
    if config.task == "static":
        cond.static_latents = adapter.static_condition(parts.vae, zbar)
    z0 = dynamic if config.target == "dynamic" else zbar
    return z0, zbar, cond


def null_conditions(cond: Conditions, text_null: torch.Tensor | None, adapter: UNetAdapter) -> Conditions:
    """The unconditional inputs of ``cond`` as the backbone's pipeline builds them."""
    return cond.null(text_null, keep_image_latents=adapter.uncond_keeps_image_latents)


def drop_conditions(cond: Conditions, null: Conditions, config: TrainConfig, generator: torch.Generator) -> Conditions:
    """Condition dropout: per clip, with probability p_uncond every condition is replaced by its
    null (trains e(z)); with probability p_no_motion only the motion is set to 0 (trains the
    zero-motion branch e(z, y, 0)); otherwise all are kept."""
    u = torch.rand(cond.motion.shape[0], generator=generator, device=generator.device).to(cond.motion.device)
    dropped = cond.select(u >= config.p_uncond, null)
    keep_motion = (u < config.p_uncond) | (u >= config.p_uncond + config.p_no_motion)
    dropped.motion = torch.where(keep_motion, dropped.motion, torch.zeros_like(dropped.motion))
    return dropped


def ldm_loss(prediction: torch.Tensor, target: torch.Tensor, alpha_bar: torch.Tensor, schedule, snr_gamma: float | None) -> torch.Tensor:
    """L_ldm, a float32 scalar: the MSE of ``prediction`` to ``target`` (both [B, ...]), each clip's
    weighted by min-SNR-gamma (TrainConfig.snr_gamma) when ``snr_gamma`` is set; ``alpha_bar`` [B]."""
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    if not isinstance(schedule, DiscreteSchedule):
        raise ValueError("snr_gamma: min-SNR weighting applies to discrete schedules; this backbone trains with EDM's own weighting")
    per_clip = (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    snr = alpha_bar.float() / (1.0 - alpha_bar.float()).clamp_min(1e-8)
    clipped = snr.clamp_max(snr_gamma)
    weight = clipped / snr if schedule.prediction_type == "epsilon" else clipped / (snr + 1.0)
    return (weight * per_clip).mean()


def compute_losses(denoiser: Denoiser, schedule, z0: torch.Tensor, zbar: torch.Tensor, cond: Conditions,
                   config: TrainConfig, generator: torch.Generator) -> Losses:
    """Noise z0 as the model's schedule does, predict, and return L_ldm (MSE to the schedule's
    target) and L_mr (dynamic models only).

    Args:
        schedule: training.schedules.DiscreteSchedule or EDMSchedule of the model's scheduler.
        generator: every draw (noise levels, noise) comes from it, so a resumed run repeats it.
    """
    noisy = schedule.noisy(z0, generator)
    prediction = denoiser(noisy.model_input, noisy.timesteps, cond)
    ldm = ldm_loss(prediction, noisy.target, noisy.alpha_bar, schedule, config.snr_gamma)
    if config.target == "static":
        zero = torch.zeros((), device=ldm.device)
        return Losses(total=ldm, ldm=ldm, mr=zero)
    z0_hat = clean_estimate(noisy.model_input, prediction, noisy.alpha_bar, schedule.prediction_type)
    weights = noisy.alpha_bar.pow(2) if config.motion_loss_weighting == "alpha_bar_squared" else None
    mr = motion_reconstruction_loss(z0, z0_hat, zbar, weights)
    return Losses(total=ldm + config.motion_loss_weight * mr, ldm=ldm, mr=mr)


def empty_prompt_embedding(parts: Components, device: torch.device) -> torch.Tensor | None:
    """Text-encoder states of the empty prompt [1, L, D] (the dropped text condition); None without text."""
    if parts.text_encoder is None:
        return None
    return encode_text(parts.tokenizer, parts.text_encoder, [""], parts.adapter.text_clip_skip).to(device)
