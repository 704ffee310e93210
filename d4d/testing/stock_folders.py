"""Tiny random model folders in the stock diffusers layout of each backbone, built offline.

``modelscope_folder``, ``svd_folder`` and ``i2vgen_xl_folder`` save a ``TextToVideoSDPipeline``,
a ``StableVideoDiffusionPipeline`` and an ``I2VGenXLPipeline`` made from diffusers' and
transformers' own classes (one block per level, two heads, latents 8 x 8 for 16 x 16 frames),
with each backbone's stock scheduler configuration (training.schedules.STOCK_SCHEDULERS). The
text tokenizer is a real CLIP BPE tokenizer over a hand-written vocabulary of a few dozen tokens
(``write_bpe_vocabulary``), so no hub is needed. Used by the backbone-equivalence tests and the
training benchmark.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLTemporalDecoder,
    I2VGenXLPipeline,
    I2VGenXLUNet,
    StableVideoDiffusionPipeline,
    TextToVideoSDPipeline,
    UNet3DConditionModel,
    UNetSpatioTemporalConditionModel,
)
from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection

from d4d.training.schedules import stock_scheduler

#: Whole words the hand-written vocabulary merges; every other word falls back to its letters.
WORDS = ("red", "ball", "dynamic", "asset")
TOKENIZER_MAX_LENGTH = 16
CROSS_DIM = 32


def write_bpe_vocabulary(folder: Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of a CLIP BPE tokenizer: the lower-case letters and
    the comma (plain and word-final ``</w>``), the merges spelling out WORDS, the two special tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + ",":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges = []
    for word in WORDS:
        left = word[0]
        for i, char in enumerate(word[1:], start=1):
            right = char + ("</w>" if i == len(word) - 1 else "")
            merges.append(f"{left} {right}")
            left = left + right
            vocab.setdefault(left, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def bpe_tokenizer(folder: Path) -> CLIPTokenizer:
    """The hand-written BPE vocabulary (written to ``folder``) loaded as a CLIPTokenizer."""
    write_bpe_vocabulary(folder)
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                         model_max_length=TOKENIZER_MAX_LENGTH)


def _text_encoder(tokenizer: CLIPTokenizer, layers: int) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=CROSS_DIM, intermediate_size=37,
                                        num_hidden_layers=layers, num_attention_heads=2,
                                        max_position_embeddings=TOKENIZER_MAX_LENGTH, bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def _image_encoder(image_size: int, patch_size: int) -> CLIPVisionModelWithProjection:
    return CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=CROSS_DIM, intermediate_size=37, num_hidden_layers=1,
                                                          num_attention_heads=2, image_size=image_size, patch_size=patch_size,
                                                          projection_dim=CROSS_DIM))


def _vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
                         sample_size=16)


def _unet3d_blocks() -> dict:
    return dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
                cross_attention_dim=CROSS_DIM, attention_head_dim=2, norm_num_groups=4)


def modelscope_folder(path: Path, seed: int = 0) -> Path:
    """A TextToVideoSDPipeline folder (ModelScope text-to-video layout)."""
    torch.manual_seed(seed)
    tokenizer = bpe_tokenizer(path.parent / f".{path.name}-bpe")
    pipe = TextToVideoSDPipeline(vae=_vae(), text_encoder=_text_encoder(tokenizer, 1), tokenizer=tokenizer,
                                 unet=UNet3DConditionModel(**_unet3d_blocks()), scheduler=stock_scheduler("modelscope"))
    pipe.save_pretrained(path)
    return path


def svd_folder(path: Path, seed: int = 0) -> Path:
    """A StableVideoDiffusionPipeline folder. Its image encoder reads 224 x 224 images, the size
    the stock pipeline resizes to (hard-coded there). The UNet has 64 channels: its GroupNorms have
    32 groups, and one channel per group would normalise the timestep and micro-conditions away."""
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(64, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=CROSS_DIM,
        num_attention_heads=2, projection_class_embeddings_input_dim=24, addition_time_embed_dim=8, num_frames=4)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                                       latent_channels=4, layers_per_block=1, sample_size=16)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=_image_encoder(224, 32), unet=unet,
                                        scheduler=stock_scheduler("svd"),
                                        feature_extractor=CLIPImageProcessor(size={"shortest_edge": 224},
                                                                             crop_size={"height": 224, "width": 224}))
    pipe.save_pretrained(path)
    return path


def i2vgen_xl_folder(path: Path, seed: int = 0) -> Path:
    """An I2VGenXLPipeline folder; its feature extractor's crop size is the image encoder's 32 x 32."""
    torch.manual_seed(seed)
    tokenizer = bpe_tokenizer(path.parent / f".{path.name}-bpe")
    pipe = I2VGenXLPipeline(vae=_vae(), text_encoder=_text_encoder(tokenizer, 2), tokenizer=tokenizer,
                            image_encoder=_image_encoder(32, 8),
                            feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                            unet=I2VGenXLUNet(**_unet3d_blocks()), scheduler=stock_scheduler("i2vgen-xl"))
    pipe.save_pretrained(path)
    return path


STOCK_FOLDERS = {"modelscope": modelscope_folder, "svd": svd_folder, "i2vgen-xl": i2vgen_xl_folder}
