"""The 4D-aware denoiser: a stock diffusers video UNet plus the paper's two additions.

How the additions attach (nothing in diffusers is patched or subclassed):

- Motion magnitude: ``MotionEmbedding`` (training.motion) maps m [B] to [B, time_embed_dim].
  ``offset_time_embedding`` registers, for the duration of one UNet call, a forward hook on the
  UNet's ``time_embedding`` module that adds that vector to its output. Both backbones compute
  ``emb = self.time_embedding(...)`` once per clip ([B, time_embed_dim]) before repeating it per
  frame, so the motion vector reaches every resnet exactly like the timestep does, and the
  saved UNet stays a plain diffusers UNet.
- Static orbit: its latents are concatenated on the channel axis of the UNet input; the input
  convolution is widened by ``widen_conv_in`` with the new input channels zero-initialised.

Layouts: every tensor here is batch-first and frame-second, [B, T, C, h, w] (the
UNetSpatioTemporalConditionModel layout); the Denoiser permutes for UNet3DConditionModel, whose
sample is [B, C, T, h, w].
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from diffusers import UNet3DConditionModel, UNetSpatioTemporalConditionModel
from torch import nn

from .architectures import LATENT_CHANNELS
from .motion import MotionEmbedding

#: UNet input channels per task: noisy latents, then the image latents (image and static tasks,
#: repeated over frames), then the static orbit latents (static task).
INPUT_CHANNELS = {"text": LATENT_CHANNELS, "image": 2 * LATENT_CHANNELS, "static": 3 * LATENT_CHANNELS}

#: Stable Video Diffusion's micro-conditions (fps - 1, motion bucket id, noise augmentation
#: strength), held constant: d4d conditions motion through its own MotionEmbedding instead.
DEFAULT_ADDED_TIME_IDS = (6.0, 127.0, 0.02)

#: The UNet class each task runs on.
TASK_BACKBONE = {"text": UNet3DConditionModel, "image": UNetSpatioTemporalConditionModel,
                 "static": UNetSpatioTemporalConditionModel}


@dataclass
class Conditions:
    """What the denoiser is conditioned on, batch first. Absent conditions are None.

    Attributes:
        motion: float32 [B], motion magnitude (docs/conventions.md version-1 scale); 0 = static.
        text_embeddings: [B, L, D] text-encoder hidden states (text task).
        image_embeddings: [B, 1, D] CLIP image embeddings of the condition image (image/static).
        image_latents: [B, C, h, w] scaled VAE latents of the condition image (image/static).
        static_latents: [B, T, C, h, w] scaled VAE latents of the static orbit (static task).
    """

    motion: torch.Tensor
    text_embeddings: torch.Tensor | None = None
    image_embeddings: torch.Tensor | None = None
    image_latents: torch.Tensor | None = None
    static_latents: torch.Tensor | None = None

    def select(self, keep: torch.Tensor, null: Conditions) -> Conditions:
        """Per clip, these conditions where ``keep`` (bool [B]) is True, else ``null``'s."""
        def pick(a, b):
            if a is None:
                return None
            mask = keep.view(-1, *([1] * (a.ndim - 1))).to(a.device)
            return torch.where(mask, a, b.to(a.dtype).expand_as(a))
        return Conditions(**{name: pick(getattr(self, name), getattr(null, name)) for name in self.__dataclass_fields__})

    def cat(self, *others: Conditions) -> Conditions:
        """Concatenate along the batch axis."""
        def join(name):
            values = [getattr(c, name) for c in (self, *others)]
            return None if values[0] is None else torch.cat(values)
        return Conditions(**{name: join(name) for name in self.__dataclass_fields__})

    def null(self, text_null: torch.Tensor | None) -> Conditions:
        """The dropped version of every condition: motion 0, the empty-prompt text embedding
        ``text_null`` ([1, L, D]) broadcast, zeros for image embeddings/latents and static latents."""
        zeros = lambda x: None if x is None else torch.zeros_like(x)  # noqa: E731
        text = None
        if self.text_embeddings is not None:
            if text_null is None:
                raise ValueError("text conditions need the empty-prompt embedding to be dropped")
            text = text_null.to(self.text_embeddings).expand_as(self.text_embeddings)
        return Conditions(motion=torch.zeros_like(self.motion), text_embeddings=text,
                          image_embeddings=zeros(self.image_embeddings), image_latents=zeros(self.image_latents),
                          static_latents=zeros(self.static_latents))

    def without_motion(self) -> Conditions:
        return replace(self, motion=torch.zeros_like(self.motion))


@contextmanager
def offset_time_embedding(unet: nn.Module, offset: torch.Tensor):
    """Within the block, ``unet.time_embedding(...)`` returns its output + ``offset`` ([B, D])."""
    def hook(module, args, output):
        return output + offset.to(output.dtype)
    handle = unet.time_embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def widen_conv_in(unet: nn.Module, in_channels: int) -> nn.Module:
    """Give ``unet.conv_in`` ``in_channels`` inputs: old weights copied, new input channels zero.

    Built explicitly (never via ``ignore_mismatched_sizes``, which leaves the resized layer
    randomly initialised or on the meta device). Updates the UNet's config so save_pretrained /
    from_pretrained round-trip. A UNet that already has ``in_channels`` is returned unchanged.
    """
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ValueError(f"conv_in has {old.in_channels} input channels; cannot narrow it to {in_channels}")
    assert_materialised(old, "conv_in")
    new = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels].copy_(old.weight)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    assert_materialised(unet.conv_in, "conv_in")
    return unet


def assert_materialised(module: nn.Module, name: str) -> None:
    """Raise ValueError naming the first parameter/buffer of ``module`` on the meta device or non-finite."""
    for kind, tensors in (("parameter", module.named_parameters()), ("buffer", module.named_buffers())):
        for tensor_name, tensor in tensors:
            if tensor.is_meta:
                raise ValueError(f"{name}.{tensor_name}: {kind} is on the meta device (never initialised)")
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(f"{name}.{tensor_name}: {kind} has NaN or Inf values")


class Denoiser(nn.Module):
    """UNet + MotionEmbedding for one task: (noisy latents, timesteps, Conditions) -> model output.

    Args:
        unet: UNet3DConditionModel (task "text") or UNetSpatioTemporalConditionModel ("image",
            "static") whose conv_in takes INPUT_CHANNELS[task] channels.
        motion_embedding: MotionEmbedding with time_embed_dim equal to the UNet's.
        task: "text", "image" or "static".
        added_time_ids: the spatio-temporal UNet's micro-conditions (fps, motion bucket, noise
            augmentation), held constant: [3] floats. Ignored by the text backbone.
    """

    def __init__(self, unet: nn.Module, motion_embedding: MotionEmbedding, task: str,
                 added_time_ids: tuple[float, ...] = DEFAULT_ADDED_TIME_IDS):
        super().__init__()
        if task not in TASK_BACKBONE:
            raise ValueError(f"task: got {task!r}, expected one of {sorted(TASK_BACKBONE)}")
        if not isinstance(unet, TASK_BACKBONE[task]):
            raise ValueError(f"task {task!r} needs a {TASK_BACKBONE[task].__name__}, got {type(unet).__name__}")
        if unet.conv_in.in_channels != INPUT_CHANNELS[task]:
            raise ValueError(f"task {task!r}: UNet conv_in takes {unet.conv_in.in_channels} channels, "
                             f"expected {INPUT_CHANNELS[task]} (call widen_conv_in)")
        time_dim = unet.time_embedding.linear_2.out_features
        if motion_embedding.config.time_embed_dim != time_dim:
            raise ValueError(f"motion embedding outputs {motion_embedding.config.time_embed_dim}, UNet time embedding is {time_dim}")
        self.unet = unet
        self.motion_embedding = motion_embedding
        self.task = task
        self.register_buffer("added_time_ids", torch.tensor(added_time_ids, dtype=torch.float32), persistent=False)

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        """noisy_latents [B, T, C, h, w], timesteps int/float [B] -> prediction [B, T, C, h, w]
        (epsilon or v, as trained), in the UNet's dtype."""
        batch, frames = noisy_latents.shape[:2]
        offset = self.motion_embedding(conditions.motion.to(noisy_latents.device))
        with offset_time_embedding(self.unet, offset):
            if self.task == "text":
                sample = noisy_latents.permute(0, 2, 1, 3, 4)
                out = self.unet(sample, timesteps, encoder_hidden_states=conditions.text_embeddings).sample
                return out.permute(0, 2, 1, 3, 4)
            parts = [noisy_latents, conditions.image_latents[:, None].expand(-1, frames, -1, -1, -1)]
            if self.task == "static":
                parts.append(conditions.static_latents)
            sample = torch.cat([p.to(noisy_latents.dtype) for p in parts], dim=2)
            ids = self.added_time_ids[None].expand(batch, -1).to(noisy_latents.device)
            return self.unet(sample, timesteps, encoder_hidden_states=conditions.image_embeddings.to(noisy_latents.dtype),
                             added_time_ids=ids).sample
