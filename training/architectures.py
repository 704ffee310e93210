"""Named model sizes, built from configuration (random weights) when no pretrained folder is given.

One preset per backbone (training.unets) and size: "tiny-*" for tests and smoke runs on CPU
(16 x 16 frames, latents 8 x 8, one block per level, 2 heads); "paper-*" at the published
sizes: ModelScope text-to-video (UNet3DConditionModel, OpenCLIP-H text encoder, 23 layers) for
text, I2VGen-XL (I2VGenXLUNet, OpenCLIP-H text and image encoders) for the image and static-3D
tasks as in the paper, and Stable Video Diffusion (UNetSpatioTemporalConditionModel, CLIP ViT-H
image encoder) as the alternative image backbone; all with the Stable Diffusion VAE. Built from
scratch they are random: real training starts from ``--pretrained`` weights; the presets exist
so the trainer, the benchmark and the parameter counts can use the true sizes.

Tokenizers cannot be built from configuration (a real CLIP BPE vocabulary is a download), so a
preset without ``--pretrained`` gets ``char_tokenizer``: a CLIP tokenizer over single characters.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from diffusers import AutoencoderKL, I2VGenXLUNet, UNet3DConditionModel, UNetSpatioTemporalConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection

#: Latent channels of every VAE d4d uses (Stable Diffusion's).
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class Architecture:
    """Constructor arguments of each component; ``text_encoder``/``image_encoder`` None when unused.
    ``backbone`` names the training.unets adapter ("modelscope", "svd", "i2vgen-xl")."""

    backbone: str
    unet_class: str
    unet: dict
    vae: dict
    text_encoder: dict | None = None
    image_encoder: dict | None = None
    motion_hidden_dim: int = 256
    tokenizer_max_length: int = 77


_TINY_VAE = dict(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=LATENT_CHANNELS, norm_num_groups=4,
                 layers_per_block=1, sample_size=16)
_TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                  max_position_embeddings=32)
_TINY_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                    image_size=32, patch_size=8, projection_dim=32)
# SVD's resnets normalise in 32 GroupNorm groups (not configurable): 64 channels keep 2 per group, so
# the per-channel timestep, motion and micro-condition offsets survive the norm (1 per group erases them).
_TINY_SVD = dict(block_out_channels=(64, 64), layers_per_block=1, sample_size=8, out_channels=LATENT_CHANNELS,
                 down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                 up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                 cross_attention_dim=32, num_attention_heads=2, projection_class_embeddings_input_dim=24,
                 addition_time_embed_dim=8, num_frames=4)

_SD_VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=LATENT_CHANNELS, layers_per_block=2,
               sample_size=256, scaling_factor=0.18215)
_PAPER_SVD = dict(sample_size=32, out_channels=LATENT_CHANNELS, cross_attention_dim=1024, num_frames=24)

_TINY_I2VGEN = dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=LATENT_CHANNELS,
                   out_channels=LATENT_CHANNELS, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                   up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=32, attention_head_dim=2,
                   norm_num_groups=4)
_VIT_H_IMAGE = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
                    patch_size=14, projection_dim=1024, hidden_act="gelu")

ARCHITECTURES: dict[str, Architecture] = {
    "tiny-modelscope": Architecture(
        backbone="modelscope", unet_class="UNet3DConditionModel",
        unet=dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=LATENT_CHANNELS,
                  out_channels=LATENT_CHANNELS, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                  up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=32, attention_head_dim=2,
                  norm_num_groups=4),
        vae=_TINY_VAE, text_encoder=_TINY_TEXT, motion_hidden_dim=16, tokenizer_max_length=32),
    # Small enough to learn a handful of clips on a laptop CPU in minutes (the demo): 24 frames of
    # 32 x 32 pixels, latents 4 x 8 x 8 through a VAE of 32, 64 and 64 channels that downsamples 4x
    # (fitted by the autoencoder stage), a two-level UNet3D of 32 and 64 channels; a 77-character
    # prompt window, so the whole caption conditions the model.
    "small-modelscope": Architecture(
        backbone="modelscope", unet_class="UNet3DConditionModel",
        unet=dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=LATENT_CHANNELS,
                  out_channels=LATENT_CHANNELS, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                  up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=64, attention_head_dim=8,
                  norm_num_groups=8, time_cond_proj_dim=64),
        vae=dict(_TINY_VAE, block_out_channels=(32, 64, 64), down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8, sample_size=32),
        text_encoder=dict(_TINY_TEXT, hidden_size=64, intermediate_size=128, max_position_embeddings=77), motion_hidden_dim=64,
        tokenizer_max_length=77),
    "tiny-svd": Architecture(backbone="svd", unet_class="UNetSpatioTemporalConditionModel", unet=_TINY_SVD, vae=_TINY_VAE,
                             image_encoder=_TINY_VISION, motion_hidden_dim=16),
    "tiny-i2vgen-xl": Architecture(backbone="i2vgen-xl", unet_class="I2VGenXLUNet", unet=_TINY_I2VGEN, vae=_TINY_VAE,
                                   text_encoder={**_TINY_TEXT, "num_hidden_layers": 2}, image_encoder=_TINY_VISION,
                                   motion_hidden_dim=16, tokenizer_max_length=32),
    # ModelScope text-to-video-ms-1.7b: UNet3D defaults, OpenCLIP ViT-H/14 text tower (23 layers used).
    "paper-modelscope": Architecture(
        backbone="modelscope", unet_class="UNet3DConditionModel",
        unet=dict(sample_size=32, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, cross_attention_dim=1024,
                  attention_head_dim=64),
        vae=_SD_VAE,
        text_encoder=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                          max_position_embeddings=77, projection_dim=512, hidden_act="gelu"),
    ),
    # ali-vilab/i2vgen-xl: I2VGenXLUNet (320..1280, cross-attention 1024), OpenCLIP ViT-H/14 text (24 layers,
    # the penultimate used) and image towers.
    "paper-i2vgen-xl": Architecture(
        backbone="i2vgen-xl", unet_class="I2VGenXLUNet",
        unet=dict(sample_size=32, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, cross_attention_dim=1024,
                  attention_head_dim=64),
        vae=_SD_VAE,
        text_encoder=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                          max_position_embeddings=77, projection_dim=1024, hidden_act="gelu"),
        image_encoder=_VIT_H_IMAGE),
    # Stable Video Diffusion's UNet layout with CLIP ViT-H/14 image embeddings (1024-d).
    "paper-svd": Architecture(backbone="svd", unet_class="UNetSpatioTemporalConditionModel", unet=_PAPER_SVD, vae=_SD_VAE,
                              image_encoder=_VIT_H_IMAGE),
}

# The image and static-3D tasks at the small size (benchmarks/learning.py): I2VGen-XL's UNet at
# small-modelscope's widths, with small-modelscope's VAE and text encoder (one fitted VAE serves
# both backbones) and a CLIP vision tower of the same width.
ARCHITECTURES["small-i2vgen-xl"] = Architecture(
    backbone="i2vgen-xl", unet_class="I2VGenXLUNet",
    unet=dict(_TINY_I2VGEN, block_out_channels=(32, 64), sample_size=ARCHITECTURES["small-modelscope"].unet["sample_size"],
              cross_attention_dim=64, attention_head_dim=8, norm_num_groups=8),
    vae=ARCHITECTURES["small-modelscope"].vae, text_encoder={**ARCHITECTURES["small-modelscope"].text_encoder, "num_hidden_layers": 2},
    image_encoder=dict(_TINY_VISION, hidden_size=64, intermediate_size=128, projection_dim=64), motion_hidden_dim=64,
    tokenizer_max_length=ARCHITECTURES["small-modelscope"].tokenizer_max_length)

UNET_CLASSES = {"UNet3DConditionModel": UNet3DConditionModel,
                "UNetSpatioTemporalConditionModel": UNetSpatioTemporalConditionModel, "I2VGenXLUNet": I2VGenXLUNet}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture: unknown preset {name!r}; valid: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def char_tokenizer(max_length: int) -> CLIPTokenizer:
    """A CLIPTokenizer whose vocabulary is single characters (lower-case letters, digits,
    punctuation), each also as a word-final ``</w>`` token; no merges, no download."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def build_unet(arch: Architecture):
    """The architecture's stock UNet (SVD: 8 input channels, noisy + image latents), random weights
    (torch's default init); the static task's channels are added by training.components."""
    return UNET_CLASSES[arch.unet_class](**arch.unet)


def build_vae(arch: Architecture) -> AutoencoderKL:
    return AutoencoderKL(**arch.vae)


def build_text_encoder(arch: Architecture, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                            **arch.text_encoder)
    return CLIPTextModel(config)


def build_image_encoder(arch: Architecture) -> CLIPVisionModelWithProjection:
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**arch.image_encoder))
