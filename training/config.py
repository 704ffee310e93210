"""Training hyperparameters (one dataclass) and the named presets ``d4d-train --config NAME`` takes.

A preset fixes the task, the clip size and the architecture preset (``training.architectures``,
which names the backbone) used when no ``--pretrained`` folder is given; every other field is
an ordinary hyperparameter that a command-line flag may override (``d4d.options`` builds the
flags from the field docstrings). Defaults follow the paper where it states a value (constant
learning rate 3e-5, DDIM 50 steps, w1 = 7.0, w2 = 0.5, T = 24 at 256 x 256, I2VGen-XL for the
image tasks) and are marked "d4d's choice" where it is silent.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["text", "image", "static"]
TASKS = typing.get_args(Task)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Settings of the autoencoder stage (``d4d-train --autoencoder-*``, training.autoencoder), which
    fits a from-scratch model's VAE on the shards' frames; saved in ``RUN/autoencoder/config.json``."""

    steps: int = 3000
    """Optimizer steps of the fit."""
    learning_rate: float = 1e-3
    """AdamW learning rate, constant after a linear warm-up over the first 5% of steps (d4d's choice)."""
    batch_frames: int = 32
    """Frames per optimizer step."""
    kl_weight: float = 1e-6
    """Weight of the KL term against the pixel MSE (Stable Diffusion's VAE used 1e-6)."""
    holdout_every: int = 8
    """Frame t of each video is held out of the fit when t % holdout_every == 0 (the held-out PSNR)."""
    max_frames: int = 20000
    """Training frames kept in memory at most (a seeded reservoir over clips when the shards hold more)."""
    checkpointing_steps: int = 500
    """Save a resumable checkpoint of the stage every N steps."""
    log_every: int = 100
    """Record loss and batch PSNR in the stage's history (and on its progress line) every N steps."""
    seed: int = 0
    """Seeds the frame order and the posterior samples."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_frames", "holdout_every", "max_frames", "checkpointing_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"autoencoder {name}: got {getattr(self, name)}, expected >= 1")
        if not self.learning_rate > 0 or not self.kl_weight >= 0:
            raise ValueError(f"autoencoder learning_rate {self.learning_rate} must be > 0 and kl_weight {self.kl_weight} >= 0")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run. Saved as ``RUN/train_config.json``."""

    task: Task = "text"
    """What the model is conditioned on: "text" (text-to-4D, ModelScope's UNet3DConditionModel),
    "image" (image-to-4D: I2VGen-XL as in the paper, or Stable Video Diffusion) or "static"
    (static-3D-to-4D: the image model plus the static orbit's latents on the input channels)."""
    target: Literal["dynamic", "static"] = "dynamic"
    """What the model learns to generate: "dynamic" (the 4D model: dynamic orbits, conditioned on
    the motion magnitude m) or "static" (the base multi-view model of static orbits, the
    reference ebar of the 3D-aware guidance: static orbits, same conditions, no m)."""
    architecture: str = "tiny-modelscope"
    """Architecture preset (training.architectures.ARCHITECTURES) built when --pretrained is not given;
    it names the backbone (modelscope, i2vgen-xl, svd)."""
    num_frames: int = 24
    """T, frames per orbital video (the paper: 24)."""
    resolution: int = 256
    """Frame side in pixels (the paper: 256); input videos of another size are resized."""
    caption_prefix: str = "a dynamic asset, "
    """Prepended to every caption (the paper: Cap3D describes static objects)."""
    background: float = 1.0
    """Grey level in [0, 1] the transparent renders are composited over (1.0: white, d4d's
    choice); sampling composites its condition images the same way."""
    second_orbit: float = 0.0
    """Probability that a training clip shows its second orbit (dynamic2 / static2, rendered
    with ``--orbits 2`` from a random start azimuth: the paper's view augmentation) instead of
    the first; clips without one always show the first. Reads pixels: cached latents (of the
    first orbit) are not used when it is above 0 and the shards have second orbits. The
    paper-* presets use 0.5 (d4d's choice: the paper does not give a rate)."""

    learning_rate: float = 3e-5
    """Peak learning rate (the paper: constant 3e-5)."""
    lr_schedule: Literal["constant", "constant_with_warmup", "cosine"] = "constant"
    """Learning-rate schedule (diffusers.optimization.get_scheduler names)."""
    lr_warmup_steps: int = 0
    """Optimizer steps of linear warm-up (0: none)."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    adam_weight_decay: float = 1e-2
    """AdamW decoupled weight decay."""
    adam_epsilon: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    train_batch_size: int = 1
    """Clips per device per micro-batch."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step. Effective batch = train_batch_size * accumulation * processes
    (the paper: 128)."""
    max_steps: int = 6000
    """Optimizer steps (the paper: 6K iterations)."""
    seed: int = 0
    """Seeds weights built from a preset, the data order, noise, timesteps and dropout."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """"no", "fp16" or "bf16" (accelerate); trainable weights stay float32."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: every resnet, temporal conv and transformer
    layer of the UNet's blocks is checkpointed (training.memory; all three backbones)."""
    optimizer: Literal["adamw", "adamw-8bit"] = "adamw"
    """"adamw" (torch, float32 moments: 8 bytes per parameter) or "adamw-8bit" (bitsandbytes'
    AdamW8bit, 2 bytes per parameter; needs bitsandbytes, a CUDA package, installed)."""

    prediction_type: Literal["epsilon", "v_prediction"] | None = None
    """Override of the target of L_ldm. None (default) keeps the backbone's own (its scheduler
    config: epsilon for ModelScope, v for I2VGen-XL and SVD); changing it re-purposes the
    pretrained output layer."""
    noise_shift: float = 1.0
    """A model built from a preset (no --pretrained) trains and samples with its backbone's
    schedule shifted toward noise: SNR_t divided by noise_shift^2 (training.schedules.
    shifted_scheduler; Hoogeboom et al. 2023, Stable Diffusion 3). 1 keeps the stock schedule. The
    shifted schedule is written into the model's scheduler/ folder, so a run fine-tuned from it
    (--pretrained) inherits it; such a run ignores this setting. d4d's choice for its small
    from-scratch presets (the paper fine-tunes stock schedules)."""
    snr_gamma: float | None = None
    """Min-SNR-gamma loss weighting (Hang et al., 2023) of L_ldm on discrete schedules: each clip's
    MSE is weighted by min(SNR_t, gamma) / SNR_t (epsilon target) or min(SNR_t, gamma) / (SNR_t + 1)
    (v target), SNR_t = abar_t / (1 - abar_t), so nearly clean steps stop dominating the loss;
    None (default) is the plain MSE. Diffusion4D does not weight L_ldm; d4d uses it where noted
    in a preset (gamma 5, Hang et al.'s value). EDM backbones refuse it."""
    edm_p_mean: float = 0.7
    """EDM backbones (SVD): ln sigma of the training noise ~ N(edm_p_mean, edm_p_std^2) (d4d's
    choice: the common SVD fine-tuning values, shifted to more noise than EDM's -1.2 / 1.2)."""
    edm_p_std: float = 1.6
    """See edm_p_mean."""
    fps: int | None = None
    """Frame-rate micro-condition, held constant (d4d's choice): None takes the backbone's
    pipeline default (SVD 7, told as fps - 1 = 6; I2VGen-XL 16). ModelScope has none."""
    motion_bucket_id: int = 127
    """SVD's motion-bucket micro-condition, held constant (SVD's default; d4d conditions motion
    through its own embedding of m)."""
    noise_aug_strength: float = 0.02
    """SVD's condition-image noise augmentation: this much Gaussian noise is added to the
    condition image before encoding, and the UNet is told the value (SVD's default)."""
    p_uncond: float = 0.1
    """Rate at which every condition (text, image, static orbit, motion) is dropped together:
    trains e(z), the unconditional branch of the guidance (d4d's choice; the paper is silent)."""
    p_no_motion: float = 0.1
    """Rate at which only the motion magnitude is dropped (set to 0): trains e(z, y, m = 0), which
    d4d-sample offers as the "zero-motion" shortcut reference. It is not the paper's ebar (a
    model of static orbits): trained on dynamic targets, it learns the average motion (d4d's choice)."""
    motion_loss_weight: float = 1.0
    """w in L = L_ldm + w * L_mr (the paper does not state it; d4d's choice). A static model
    (target "static") has no L_mr."""
    motion_loss_weighting: Literal["alpha_bar_squared", "none"] = "alpha_bar_squared"
    """Per-clip weight of L_mr (d4d's choice): "alpha_bar_squared" multiplies it by alpha_bar_t^2.
    z0_hat's error is the prediction's error times sqrt((1 - alpha_bar_t) / alpha_bar_t), and L_mr
    is the square of a squared norm, so unweighted it grows like alpha_bar_t^-2 at large t and
    swamps L_ldm; the weight keeps it bounded. "none" is the paper's plain form, and the one for
    v-prediction, whose z0_hat error is sqrt(1 - alpha_bar_t) times the v error, bounded at every t
    (small-text uses it: on its noise-shifted schedule alpha_bar_t^2 is below 1e-4 for half the
    steps, which would switch L_mr off)."""

    use_ema: bool = True
    """Keep an exponential moving average of the trainable weights; the exported model uses it."""
    ema_decay: float = 0.9999
    """EMA decay per optimizer step."""

    checkpointing_steps: int = 500
    """Save a resumable checkpoint every N optimizer steps (and at the end)."""
    checkpoints_total_limit: int = 3
    """Keep at most this many checkpoints (oldest deleted first); 0 keeps all."""
    validation_steps: int = 500
    """Write a validation video every N optimizer steps (0 disables)."""
    validation_inference_steps: int = 25
    """DDIM steps of the validation sample."""
    log_every: int = 10
    """Log a line and TensorBoard scalars every N optimizer steps."""
    dataloader_num_workers: int = 0
    """DataLoader worker processes (0: load in the training process)."""
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    """The autoencoder stage of a from-scratch run (no --pretrained, no --vae): the VAE is fitted
    on the shards' frames before the UNet trains (training.autoencoder, ``--autoencoder-*``)."""

    def __post_init__(self) -> None:
        for name in ("task", "target", "prediction_type", "motion_loss_weighting", "mixed_precision", "lr_schedule", "optimizer"):
            choices = typing.get_args(typing.get_type_hints(TrainConfig)[name])
            allowed = [c for arg in choices for c in (typing.get_args(arg) or (arg,)) if c is not type(None)]
            allowed += [None] if type(None) in choices else []
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected one of {allowed}")
        if self.noise_shift <= 0:
            raise ValueError(f"noise_shift: got {self.noise_shift}, expected > 0")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise ValueError(f"snr_gamma: got {self.snr_gamma}, expected > 0 or None")
        if self.edm_p_std <= 0:
            raise ValueError(f"edm_p_std: got {self.edm_p_std}, expected > 0")
        if self.fps is not None and self.fps < 1:
            raise ValueError(f"fps: got {self.fps}, expected >= 1 or None")
        if self.noise_aug_strength < 0:
            raise ValueError(f"noise_aug_strength: got {self.noise_aug_strength}, expected >= 0")
        if not (0.0 <= self.p_uncond and 0.0 <= self.p_no_motion and self.p_uncond + self.p_no_motion <= 1.0):
            raise ValueError(f"p_uncond={self.p_uncond}, p_no_motion={self.p_no_motion}: rates must be >= 0 and sum to <= 1")
        if not 0.0 <= self.background <= 1.0:
            raise ValueError(f"background: got {self.background}, expected a grey level in [0, 1]")
        if not 0.0 <= self.second_orbit <= 1.0:
            raise ValueError(f"second_orbit: got {self.second_orbit}, expected a probability in [0, 1]")
        for name in ("num_frames", "resolution", "train_batch_size", "gradient_accumulation_steps", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)}, expected >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; valid keys: {sorted(known)}")
        values = dict(values)
        if isinstance(values.get("autoencoder"), dict):
            values["autoencoder"] = AutoencoderConfig(**values["autoencoder"])
        return cls(**values)


_TINY = dict(num_frames=4, resolution=16, max_steps=20, checkpointing_steps=10, validation_steps=0,
             validation_inference_steps=2, log_every=1, ema_decay=0.9,
             autoencoder=AutoencoderConfig(steps=40, batch_frames=8, checkpointing_steps=20, log_every=10))

#: Named presets: "tiny-*" build models of a few thousand to a few hundred thousand parameters
#: that train on CPU in seconds (tests, smoke runs); "small-text" learns a handful of 32-pixel
#: clips on a laptop CPU in minutes (the demo; d4d's choice of a from-scratch learning rate); "paper-*" are the paper's sizes. The image
#: and static tasks run on I2VGen-XL (the paper's backbone); "*-svd" on Stable Video Diffusion.
PRESETS: dict[str, TrainConfig] = {
    "tiny-text": TrainConfig(task="text", architecture="tiny-modelscope", **_TINY),
    "tiny-image": TrainConfig(task="image", architecture="tiny-i2vgen-xl", **_TINY),
    "tiny-static": TrainConfig(task="static", architecture="tiny-i2vgen-xl", **_TINY),
    "tiny-image-svd": TrainConfig(task="image", architecture="tiny-svd", **_TINY),
    "tiny-static-svd": TrainConfig(task="static", architecture="tiny-svd", **_TINY),
    "small-text": TrainConfig(task="text", architecture="small-modelscope", resolution=32, max_steps=600, learning_rate=1e-3,
                              train_batch_size=4, prediction_type="v_prediction", noise_shift=8.0, motion_loss_weighting="none",
                              lr_schedule="constant_with_warmup", lr_warmup_steps=50, ema_decay=0.995, checkpointing_steps=200,
                              validation_steps=0, validation_inference_steps=25, log_every=50,
                              autoencoder=AutoencoderConfig(steps=600, batch_frames=16, learning_rate=2e-3, checkpointing_steps=200)),
    "paper-text": TrainConfig(task="text", architecture="paper-modelscope", second_orbit=0.5),
    "paper-image": TrainConfig(task="image", architecture="paper-i2vgen-xl", second_orbit=0.5),
    "paper-static": TrainConfig(task="static", architecture="paper-i2vgen-xl", second_orbit=0.5),
    "paper-image-svd": TrainConfig(task="image", architecture="paper-svd", second_orbit=0.5),
    "paper-static-svd": TrainConfig(task="static", architecture="paper-svd", second_orbit=0.5),
}

# The image and static-3D tasks at small-text's size and schedule, on I2VGen-XL (benchmarks/learning.py).
PRESETS["small-image"] = dataclasses.replace(PRESETS["small-text"], task="image", architecture="small-i2vgen-xl")
PRESETS["small-static"] = dataclasses.replace(PRESETS["small-text"], task="static", architecture="small-i2vgen-xl")


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of preset ``name`` with ``overrides`` applied (validated)."""
    if name not in PRESETS:
        raise ValueError(f"--config: unknown preset {name!r}; valid: {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


__all__ = ["TASKS", "TrainConfig", "PRESETS", "preset"]
