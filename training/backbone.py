"""The 4D-aware denoiser: a stock diffusers video UNet plus the paper's two additions.

How the additions attach (nothing in diffusers is patched or subclassed):

- Motion magnitude: ``MotionEmbedding`` (training.motion) maps m [B] to [B, time_embed_dim].
  ``offset_time_embedding`` registers, for the duration of one UNet call, a forward hook on the
  UNet's ``time_embedding`` module that adds that vector to its output. All three backbones
  compute ``emb = self.time_embedding(...)`` once per clip ([B, time_embed_dim]) before
  repeating it per frame, so the motion vector reaches every resnet exactly like the timestep
  does, and the saved UNet stays a plain diffusers UNet. A static model (``--target static``)
  has no motion embedding at all.
- Static orbit: its latents are concatenated on the channel axis of the UNet input. SVD's
  ``conv_in`` is widened by ``widen_conv_in`` with the new input channels zero-initialised.
  I2VGen-XL's ``conv_in`` width is fixed by its config, so ``StaticOrbitInput`` (a separate,
  zero-initialised convolution with conv_in's kernel) adds its response to the static latents
  to conv_in's output through a forward hook: the same function as a widened conv_in, since a
  convolution is linear in its input channels.

Layouts: every tensor here is batch-first and frame-second, [B, T, C, h, w]; the backbone
adapters (training.unets) permute for the UNets whose sample is [B, C, T, h, w].
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .motion import MotionEmbedding
from .unets import I2VGenXLAdapter, MicroConditions, SVDAdapter, adapter_for, check_task, svd_conv_in_channels


@dataclass
class Conditions:
    """What the denoiser is conditioned on, batch first. Absent conditions are None.

    Attributes:
        motion: float32 [B], motion magnitude (docs/conventions.md version-1 scale); 0 = static.
        text_embeddings: [B, L, D] text-encoder hidden states (text task; and the image tasks on
            I2VGen-XL, which reads text too).
        image_embeddings: [B, 1, D] CLIP image embeddings of the condition image (image/static).
        image_latents: [B, C, h, w] VAE latents of the condition image, in the backbone's
            condition space (training.unets: unscaled + noise-augmented for SVD, scaled for I2VGen-XL).
        static_latents: [B, T, C, h, w] VAE latents of the static orbit (static task), in the
            backbone's condition space.
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

    def null(self, text_null: torch.Tensor | None, keep_image_latents: bool = False) -> Conditions:
        """The dropped version of every condition: motion 0, the empty-prompt text embedding
        ``text_null`` ([1, L, D]) broadcast, zeros for image embeddings, static latents and (unless
        ``keep_image_latents``, as I2VGen-XL's pipeline keeps them) the image latents."""
        zeros = lambda x: None if x is None else torch.zeros_like(x)  # noqa: E731
        text = None
        if self.text_embeddings is not None:
            if text_null is None:
                raise ValueError("text conditions need the empty-prompt embedding to be dropped")
            text = text_null.to(self.text_embeddings).expand_as(self.text_embeddings)
        return Conditions(motion=torch.zeros_like(self.motion), text_embeddings=text,
                          image_embeddings=zeros(self.image_embeddings),
                          image_latents=self.image_latents if keep_image_latents else zeros(self.image_latents),
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


class StaticOrbitInput(ModelMixin, ConfigMixin):
    """The static orbit's input channels for a UNet whose conv_in cannot be widened (I2VGen-XL).

    ``Conv2d(latent_channels, out_channels, kernel_size, padding)``, no bias, weights zero at
    init. ``attached`` adds ``conv(static_latents)`` to the output of ``unet.conv_in`` during one
    call, which is conv_in applied to [its own input, static latents] with the new channels'
    weights held here.
    """

    @register_to_config
    def __init__(self, latent_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(latent_channels, out_channels, kernel_size, padding=padding, bias=False)
        nn.init.zeros_(self.conv.weight)

    @classmethod
    def for_unet(cls, unet: nn.Module, latent_channels: int) -> StaticOrbitInput:
        conv = unet.conv_in
        return cls(latent_channels, conv.out_channels, conv.kernel_size[0], conv.padding[0]).to(conv.weight.device)

    @contextmanager
    def attached(self, unet: nn.Module, static_latents: torch.Tensor):
        """Within the block, ``unet.conv_in(x)`` returns conv_in(x) + conv(static latents);
        ``static_latents`` [B, T, C, h, w] match conv_in's batch-major [B * T, ...] input."""
        flat = static_latents.flatten(0, 1)

        def hook(module, args, output):
            return output + self.conv(flat.to(output.dtype))

        handle = unet.conv_in.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()


class Denoiser(nn.Module):
    """UNet + motion embedding (+ static-orbit input) for one task: (UNet input, timesteps, Conditions) -> output.

    Args:
        unet: UNet3DConditionModel (task "text"), UNetSpatioTemporalConditionModel or I2VGenXLUNet
            ("image", "static"); SVD's conv_in must take its task's channels (widen_conv_in).
        motion_embedding: MotionEmbedding with time_embed_dim equal to the UNet's, or None for a
            static model (trained on static orbits, no m).
        task: "text", "image" or "static".
        micro: the backbone's constant micro-conditions (training.unets.MicroConditions).
        static_input: StaticOrbitInput for I2VGen-XL's static task (None otherwise).
    """

    def __init__(self, unet: nn.Module, motion_embedding: MotionEmbedding | None, task: str,
                 micro: MicroConditions | None = None, static_input: StaticOrbitInput | None = None):
        super().__init__()
        self.adapter = adapter_for(unet)
        check_task(self.adapter, task)
        if isinstance(self.adapter, SVDAdapter) and unet.conv_in.in_channels != svd_conv_in_channels(task):
            raise ValueError(f"task {task!r}: UNet conv_in takes {unet.conv_in.in_channels} channels, "
                             f"expected {svd_conv_in_channels(task)} (call widen_conv_in)")
        needs_static_input = isinstance(self.adapter, I2VGenXLAdapter) and task == "static"
        if needs_static_input != (static_input is not None):
            raise ValueError(f"task {task!r} on {self.adapter.name}: static_input must be "
                             f"{'a StaticOrbitInput' if needs_static_input else 'None'}")
        time_dim = unet.time_embedding.linear_2.out_features
        if motion_embedding is not None and motion_embedding.config.time_embed_dim != time_dim:
            raise ValueError(f"motion embedding outputs {motion_embedding.config.time_embed_dim}, UNet time embedding is {time_dim}")
        self.unet = unet
        self.motion_embedding = motion_embedding
        self.static_input = static_input
        self.task = task
        self.micro = micro or self.adapter.micro()

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        """UNet input [B, T, C, h, w] (the scheduler-scaled noisy latents), timesteps [B] (integer
        steps, or SVD's c_noise = 0.25 ln sigma) -> output [B, T, C, h, w] (epsilon or v, as the
        scheduler's prediction_type), in the UNet's dtype."""
        motion = nullcontext()
        if self.motion_embedding is not None:
            offset = self.motion_embedding(conditions.motion.to(noisy_latents.device))
            motion = offset_time_embedding(self.unet, offset)
        static = nullcontext()
        if self.static_input is not None:
            static = self.static_input.attached(self.unet, conditions.static_latents.to(noisy_latents.device))
            conditions = replace(conditions, static_latents=None)
        with motion, static:
            return self.adapter.forward(self.unet, noisy_latents, timesteps, conditions, self.micro)
