"""Diffusion4DPipeline: DDIM sampling of a T-frame orbital video with 3D-aware guidance (inference only).

Saved and loaded with diffusers' ``save_pretrained`` / ``DiffusionPipeline.from_pretrained``
(``model_index.json`` + one folder per component, safetensors weights). The pipeline's own
config (task, clip size, caption prefix, default motion magnitude, background, micro-conditions)
is stored in ``model_index.json`` via ``register_to_config``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput

from .backbone import DEFAULT_ADDED_TIME_IDS, Conditions, Denoiser
from .components import decode_latents, encode_image, encode_text, encode_video
from .guidance import DEFAULT_W1, DEFAULT_W2, guided_prediction

STATIC_REFERENCES = ("zero-motion", "frozen")


@dataclass
class Diffusion4DOutput(BaseOutput):
    """frames: float32 [B, T, 3, H, W] in [0, 1]; latents: the final clean latents [B, T, C, h, w]."""

    frames: torch.Tensor
    latents: torch.Tensor


class Diffusion4DPipeline(DiffusionPipeline):
    """Text-, image- or static-3D-to-4D sampling with e_hat = e(z,y,m) + w1 [e(z,y,m) - e(z)] + w2 [e(z,y,m) - ebar(z,y)].

    Components: ``unet`` (UNet3DConditionModel or UNetSpatioTemporalConditionModel),
    ``motion_embedding`` (training.motion.MotionEmbedding), ``vae``, ``scheduler`` (any scheduler
    config; sampling converts it to DDIM), and ``tokenizer`` + ``text_encoder`` (text task) or
    ``image_encoder`` (image and static tasks); unused ones are None.
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->unet->vae"
    _optional_components = ["tokenizer", "text_encoder", "image_encoder"]

    def __init__(self, unet, motion_embedding, vae, scheduler, tokenizer=None, text_encoder=None, image_encoder=None,
                 task: str = "text", num_frames: int = 24, resolution: int = 256,
                 caption_prefix: str = "a dynamic asset, ", background: float = 1.0, default_motion_magnitude: float = 0.0,
                 added_time_ids: list[float] | None = None):
        super().__init__()
        self.register_modules(unet=unet, motion_embedding=motion_embedding, vae=vae, scheduler=scheduler,
                              tokenizer=tokenizer, text_encoder=text_encoder, image_encoder=image_encoder)
        self.register_to_config(task=task, num_frames=num_frames, resolution=resolution, caption_prefix=caption_prefix,
                                background=float(background),
                                default_motion_magnitude=float(default_motion_magnitude),
                                added_time_ids=list(added_time_ids or DEFAULT_ADDED_TIME_IDS))

    def denoiser(self) -> Denoiser:
        """The pipeline's UNet + motion embedding as a Denoiser (shares their weights)."""
        return Denoiser(self.unet, self.motion_embedding, self.config.task, tuple(self.config.added_time_ids))

    def conditions(self, batch: int, prompt: str | list[str] | None, image: torch.Tensor | None,
                   static_video: torch.Tensor | None, motion_magnitude: float) -> tuple[Conditions, Conditions]:
        """(conditional, unconditional) Conditions for ``batch`` clips, on the pipeline's device."""
        task, device = self.config.task, self._execution_device
        motion = torch.full((batch,), float(motion_magnitude), device=device)
        cond = Conditions(motion=motion)
        text_null = None
        if task == "text":
            if prompt is None:
                raise ValueError("task 'text' needs a prompt")
            prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
            if len(prompts) != batch:
                raise ValueError(f"got {len(prompts)} prompts for a batch of {batch}")
            prompts = [self.config.caption_prefix + p for p in prompts]
            cond.text_embeddings = encode_text(self.tokenizer, self.text_encoder, prompts).to(device)
            text_null = encode_text(self.tokenizer, self.text_encoder, [""]).to(device)
        else:
            if image is None:
                raise ValueError(f"task {task!r} needs a condition image [B, 3, H, W]")
            image = image.to(device).expand(batch, -1, -1, -1)
            cond.image_embeddings = encode_image(self.image_encoder, image).to(device)
            cond.image_latents = encode_video(self.vae, image[:, None])[:, 0].to(device)
        if task == "static":
            if static_video is None:
                raise ValueError("task 'static' needs the static orbit video [B, T, 3, H, W]")
            if static_video.shape[1] != self.config.num_frames:
                raise ValueError(f"static video has {static_video.shape[1]} frames, model makes {self.config.num_frames}")
            cond.static_latents = encode_video(self.vae, static_video.to(device).expand(batch, -1, -1, -1, -1)).to(device)
        return cond, cond.null(text_null)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, image: torch.Tensor | None = None,
                 static_video: torch.Tensor | None = None, motion_magnitude: float | None = None,
                 num_inference_steps: int = 50, w1: float = DEFAULT_W1, w2: float = DEFAULT_W2,
                 static_reference: str = "zero-motion", static_denoiser: Denoiser | None = None,
                 num_videos: int = 1, generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 eta: float = 0.0) -> Diffusion4DOutput:
        """Sample ``num_videos`` orbital videos.

        Args:
            prompt: text (task "text"); the model's caption prefix is prepended.
            image: condition image float [1 or B, 3, H, W] in [-1, 1] (tasks "image", "static").
            static_video: static orbit float [1 or B, T, 3, H, W] in [-1, 1] (task "static").
            motion_magnitude: m on the version-1 scale; None uses the model's default (the mean m
                of its training data).
            num_inference_steps: DDIM steps (paper: 50).
            w1, w2: guidance weights (paper: 7.0, 0.5).
            static_reference: "zero-motion" (ebar = this model with m = 0) or "frozen" (ebar =
                ``static_denoiser``, a separate static model given the same conditions without m).
            latents: optional initial noise [B, T, C, h, w].
            eta: DDIM eta (0: deterministic).
        """
        if static_reference not in STATIC_REFERENCES:
            raise ValueError(f"static_reference: got {static_reference!r}, expected one of {STATIC_REFERENCES}")
        if static_reference == "frozen" and w2 != 0 and static_denoiser is None:
            raise ValueError("static_reference 'frozen' needs static_denoiser (a static model)")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: got {num_inference_steps}, expected >= 1")
        m = self.config.default_motion_magnitude if motion_magnitude is None else float(motion_magnitude)
        device, dtype = self._execution_device, self.unet.dtype
        cond, uncond = self.conditions(num_videos, prompt, image, static_video, m)
        denoiser = self.denoiser()
        size = self.config.resolution // (2 ** (len(self.vae.config.block_out_channels) - 1))
        shape = (num_videos, self.config.num_frames, self.unet.config.out_channels, size, size)
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu").to(device)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents: got shape {tuple(latents.shape)}, expected {shape}")
        latents = latents.to(device, torch.float32)
        scheduler = DDIMScheduler.from_config(self.scheduler.config, clip_sample=False, set_alpha_to_one=False)
        scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * scheduler.init_noise_sigma

        branches = [cond]
        if w1 != 0:
            branches.append(uncond)
        if w2 != 0 and static_reference == "zero-motion":
            branches.append(cond.without_motion())
        batched = branches[0].cat(*branches[1:])
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(latents, t).to(dtype)
            n = len(branches)
            timesteps = t.expand(n * num_videos).to(device)
            outputs = denoiser(model_in.repeat(n, 1, 1, 1, 1), timesteps, batched).float().chunk(n)
            conditional = outputs[0]
            unconditional = outputs[1] if w1 != 0 else None
            static = None
            if w2 != 0:
                if static_reference == "zero-motion":
                    static = outputs[-1]
                else:
                    static = static_denoiser(model_in.to(static_denoiser.unet.dtype), timesteps[:num_videos],
                                             cond.without_motion()).float()
            guided = guided_prediction(conditional, unconditional, static, w1, w2)
            latents = scheduler.step(guided, t, latents, eta=eta, generator=generator).prev_sample
        frames = (decode_latents(self.vae, latents) + 1.0) / 2.0
        return Diffusion4DOutput(frames=frames.clamp(0, 1), latents=latents)
