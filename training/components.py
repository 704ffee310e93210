"""All the pieces of a d4d model, loaded from a diffusers-layout folder or built from a preset.

Folder layout (what ``--pretrained`` points at; ModelScope's text-to-video folder, an I2VGen-XL
folder, a Stable Video Diffusion folder and a folder d4d-train exported all have it):
``unet/  vae/  scheduler/  [text_encoder/  tokenizer/]  [image_encoder/]  [motion_embedding/]  [static_input/]``.
The UNet's class picks the backbone (training.unets); its scheduler is kept as the folder ships
it (training.schedules). A folder without ``motion_embedding/`` gets a fresh, zero-output one
(a static model, ``target="static"``, gets none); the static task's channels are added with zero
weights (SVD: ``backbone.widen_conv_in``; I2VGen-XL: ``backbone.StaticOrbitInput``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from . import architectures as arch_lib
from .backbone import StaticOrbitInput, assert_materialised, widen_conv_in
from .motion import MotionEmbedding
from .schedules import load_scheduler, shifted_scheduler, stock_scheduler, with_prediction_type
from .unets import ADAPTERS, SVDAdapter, UNetAdapter, adapter_for, adapter_for_class_name, check_task, svd_conv_in_channels

logger = logging.getLogger(__name__)

VAE_CLASSES = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder}
TARGETS = ("dynamic", "static")


@dataclass
class Components:
    """A task's models. ``tokenizer``/``text_encoder`` are set when the backbone reads text
    (ModelScope, I2VGen-XL), ``image_encoder`` for the image and static tasks,
    ``motion_embedding`` unless this is a static model, ``static_input`` for I2VGen-XL's static task."""

    task: str
    unet: torch.nn.Module
    motion_embedding: MotionEmbedding | None
    vae: torch.nn.Module
    scheduler: object
    tokenizer: CLIPTokenizer | None = None
    text_encoder: CLIPTextModel | None = None
    image_encoder: CLIPVisionModelWithProjection | None = None
    static_input: StaticOrbitInput | None = None

    @property
    def adapter(self) -> UNetAdapter:
        return adapter_for(self.unet)


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target: got {target!r}, expected one of {TARGETS}")


def _task_additions(unet: torch.nn.Module, adapter: UNetAdapter, task: str, static_input: StaticOrbitInput | None):
    """(unet with SVD's conv_in widened for the task, the I2VGen-XL static input or None)."""
    if isinstance(adapter, SVDAdapter):
        return widen_conv_in(unet, svd_conv_in_channels(task)), None
    if adapter.name == "i2vgen-xl" and task == "static":
        return unet, static_input or StaticOrbitInput.for_unet(unet, arch_lib.LATENT_CHANNELS)
    return unet, None


def build_components(task: str, architecture: str, seed: int = 0, prediction_type: str | None = None,
                     target: str = "dynamic", noise_shift: float = 1.0) -> Components:
    """Random-weight components of a named architecture (training.architectures), seeded, with
    the backbone's stock scheduler (``prediction_type`` None keeps its own), its SNR divided by
    ``noise_shift``^2 (schedules.shifted_scheduler)."""
    _check_target(target)
    arch = arch_lib.get_architecture(architecture)
    adapter = ADAPTERS[arch.backbone]
    check_task(adapter, task)
    torch.manual_seed(seed)
    unet, static_input = _task_additions(arch_lib.build_unet(arch), adapter, task, None)
    motion = None
    if target == "dynamic":
        motion = MotionEmbedding(time_embed_dim=unet.time_embedding.linear_2.out_features, hidden_dim=arch.motion_hidden_dim)
    parts = Components(task=task, unet=unet, motion_embedding=motion, vae=arch_lib.build_vae(arch),
                       scheduler=with_prediction_type(shifted_scheduler(stock_scheduler(arch.backbone), noise_shift), prediction_type),
                       static_input=static_input)
    if adapter.uses_text:
        parts.tokenizer = arch_lib.char_tokenizer(arch.tokenizer_max_length)
        parts.text_encoder = arch_lib.build_text_encoder(arch, parts.tokenizer)
    if task != "text":
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


def load_components(path: str | Path, task: str, prediction_type: str | None = None, target: str = "dynamic") -> Components:
    """Load a diffusers-layout folder for ``task``; add the task's static channels and a motion
    embedding (dynamic target) where the folder has none.

    ``prediction_type`` None keeps the folder's scheduler setting, else overrides it.
    """
    _check_target(target)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"--pretrained {root}: not a directory")
    adapter = adapter_for_class_name(_class_name(root / "unet"))
    check_task(adapter, task)
    unet = adapter.unet_class.from_pretrained(root / "unet", low_cpu_mem_usage=False)
    saved_static = None
    if (root / "static_input").is_dir() and adapter.name == "i2vgen-xl" and task == "static":
        saved_static = StaticOrbitInput.from_pretrained(root / "static_input", low_cpu_mem_usage=False)
    unet, static_input = _task_additions(unet, adapter, task, saved_static)
    motion = None
    if target == "dynamic":
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
        scheduler = load_scheduler(root)
    else:
        logger.info("%s has no scheduler/: using the %s backbone's stock scheduler", root, adapter.name)
        scheduler = stock_scheduler(adapter.name)
    parts = Components(task=task, unet=unet, motion_embedding=motion, vae=vae,
                       scheduler=with_prediction_type(scheduler, prediction_type), static_input=static_input)
    if adapter.uses_text:
        parts.tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        parts.text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder")
    if task != "text":
        parts.image_encoder = CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder")
    for name in ("unet", "motion_embedding", "static_input", "vae", "text_encoder", "image_encoder"):
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
def encode_text(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str], clip_skip: int | None = None) -> torch.Tensor:
    """Prompts -> hidden states float [B, L, D], L = the tokenizer's model_max_length.

    ``clip_skip`` None: the last layer (ModelScope); k: the output of the layer k before the last,
    passed through the encoder's final layer norm (diffusers' ``clip_skip``; I2VGen-XL uses 1).
    """
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(text_encoder.device)
    if clip_skip is None:
        return text_encoder(ids)[0]
    hidden = text_encoder(ids, output_hidden_states=True).hidden_states[-(clip_skip + 1)]
    text_model = getattr(text_encoder, "text_model", text_encoder)  # transformers < 5 nests the layers one level down
    return text_model.final_layer_norm(hidden)
