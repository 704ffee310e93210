"""Training hyperparameters (one dataclass) and the named presets ``d4d-train --config NAME`` takes.

A preset fixes the task, the clip size and the architecture preset (``training.architectures``)
used when no ``--pretrained`` folder is given; every other field is an ordinary hyperparameter
that a command-line flag may override. Defaults follow the paper where it states a value
(constant learning rate 3e-5, DDIM 50 steps, w1 = 7.0, w2 = 0.5, T = 24 at 256 x 256) and are
marked "d4d's choice" where it is silent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

TASKS = ("text", "image", "static")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run. Saved as ``RUN/train_config.json``."""

    task: str = "text"
    """What the model is conditioned on: "text" (text-to-4D, UNet3DConditionModel), "image"
    (image-to-4D, UNetSpatioTemporalConditionModel) or "static" (static-3D-to-4D: the image
    model plus the static orbit's latents concatenated on the channels)."""
    architecture: str = "tiny-text"
    """Architecture preset (training.architectures.ARCHITECTURES) built when --pretrained is not given."""
    num_frames: int = 24
    """T, frames per orbital video (the paper: 24)."""
    resolution: int = 256
    """Frame side in pixels (the paper: 256); input videos of another size are resized."""
    caption_prefix: str = "a dynamic asset, "
    """Prepended to every caption (the paper: Cap3D describes static objects)."""
    background: float = 1.0
    """Grey level in [0, 1] the transparent renders are composited over (1.0: white, d4d's
    choice); sampling composites its condition images the same way."""

    learning_rate: float = 3e-5
    """Peak learning rate (the paper: constant 3e-5)."""
    lr_schedule: str = "constant"
    """"constant" or "constant_with_warmup" or "cosine" (diffusers.optimization.get_scheduler names)."""
    lr_warmup_steps: int = 0
    """Optimizer steps of linear warm-up (0: none)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
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
    mixed_precision: str = "no"
    """"no", "fp16" or "bf16" (accelerate); trainable weights stay float32."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass where the backbone supports it
    (UNetSpatioTemporalConditionModel does; UNet3DConditionModel does not: a warning is logged)."""

    prediction_type: str = "epsilon"
    """"epsilon" or "v_prediction" (the target of L_ldm). Overridden by a pretrained scheduler's config."""
    num_train_timesteps: int = 1000
    p_uncond: float = 0.1
    """Rate at which every condition (text, image, static orbit, motion) is dropped together:
    trains e(z), the unconditional branch of the guidance (d4d's choice; the paper is silent)."""
    p_no_motion: float = 0.1
    """Rate at which only the motion magnitude is dropped (set to 0, i.e. "static"): trains the
    zero-motion static reference ebar(z, y) (d4d's choice)."""
    motion_loss_weight: float = 1.0
    """w in L = L_ldm + w * L_mr (the paper does not state it; d4d's choice)."""
    motion_loss_weighting: str = "alpha_bar_squared"
    """Per-clip weight of L_mr (d4d's choice): "alpha_bar_squared" multiplies it by alpha_bar_t^2.
    z0_hat's error is the prediction's error times sqrt((1 - alpha_bar_t) / alpha_bar_t), and L_mr
    is the square of a squared norm, so unweighted it grows like alpha_bar_t^-2 at large t and
    swamps L_ldm; the weight keeps it bounded. "none" is the paper's plain form."""

    use_ema: bool = True
    """Keep an exponential moving average of the trainable weights; the exported model uses it."""
    ema_decay: float = 0.9999

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

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: got {self.task!r}, expected one of {TASKS}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type: got {self.prediction_type!r}, expected 'epsilon' or 'v_prediction'")
        if self.motion_loss_weighting not in ("alpha_bar_squared", "none"):
            raise ValueError(f"motion_loss_weighting: got {self.motion_loss_weighting!r}, expected 'alpha_bar_squared' or 'none'")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision: got {self.mixed_precision!r}, expected 'no', 'fp16' or 'bf16'")
        if not (0.0 <= self.p_uncond and 0.0 <= self.p_no_motion and self.p_uncond + self.p_no_motion <= 1.0):
            raise ValueError(f"p_uncond={self.p_uncond}, p_no_motion={self.p_no_motion}: rates must be >= 0 and sum to <= 1")
        if not 0.0 <= self.background <= 1.0:
            raise ValueError(f"background: got {self.background}, expected a grey level in [0, 1]")
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
        return cls(**values)


_TINY = dict(num_frames=4, resolution=16, max_steps=20, checkpointing_steps=10, validation_steps=0,
             validation_inference_steps=2, log_every=1, ema_decay=0.9)

#: Named presets: "tiny-*" build models of a few thousand to a few hundred thousand parameters
#: that train on CPU in seconds (tests, smoke runs); "paper-*" are the paper's sizes.
PRESETS: dict[str, TrainConfig] = {
    "tiny-text": TrainConfig(task="text", architecture="tiny-text", **_TINY),
    "tiny-image": TrainConfig(task="image", architecture="tiny-image", **_TINY),
    "tiny-static": TrainConfig(task="static", architecture="tiny-static", **_TINY),
    "paper-text": TrainConfig(task="text", architecture="paper-text"),
    "paper-image": TrainConfig(task="image", architecture="paper-image"),
    "paper-static": TrainConfig(task="static", architecture="paper-static"),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of preset ``name`` with ``overrides`` applied (validated)."""
    if name not in PRESETS:
        raise ValueError(f"--config: unknown preset {name!r}; valid: {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


__all__ = ["TASKS", "TrainConfig", "PRESETS", "preset"]
