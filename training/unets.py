"""Each diffusers video UNet on its own terms: how its pipeline encodes conditions and calls it.

One adapter per backbone, read from diffusers' own pipelines (0.42):

- ``modelscope``: ``UNet3DConditionModel`` (``TextToVideoSDPipeline``). Text by cross-attention
  (the text encoder's last hidden state). Sample [B, C, T, h, w]. No micro-conditions.
- ``svd``: ``UNetSpatioTemporalConditionModel`` (``StableVideoDiffusionPipeline``). CLIP image
  embedding of the condition image (SVD's antialiased resize to the encoder's size) by
  cross-attention; the condition image's VAE latents, *unscaled* (posterior mode, no
  ``scaling_factor``) and encoded from the image plus ``noise_aug_strength`` x Gaussian noise,
  concatenated on the channels of every frame; ``added_time_ids`` = (fps - 1, motion bucket id,
  noise_aug_strength). Unconditional branch: zero embedding and zero latents.
- ``i2vgen-xl``: ``I2VGenXLUNet`` (``I2VGenXLPipeline``). Text by cross-attention (the
  penultimate text-encoder layer + its final layer norm: the pipeline's ``clip_skip=1``); CLIP
  image embedding of the condition image (8-bit, bilinear resize to the encoder's size); the
  condition image's *scaled* VAE latents as the first frame of ``image_latents`` [B, C, T, h, w]
  whose frames 1..T-1 are the constant position mask i / (T - 1); fps as a micro-condition.
  Unconditional branch: empty prompt and zero image embedding, the image latents kept.

The static orbit (static task) enters as channels: SVD's ``conv_in`` is widened
(``backbone.widen_conv_in``); I2VGen-XL's ``conv_in`` size is fixed by its config (2 x
in_channels), so a separate zero-initialised convolution of the static latents is added to its
output (``backbone.StaticOrbitInput``), which equals widening it. Static latents are in the
condition space of the backbone: unscaled for SVD, scaled for I2VGen-XL.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass

import numpy as np
import torch
from diffusers import I2VGenXLUNet, UNet3DConditionModel, UNetSpatioTemporalConditionModel
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from PIL import Image

from .architectures import LATENT_CHANNELS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class MicroConditions:
    """Constant micro-conditions of a backbone, stored with the model so sampling repeats training.

    Attributes:
        fps: frames per second as the UNet is told (SVD gets fps - 1, as its pipeline does;
            I2VGen-XL gets fps); None for backbones without one.
        motion_bucket_id: SVD's motion bucket (d4d conditions motion through its own embedding
            and keeps this constant).
        noise_aug_strength: SVD's condition-image noise level: the Gaussian noise actually
            added to the condition image before encoding, and the value the UNet is told.
    """

    fps: int | None = None
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02

    def to_dict(self) -> dict:
        return asdict(self)


def _normalise_clip(pixels01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CLIP_MEAN, device=pixels01.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels01.device).view(1, 3, 1, 1)
    return (pixels01 - mean) / std


def quantise_8bit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] rounded to the nearest 8-bit level (what a PIL image holds), same range."""
    return ((images.float().clamp(-1, 1) + 1.0) * 127.5).round() / 127.5 - 1.0


class UNetAdapter(abc.ABC):
    """How one backbone is conditioned and called. Subclasses set the class attributes."""

    name: str = ""
    unet_class: type = torch.nn.Module
    tasks: tuple[str, ...] = ()
    uses_text: bool = False
    text_clip_skip: int | None = None
    uncond_keeps_image_latents: bool = False
    default_fps: int | None = None

    def micro(self, fps: int | None = None, motion_bucket_id: int = MicroConditions.motion_bucket_id,
              noise_aug_strength: float = MicroConditions.noise_aug_strength) -> MicroConditions:
        """This backbone's micro-conditions; ``fps`` None takes the backbone's default."""
        return MicroConditions(fps=self.default_fps if fps is None else fps, motion_bucket_id=motion_bucket_id,
                               noise_aug_strength=noise_aug_strength)

    def image_embeddings(self, image_encoder, images: torch.Tensor) -> torch.Tensor:
        """Condition images [B, 3, H, W] in [-1, 1] -> CLIP image embeddings float [B, 1, D]."""
        raise ValueError(f"backbone {self.name!r} takes no condition image")

    def image_latents(self, vae, images: torch.Tensor, generator: torch.Generator | None, micro: MicroConditions,
                      first_frame_latents: torch.Tensor | None = None) -> torch.Tensor:
        """The condition image's latents [B, C, h, w] in this backbone's condition space.

        ``first_frame_latents`` (scaled posterior mode, as cached for training) is used when the
        backbone's condition is exactly that; otherwise ``images`` [B, 3, H, W] in [-1, 1] are encoded.
        """
        raise ValueError(f"backbone {self.name!r} takes no condition image")

    def static_condition(self, vae, static_latents: torch.Tensor) -> torch.Tensor:
        """Scaled static-orbit latents [B, T, C, h, w] -> this backbone's condition space."""
        raise ValueError(f"backbone {self.name!r} takes no static orbit")

    @abc.abstractmethod
    def forward(self, unet, noisy: torch.Tensor, timesteps: torch.Tensor, cond, micro: MicroConditions) -> torch.Tensor:
        """UNet output [B, T, C, h, w] for the UNet input ``noisy`` [B, T, C, h, w] (already scaled by
        the scheduler) at ``timesteps`` [B] (what the UNet is given: integer steps or c_noise)."""


class ModelScopeAdapter(UNetAdapter):
    name = "modelscope"
    unet_class = UNet3DConditionModel
    tasks = ("text",)
    uses_text = True

    def forward(self, unet, noisy, timesteps, cond, micro):
        sample = noisy.permute(0, 2, 1, 3, 4)
        text = cond.text_embeddings.to(noisy.dtype)
        pooled = text.mean(dim=1) if unet.config.time_cond_proj_dim is not None else None
        out = unet(sample, timesteps, encoder_hidden_states=text, timestep_cond=pooled).sample
        return out.permute(0, 2, 1, 3, 4)


class SVDAdapter(UNetAdapter):
    name = "svd"
    unet_class = UNetSpatioTemporalConditionModel
    tasks = ("image", "static")
    default_fps = 7

    @torch.no_grad()
    def image_embeddings(self, image_encoder, images):
        size = image_encoder.config.image_size
        pixels = _resize_with_antialiasing(images.float(), (size, size))
        pixels = _normalise_clip((pixels + 1.0) / 2.0).to(image_encoder.device, image_encoder.dtype)
        return image_encoder(pixel_values=pixels).image_embeds[:, None].float()

    @torch.no_grad()
    def image_latents(self, vae, images, generator, micro, first_frame_latents=None):
        images = images.float()
        noise = torch.randn(images.shape, generator=generator, device=generator.device if generator is not None else "cpu")
        noisy = (images + micro.noise_aug_strength * noise.to(images.device)).to(vae.device, vae.dtype)
        return vae.encode(noisy).latent_dist.mode().float()

    def static_condition(self, vae, static_latents):
        return static_latents / vae.config.scaling_factor

    def forward(self, unet, noisy, timesteps, cond, micro):
        frames = noisy.shape[1]
        parts = [noisy, cond.image_latents[:, None].expand(-1, frames, -1, -1, -1)]
        if cond.static_latents is not None:
            parts.append(cond.static_latents)
        sample = torch.cat([p.to(noisy.dtype) for p in parts], dim=2)
        ids = torch.tensor([micro.fps - 1, micro.motion_bucket_id, micro.noise_aug_strength], dtype=noisy.dtype,
                           device=noisy.device)
        return unet(sample, timesteps, encoder_hidden_states=cond.image_embeddings.to(noisy.dtype),
                    added_time_ids=ids[None].expand(noisy.shape[0], -1)).sample


class I2VGenXLAdapter(UNetAdapter):
    name = "i2vgen-xl"
    unet_class = I2VGenXLUNet
    tasks = ("image", "static")
    uses_text = True
    text_clip_skip = 1
    uncond_keeps_image_latents = True
    default_fps = 16

    @torch.no_grad()
    def image_embeddings(self, image_encoder, images):
        size = image_encoder.config.image_size
        pixels = []
        for image in quantise_8bit(images).cpu():
            array = ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
            resized = Image.fromarray(array).resize((size, size), Image.BILINEAR)
            pixels.append(torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1))
        batch = _normalise_clip(torch.stack(pixels)).to(image_encoder.device, image_encoder.dtype)
        return image_encoder(pixel_values=batch).image_embeds[:, None].float()

    @torch.no_grad()
    def image_latents(self, vae, images, generator, micro, first_frame_latents=None):
        if first_frame_latents is not None:
            return first_frame_latents.float()
        posterior = vae.encode(quantise_8bit(images).to(vae.device, vae.dtype)).latent_dist
        return posterior.sample(generator).float() * vae.config.scaling_factor

    def static_condition(self, vae, static_latents):
        return static_latents

    @staticmethod
    def position_latents(image_latents: torch.Tensor, frames: int) -> torch.Tensor:
        """I2VGen-XL's ``image_latents`` [B, C, T, h, w]: the image's latents, then T - 1 frames of
        the constant i / (T - 1), i = 1..T-1 (``I2VGenXLPipeline.prepare_image_latents``)."""
        first = image_latents[:, :, None]
        masks = [torch.full_like(first, (i + 1) / (frames - 1)) for i in range(frames - 1)]
        return torch.cat([first, *masks], dim=2)

    def forward(self, unet, noisy, timesteps, cond, micro):
        batch, frames = noisy.shape[:2]
        sample = noisy.permute(0, 2, 1, 3, 4)
        fps = torch.full((batch,), micro.fps, dtype=torch.long, device=noisy.device)
        out = unet(sample, timesteps, fps=fps, image_latents=self.position_latents(cond.image_latents.to(noisy.dtype), frames),
                   image_embeddings=cond.image_embeddings.to(noisy.dtype),
                   encoder_hidden_states=cond.text_embeddings.to(noisy.dtype)).sample
        return out.permute(0, 2, 1, 3, 4)


ADAPTERS: dict[str, UNetAdapter] = {a.name: a for a in (ModelScopeAdapter(), SVDAdapter(), I2VGenXLAdapter())}
BACKBONES = tuple(ADAPTERS)


def adapter_for(unet: torch.nn.Module) -> UNetAdapter:
    """The adapter of ``unet``'s class; ValueError naming the supported classes otherwise."""
    for adapter in ADAPTERS.values():
        if type(unet) is adapter.unet_class:
            return adapter
    valid = ", ".join(a.unet_class.__name__ for a in ADAPTERS.values())
    raise ValueError(f"UNet class {type(unet).__name__} is not supported; expected one of {valid}")


def adapter_for_class_name(class_name: str) -> UNetAdapter:
    for adapter in ADAPTERS.values():
        if adapter.unet_class.__name__ == class_name:
            return adapter
    valid = ", ".join(a.unet_class.__name__ for a in ADAPTERS.values())
    raise ValueError(f"UNet class {class_name} is not supported; expected one of {valid}")


def check_task(adapter: UNetAdapter, task: str) -> None:
    if task not in adapter.tasks:
        valid = [a.name for a in ADAPTERS.values() if task in a.tasks]
        raise ValueError(f"task {task!r} cannot run on the {adapter.name} backbone ({adapter.unet_class.__name__}); "
                         f"backbones for it: {valid}")


def svd_conv_in_channels(task: str) -> int:
    """SVD's conv_in width per task: noisy latents, image latents, then static latents (static task)."""
    return {"image": 2 * LATENT_CHANNELS, "static": 3 * LATENT_CHANNELS}[task]
