"""All the pieces of a d4d model, loaded from a diffusers-layout folder or built from a preset.

Folder layout (what ``--pretrained`` points at; ModelScope's text-to-video folder, a Stable
Video Diffusion folder and a folder d4d-train exported all have it):
``unet/  vae/  scheduler/  [text_encoder/  tokenizer/]  [image_encoder/]  [motion_embedding/]``.
A folder without ``motion_embedding/`` gets a fresh, zero-output one; a UNet whose conv_in is
narrower than the task needs is widened with zero-initialised channels (backbone.widen_conv_in).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder, DDPMScheduler
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from . import architectures as arch_lib
from .backbone import INPUT_CHANNELS, TASK_BACKBONE, assert_materialised, widen_conv_in
from .motion import MotionEmbedding

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VAE_CLASSES = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder}


@dataclass
class Components:
    """A task's models. ``text_encoder``/``tokenizer`` are set for the text task,
    ``image_encoder`` for the image and static tasks; the others are always set."""

    task: str
    unet: torch.nn.Module
    motion_embedding: MotionEmbedding
    vae: torch.nn.Module
    scheduler: DDPMScheduler
    tokenizer: CLIPTokenizer | None = None
    text_encoder: CLIPTextModel | None = None
    image_encoder: CLIPVisionModelWithProjection | None = None


def default_scheduler(prediction_type: str = "epsilon", num_train_timesteps: int = 1000) -> DDPMScheduler:
    """Stable Diffusion / ModelScope's noise schedule (scaled-linear betas 0.00085..0.012)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type=prediction_type, clip_sample=False)


def build_components(task: str, architecture: str, seed: int = 0, prediction_type: str = "epsilon",
                     num_train_timesteps: int = 1000) -> Components:
    """Random-weight components of a named architecture (training.architectures), seeded."""
    arch = arch_lib.get_architecture(architecture)
    if arch.unet_class != TASK_BACKBONE[task].__name__:
        raise ValueError(f"architecture {architecture!r} builds a {arch.unet_class}; task {task!r} needs "
                         f"{TASK_BACKBONE[task].__name__}")
    torch.manual_seed(seed)
    base_channels = arch_lib.LATENT_CHANNELS if task == "text" else 2 * arch_lib.LATENT_CHANNELS
    unet = widen_conv_in(arch_lib.build_unet(arch, base_channels), INPUT_CHANNELS[task])
    motion = MotionEmbedding(time_embed_dim=unet.time_embedding.linear_2.out_features, hidden_dim=arch.motion_hidden_dim)
    parts = Components(task=task, unet=unet, motion_embedding=motion, vae=arch_lib.build_vae(arch),
                       scheduler=default_scheduler(prediction_type, num_train_timesteps))
    if task == "text":
        parts.tokenizer = arch_lib.char_tokenizer(arch.tokenizer_max_length)
        parts.text_encoder = arch_lib.build_text_encoder(arch, parts.tokenizer)
    else:
        parts.image_encoder = arch_lib.build_image_encoder(arch)
    return parts


def _class_name(folder: Path) -> str:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())["_class_name"]
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (is {folder.parent} a diffusers-layout model folder?)") from None
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{path}: not a diffusers model config ({exc})") from None


def load_components(path: str | Path, task: str, prediction_type: str | None = None) -> Components:
    """Load a diffusers-layout folder for ``task``; widen conv_in and add a motion embedding if needed.

    ``prediction_type`` None keeps the folder's scheduler setting (its ``scheduler/`` config,
    converted to DDPMScheduler), else overrides it.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"--pretrained {root}: not a directory")
    unet_class = _class_name(root / "unet")
    expected = TASK_BACKBONE[task]
    if unet_class != expected.__name__:
        raise ValueError(f"{root / 'unet'}: is a {unet_class}; task {task!r} needs a {expected.__name__}")
    unet = expected.from_pretrained(root / "unet", low_cpu_mem_usage=False)
    unet = widen_conv_in(unet, INPUT_CHANNELS[task])
    if (root / "motion_embedding").is_dir():
        motion = MotionEmbedding.from_pretrained(root / "motion_embedding", low_cpu_mem_usage=False)
    else:
        logger.info("%s has no motion_embedding/: starting a zero-initialised one", root)
        motion = MotionEmbedding(time_embed_dim=unet.time_embedding.linear_2.out_features)
    vae_class = _class_name(root / "vae")
    if vae_class not in VAE_CLASSES:
        raise ValueError(f"{root / 'vae'}: {vae_class} is not supported; expected one of {sorted(VAE_CLASSES)}")
    vae = VAE_CLASSES[vae_class].from_pretrained(root / "vae")
    if (root / "scheduler").is_dir():
        scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler")
    else:
        scheduler = default_scheduler()
    if prediction_type is not None and scheduler.config.prediction_type != prediction_type:
        scheduler = DDPMScheduler.from_config(scheduler.config, prediction_type=prediction_type)
    parts = Components(task=task, unet=unet, motion_embedding=motion, vae=vae, scheduler=scheduler)
    if task == "text":
        parts.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        parts.text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder")
    else:
        parts.image_encoder = CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder")
    for name in ("unet", "motion_embedding", "vae", "text_encoder", "image_encoder"):
        module = getattr(parts, name)
        if module is not None:
            assert_materialised(module, name)
    return parts


# --- encoding (frozen models, no gradients) -------------------------------------------------------


@torch.no_grad()
def encode_video(vae: torch.nn.Module, video: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Pixels [B, T, 3, H, W] in [-1, 1] -> scaled latents float32 [B, T, C, H/f, W/f].

    Uses the posterior mode (deterministic, so cached and on-the-fly latents agree) times the
    VAE's ``scaling_factor``; frames are encoded ``chunk`` at a time.
    """
    batch, frames = video.shape[:2]
    flat = video.flatten(0, 1).to(vae.device, vae.dtype)
    latents = torch.cat([vae.encode(flat[i : i + chunk]).latent_dist.mode() for i in range(0, flat.shape[0], chunk)])
    latents = latents.float() * vae.config.scaling_factor
    return latents.unflatten(0, (batch, frames))


@torch.no_grad()
def decode_latents(vae: torch.nn.Module, latents: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Scaled latents [B, T, C, h, w] -> pixels float32 [B, T, 3, H, W] in [-1, 1]."""
    batch, frames = latents.shape[:2]
    flat = (latents.flatten(0, 1) / vae.config.scaling_factor).to(vae.device, vae.dtype)
    kwargs = lambda n: {"num_frames": n} if isinstance(vae, AutoencoderKLTemporalDecoder) else {}  # noqa: E731
    pixels = torch.cat([vae.decode(flat[i : i + chunk], **kwargs(flat[i : i + chunk].shape[0])).sample
                        for i in range(0, flat.shape[0], chunk)])
    return pixels.float().clamp(-1, 1).unflatten(0, (batch, frames))


@torch.no_grad()
def encode_text(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str]) -> torch.Tensor:
    """Prompts -> last hidden states float [B, L, D], L = the tokenizer's model_max_length."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


@torch.no_grad()
def encode_image(image_encoder: CLIPVisionModelWithProjection, images: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] -> CLIP image embeddings float [B, 1, D].

    Resized (bicubic, antialiased) to the encoder's square input and normalised with CLIP's
    mean and std, as Stable Video Diffusion's feature extractor does.
    """
    size = image_encoder.config.image_size
    pixels = (images.float() + 1.0) / 2.0
    pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).to(image_encoder.device, image_encoder.dtype)
    return image_encoder(pixel_values=pixels).image_embeds[:, None]
