"""Noise schedules on each backbone's own terms: training noise and targets, and the sampler.

The scheduler config a model carries (its ``scheduler/`` folder) decides the kind:

- **discrete VP** (DDIM/DDPM configs: ModelScope, I2VGen-XL): t ~ U{0, ..., N-1};
  x_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps (``scheduler.add_noise``); the UNet gets x_t and
  the integer t; the target is eps, or v = sqrt(abar_t) eps - sqrt(1 - abar_t) z0
  (``scheduler.get_velocity``), as the config's ``prediction_type`` says. abar_t comes from the
  config's betas (I2VGen-XL: cosine, rescaled to zero terminal SNR, v-prediction).
- **EDM** (``EulerDiscreteScheduler`` with ``timestep_type="continuous"`` and v-prediction:
  Stable Video Diffusion): ln sigma ~ N(P_mean, P_std^2); x = z0 + sigma eps; the UNet gets
  c_in x = x / sqrt(sigma^2 + 1) and c_noise = 0.25 ln sigma; its output F gives the denoised
  D = c_skip x + c_out F with c_skip = 1 / (sigma^2 + 1), c_out = -sigma / sqrt(sigma^2 + 1)
  (``EulerDiscreteScheduler.step``); the target is (z0 - c_skip x) / c_out. The plain MSE on F
  is EDM's lambda(sigma) = (sigma^2 + 1) / sigma^2 weighted loss on D (sigma_data = 1).

In both kinds the UNet input is the variance-preserving sample sqrt(abar) z0 + sqrt(1 - abar) eps
(for EDM abar = 1 / (1 + sigma^2)), so one clean-latent estimate (``clean_estimate``) serves
both, and abar weights L_mr the same way.

Sampling (``sampling_scheduler``) uses the paper's DDIM for discrete configs (the folder's own
DDIM config unchanged: ModelScope's and I2VGen-XL's folders ship DDIM) and the folder's
``EulerDiscreteScheduler`` for EDM (SVD's own sampler: deterministic Euler on the probability
flow ODE, which is what DDIM is in the sigma parameterisation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

SCHEDULER_CLASSES = {"DDIMScheduler": DDIMScheduler, "DDPMScheduler": DDPMScheduler,
                     "EulerDiscreteScheduler": EulerDiscreteScheduler}

#: The schedulers the backbones ship with (their diffusers folders' scheduler_config.json).
STOCK_SCHEDULERS: dict[str, tuple[type, dict]] = {
    # damo-vilab/text-to-video-ms-1.7b
    "modelscope": (DDIMScheduler, dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                       num_train_timesteps=1000, prediction_type="epsilon", set_alpha_to_one=False,
                                       steps_offset=1)),
    # ali-vilab/i2vgen-xl
    "i2vgen-xl": (DDIMScheduler, dict(beta_start=0.0001, beta_end=0.02, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                                      num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                      set_alpha_to_one=True, steps_offset=1, timestep_spacing="leading")),
    # stabilityai/stable-video-diffusion-img2vid(-xt): EDM, sigma in [0.002, 700], Karras rho 7
    "svd": (EulerDiscreteScheduler, dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         num_train_timesteps=1000, prediction_type="v_prediction", interpolation_type="linear",
                                         use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0, steps_offset=1,
                                         timestep_spacing="leading", timestep_type="continuous")),
}


def stock_scheduler(backbone: str):
    """A fresh scheduler with the configuration ``backbone``'s own folder ships."""
    cls, config = STOCK_SCHEDULERS[backbone]
    return cls(**config)


def load_scheduler(folder: Path):
    """The scheduler of a model folder's ``scheduler/``, as its own class (DDIM, DDPM or Euler)."""
    path = folder / "scheduler" / "scheduler_config.json"
    try:
        name = json.loads(path.read_text())["_class_name"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable diffusers scheduler config ({exc})") from None
    if name not in SCHEDULER_CLASSES:
        raise ValueError(f"{path}: {name} is not supported; expected one of {sorted(SCHEDULER_CLASSES)}")
    return SCHEDULER_CLASSES[name].from_pretrained(folder, subfolder="scheduler")


def shifted_scheduler(scheduler, shift: float):
    """``scheduler`` (discrete VP) with every step's signal-to-noise ratio divided by ``shift``^2:
    abar'_t / (1 - abar'_t) = abar_t / (1 - abar_t) / shift^2, written as its ``trained_betas``
    so the folder's scheduler config carries the shifted schedule. ``shift`` 1 returns it unchanged.

    Hoogeboom et al. (2023, "simple diffusion") and Stable Diffusion 3 shift the schedule toward
    noise for inputs with more elements (higher resolution; here 24 frames of latents), where the
    unshifted schedule leaves the clean sample recognisable in x_t up to the last steps.
    """
    if shift == 1.0:
        return scheduler
    if is_edm(scheduler):
        raise ValueError(f"noise_shift {shift}: EDM schedulers (SVD) sample their own noise levels; shift applies to discrete VP schedules")
    alpha_bar = scheduler.alphas_cumprod.double()
    snr = alpha_bar / (1.0 - alpha_bar).clamp_min(1e-12) / shift**2
    shifted = snr / (1.0 + snr)
    betas = 1.0 - shifted / torch.cat([torch.ones(1, dtype=torch.float64), shifted[:-1]])
    return type(scheduler).from_config(scheduler.config, trained_betas=betas.tolist())


def is_edm(scheduler) -> bool:
    """Whether a scheduler uses SVD's continuous EDM parameterisation (an EulerDiscreteScheduler
    with timestep_type "continuous" and v-prediction, whose UNet timesteps are 0.25 ln sigma)."""
    config = scheduler.config
    return (isinstance(scheduler, EulerDiscreteScheduler) and config.get("timestep_type") == "continuous"
            and config.prediction_type == "v_prediction")


def with_prediction_type(scheduler, prediction_type: str | None):
    """``scheduler`` with another prediction type (None keeps it). EDM schedulers are v-only."""
    if prediction_type is None or scheduler.config.prediction_type == prediction_type:
        return scheduler
    if is_edm(scheduler):
        raise ValueError(f"prediction_type {prediction_type!r}: an EDM (continuous-time) scheduler predicts v only")
    return type(scheduler).from_config(scheduler.config, prediction_type=prediction_type)


def sampling_scheduler(scheduler):
    """A fresh sampler for a model's scheduler: its own EulerDiscreteScheduler config for EDM, DDIM otherwise."""
    if is_edm(scheduler):
        return EulerDiscreteScheduler.from_config(scheduler.config)
    return DDIMScheduler.from_config(scheduler.config)


@dataclass
class NoisyBatch:
    """One training draw.

    Attributes:
        model_input: float [B, T, C, h, w], what the UNet denoises (before any channel concatenation).
        timesteps: [B], what the UNet is given as its timestep (int64 steps, or float c_noise).
        target: float [B, T, C, h, w], the regression target of the UNet output.
        alpha_bar: float32 [B], the variance-preserving signal level abar of each clip.
    """

    model_input: torch.Tensor
    timesteps: torch.Tensor
    target: torch.Tensor
    alpha_bar: torch.Tensor


def _per_clip(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.ndim - 1)))


class DiscreteSchedule:
    """Discrete VP training noise from a DDIM/DDPM-style scheduler (its ``alphas_cumprod``)."""

    kind = "discrete"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type {self.prediction_type!r} is not supported (epsilon, v_prediction)")

    def noisy(self, z0: torch.Tensor, generator: torch.Generator) -> NoisyBatch:
        """Uniform integer t, x_t = add_noise(z0, eps, t), target eps or v; all draws from ``generator``."""
        device = z0.device
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (z0.shape[0],), generator=generator,
                                  device=generator.device).to(device)
        noise = torch.randn(z0.shape, generator=generator, device=generator.device).to(device)
        noisy = self.scheduler.add_noise(z0, noise, timesteps)
        target = noise if self.prediction_type == "epsilon" else self.scheduler.get_velocity(z0, noise, timesteps)
        alpha_bar = self.scheduler.alphas_cumprod.to(device)[timesteps].float()
        return NoisyBatch(noisy, timesteps, target, alpha_bar)


class EDMSchedule:
    """SVD's EDM preconditioning with log-normal training noise levels.

    Args:
        scheduler: an EulerDiscreteScheduler with timestep_type "continuous", v-prediction.
        p_mean, p_std: ln sigma ~ N(p_mean, p_std^2).
    """

    kind = "edm"
    prediction_type = "v_prediction"

    def __init__(self, scheduler, p_mean: float, p_std: float):
        if not is_edm(scheduler):
            raise ValueError("EDMSchedule needs an EulerDiscreteScheduler with timestep_type 'continuous' and v_prediction")
        if p_std <= 0:
            raise ValueError(f"edm_p_std: got {p_std}, expected > 0")
        self.scheduler, self.p_mean, self.p_std = scheduler, p_mean, p_std

    @staticmethod
    def preconditioning(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_in, c_noise, c_skip, c_out) for noise levels ``sigma`` [B] (sigma_data = 1, v-prediction)."""
        c_in = (sigma**2 + 1).rsqrt()
        return c_in, 0.25 * sigma.log(), 1.0 / (sigma**2 + 1), -sigma * c_in

    def noisy(self, z0: torch.Tensor, generator: torch.Generator) -> NoisyBatch:
        """Log-normal sigma, x = z0 + sigma eps; UNet input c_in x at c_noise; target (z0 - c_skip x) / c_out."""
        device = z0.device
        normal = torch.randn(z0.shape[0], generator=generator, device=generator.device).to(device)
        sigma = (self.p_mean + self.p_std * normal).exp()
        noise = torch.randn(z0.shape, generator=generator, device=generator.device).to(device)
        c_in, c_noise, c_skip, c_out = self.preconditioning(sigma)
        x = z0 + _per_clip(sigma, z0) * noise
        target = (z0 - _per_clip(c_skip, z0) * x) / _per_clip(c_out, z0)
        return NoisyBatch(_per_clip(c_in, z0) * x, c_noise, target, (1.0 / (1.0 + sigma**2)).float())


def training_schedule(scheduler, edm_p_mean: float, edm_p_std: float):
    """EDMSchedule for an EDM scheduler config, DiscreteSchedule otherwise."""
    if is_edm(scheduler):
        return EDMSchedule(scheduler, edm_p_mean, edm_p_std)
    return DiscreteSchedule(scheduler)


def clean_estimate(model_input: torch.Tensor, prediction: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """z0_hat from the UNet output at signal level ``alpha_bar`` [B]; float32, model_input's shape.

    epsilon: (x - sqrt(1 - abar) e) / sqrt(abar); v: sqrt(abar) x - sqrt(1 - abar) v, with x the
    variance-preserving UNet input (for EDM this is c_skip x + c_out F, EulerDiscreteScheduler's x0).
    """
    a = _per_clip(alpha_bar.float().sqrt(), model_input)
    s = _per_clip((1.0 - alpha_bar.float()).clamp_min(0).sqrt(), model_input)
    x, prediction = model_input.float(), prediction.float()
    if prediction_type == "epsilon":
        return (x - s * prediction) / a
    if prediction_type == "v_prediction":
        return a * x - s * prediction
    raise ValueError(f"prediction_type {prediction_type!r} is not supported (epsilon, v_prediction)")
