"""Diffusion4DPipeline: sampling of a T-frame orbital video with 3D-aware guidance (inference only).

Saved and loaded with diffusers' ``save_pretrained`` / ``DiffusionPipeline.from_pretrained``
(``model_index.json`` + one folder per component, safetensors weights). The pipeline's own
config (task, target, clip size, caption prefix, default motion magnitude, background, the
backbone's micro-conditions, the recorded static reference) is stored in ``model_index.json``
via ``register_to_config``.

Each backbone is sampled on its own terms: its scheduler (``schedules.sampling_scheduler``: DDIM
for ModelScope and I2VGen-XL, SVD's EDM Euler sampler), its condition encoding and unconditional
branch (``training.unets``), and the same order of random draws as its diffusers pipeline
(condition noise first, then the initial latents), so with zero-initialised additions, w2 = 0
and w1 = guidance_scale - 1 it reproduces the stock pipeline step for step (tests/test_train_backbones.py).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from d4d.rendering.orbits import OrbitLayout

from .backbone import Conditions, Denoiser
from .components import decode_latents, encode_text, encode_video
from .guidance import DEFAULT_W1, DEFAULT_W2, guided_prediction
from .schedules import sampling_scheduler
from .unets import MicroConditions, adapter_for

#: ebar of the guidance: a separate model of static orbits (the paper's), or this model at m = 0 (a shortcut).
STATIC_REFERENCES = ("static-model", "zero-motion")


@dataclass
class Diffusion4DOutput(BaseOutput):
    """frames: float32 [B, T, 3, H, W] in [0, 1]; latents: the final clean latents [B, T, C, h, w]."""

    frames: torch.Tensor
    latents: torch.Tensor


class Diffusion4DPipeline(DiffusionPipeline):
    """Text-, image- or static-3D-to-4D sampling with e_hat = e(z,y,m) + w1 [e(z,y,m) - e(z)] + w2 [e(z,y,m) - ebar(z,y)].

    Components: ``unet`` (UNet3DConditionModel, I2VGenXLUNet or UNetSpatioTemporalConditionModel),
    ``vae``, ``scheduler`` (the backbone's own config), ``motion_embedding``
    (training.motion.MotionEmbedding; None for a static model), ``static_input``
    (backbone.StaticOrbitInput, I2VGen-XL's static task), ``tokenizer`` + ``text_encoder``
    (ModelScope, I2VGen-XL) and ``image_encoder`` (image and static tasks); unused ones are None.

    Config: ``target`` "dynamic" (the 4D model) or "static" (a model of static orbits, no m);
    ``static_reference`` the folder of the static model this one was fine-tuned from (recorded by
    d4d-train, used as ebar by d4d-sample) and ``static_reference_kind`` what it is.
    """

    model_cpu_offload_seq = "text_encoder->image_encoder->unet->vae"
    _optional_components = ["tokenizer", "text_encoder", "image_encoder", "motion_embedding", "static_input"]

    def __init__(self, unet, vae, scheduler, motion_embedding=None, static_input=None, tokenizer=None, text_encoder=None,
                 image_encoder=None, task: str = "text", target: str = "dynamic", num_frames: int = 24, resolution: int = 256,
                 caption_prefix: str = "a dynamic asset, ", background: float = 1.0, default_motion_magnitude: float = 0.0,
                 fps: int | None = None, motion_bucket_id: int = MicroConditions.motion_bucket_id,
                 noise_aug_strength: float = MicroConditions.noise_aug_strength, static_reference: str | None = None,
                 static_reference_kind: str | None = None, orbit_layout: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler, motion_embedding=motion_embedding,
                              static_input=static_input, tokenizer=tokenizer, text_encoder=text_encoder,
                              image_encoder=image_encoder)
        micro = adapter_for(unet).micro(fps, motion_bucket_id, noise_aug_strength)
        self.register_to_config(task=task, target=target, num_frames=num_frames, resolution=resolution,
                                caption_prefix=caption_prefix, background=float(background),
                                default_motion_magnitude=float(default_motion_magnitude), fps=micro.fps,
                                motion_bucket_id=int(micro.motion_bucket_id), noise_aug_strength=float(micro.noise_aug_strength),
                                static_reference=static_reference, static_reference_kind=static_reference_kind,
                                orbit_layout=orbit_layout or OrbitLayout(frames=num_frames).to_dict())

    @property
    def orbit_layout(self) -> OrbitLayout:
        """The cameras of the orbit the model was trained on; its samples are written on them."""
        return OrbitLayout.from_dict(self.config.orbit_layout)

    @property
    def micro(self) -> MicroConditions:
        return MicroConditions(self.config.fps, self.config.motion_bucket_id, self.config.noise_aug_strength)

    def denoiser(self) -> Denoiser:
        """The pipeline's UNet + motion embedding (+ static input) as a Denoiser (shares their weights)."""
        return Denoiser(self.unet, self.motion_embedding, self.config.task, self.micro, self.static_input)

    def conditions(self, batch: int, prompt: str | list[str] | None, image: torch.Tensor | None,
                   static_video: torch.Tensor | None, motion_magnitude: float,
                   generator: torch.Generator | None) -> tuple[Conditions, Conditions]:
        """(conditional, unconditional) Conditions for ``batch`` clips, on the pipeline's device.

        The text is the caption prefix + ``prompt`` (required for the text task; optional for
        I2VGen-XL's image tasks, where it defaults to the prefix alone). Condition-image noise
        (SVD) and posterior samples (I2VGen-XL) are drawn from ``generator``.
        """
        task, device, adapter = self.config.task, self._execution_device, adapter_for(self.unet)
        cond = Conditions(motion=torch.full((batch,), float(motion_magnitude), device=device))
        text_null = None
        if task == "text" and prompt is None:
            raise ValueError("task 'text' needs a prompt")
        if adapter.uses_text:
            prompts = [prompt or ""] * batch if prompt is None or isinstance(prompt, str) else list(prompt)
            if len(prompts) != batch:
                raise ValueError(f"got {len(prompts)} prompts for a batch of {batch}")
            prompts = [self.config.caption_prefix + p for p in prompts]
            cond.text_embeddings = encode_text(self.tokenizer, self.text_encoder, prompts, adapter.text_clip_skip).to(device)
            text_null = encode_text(self.tokenizer, self.text_encoder, [""], adapter.text_clip_skip).to(device)
        if task != "text":
            if image is None:
                raise ValueError(f"task {task!r} needs a condition image [B, 3, H, W]")
            image = image.to(device).expand(batch, -1, -1, -1)
            cond.image_embeddings = adapter.image_embeddings(self.image_encoder, image).to(device)
            cond.image_latents = adapter.image_latents(self.vae, image, generator, self.micro).to(device)
        if task == "static":
            if static_video is None:
                raise ValueError("task 'static' needs the static orbit video [B, T, 3, H, W]")
            if static_video.shape[1] != self.config.num_frames:
                raise ValueError(f"static video has {static_video.shape[1]} frames, model makes {self.config.num_frames}")
            latents = encode_video(self.vae, static_video.to(device).expand(batch, -1, -1, -1, -1)).to(device)
            cond.static_latents = adapter.static_condition(self.vae, latents)
        return cond, cond.null(text_null, keep_image_latents=adapter.uncond_keeps_image_latents)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, image: torch.Tensor | None = None,
                 static_video: torch.Tensor | None = None, motion_magnitude: float | None = None,
                 num_inference_steps: int = 50, w1: float = DEFAULT_W1, w2: float | None = None,
                 static_reference: str = "static-model", static_denoiser: Denoiser | None = None,
                 num_videos: int = 1, generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 eta: float = 0.0) -> Diffusion4DOutput:
        """Sample ``num_videos`` orbital videos.

        Args:
            prompt: text (task "text"; optional on I2VGen-XL); the model's caption prefix is prepended.
            image: condition image float [1 or B, 3, H, W] in [-1, 1] (tasks "image", "static").
            static_video: static orbit float [1 or B, T, 3, H, W] in [-1, 1] (task "static").
            motion_magnitude: m on the version-1 scale; None uses the model's default (the mean m
                of its training data). Ignored by a static model.
            num_inference_steps: sampler steps (paper: 50 DDIM steps).
            w1, w2: guidance weights (paper: 7.0, 0.5); w2 None is 0.5 for a dynamic model, 0
                for a static model (which has no 3D-aware term).
            static_reference: "static-model" (ebar = ``static_denoiser``, a model of static orbits
                given the same conditions without m: the paper's) or "zero-motion" (ebar = this
                model at m = 0, batched with the other branches: a shortcut whose m = 0 branch was
                trained on dynamic targets, so it predicts average motion, not a static orbit).
            static_denoiser: the static model's Denoiser (same backbone and task), needed when
                static_reference is "static-model" and w2 != 0.
            latents: optional initial noise [B, T, C, h, w] (scaled by the sampler's init sigma).
            eta: DDIM eta (0: deterministic); ignored by SVD's Euler sampler.
        """
        dynamic = self.config.target == "dynamic"
        w2 = (DEFAULT_W2 if dynamic else 0.0) if w2 is None else float(w2)
        if not dynamic and w2 != 0:
            raise ValueError(f"w2={w2}: this is a static model (target 'static'), it has no 3D-aware term; use w2=0")
        if static_reference not in STATIC_REFERENCES:
            raise ValueError(f"static_reference: got {static_reference!r}, expected one of {STATIC_REFERENCES}")
        if static_reference == "static-model" and w2 != 0 and static_denoiser is None:
            raise ValueError("static_reference 'static-model' with w2 != 0 needs static_denoiser (a model of static orbits)")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: got {num_inference_steps}, expected >= 1")
        m = self.config.default_motion_magnitude if motion_magnitude is None else float(motion_magnitude)
        device, dtype = self._execution_device, self.unet.dtype
        cond, uncond = self.conditions(num_videos, prompt, image, static_video, m if dynamic else 0.0, generator)
        denoiser = self.denoiser()
        size = self.config.resolution // (2 ** (len(self.vae.config.block_out_channels) - 1))
        shape = (num_videos, self.config.num_frames, self.unet.config.out_channels, size, size)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents: got shape {tuple(latents.shape)}, expected {shape}")
        latents = latents.to(device, torch.float32)
        scheduler = sampling_scheduler(self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * scheduler.init_noise_sigma
        step_parameters = inspect.signature(scheduler.step).parameters
        step_kwargs = {k: v for k, v in (("eta", eta), ("generator", generator)) if k in step_parameters}

        branches = [cond]
        if w1 != 0:
            branches.append(uncond)
        if w2 != 0 and static_reference == "zero-motion":
            branches.append(cond.without_motion())
        batched = branches[0].cat(*branches[1:])
        n = len(branches)
        for t in self.progress_bar(scheduler.timesteps):
            model_in = scheduler.scale_model_input(latents, t)
            timesteps = t.expand(n * num_videos).to(device)
            outputs = denoiser(model_in.repeat(n, 1, 1, 1, 1).to(dtype), timesteps, batched).float().chunk(n)
            unconditional = outputs[1] if w1 != 0 else None
            static = None
            if w2 != 0:
                if static_reference == "zero-motion":
                    static = outputs[-1]
                else:
                    static = static_denoiser(model_in.to(static_denoiser.unet.dtype), timesteps[:num_videos],
                                             cond.without_motion()).float()
            guided = guided_prediction(outputs[0], unconditional, static, w1, w2)
            latents = scheduler.step(guided, t, latents, **step_kwargs).prev_sample
        frames = (decode_latents(self.vae, latents) + 1.0) / 2.0
        return Diffusion4DOutput(frames=frames.clamp(0, 1), latents=latents)
