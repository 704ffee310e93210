"""Tiny random evaluation networks saved as local weight files, in the layouts d4d-eval reads.

``clip_folder`` saves a transformers CLIPModel (one layer, 32 wide, 32 x 32 images) with the
hand-written BPE tokenizer of d4d.testing.stock_folders; ``lpips_folder`` writes ``alexnet.pth``
(torchvision's AlexNet ``features.*`` keys) and ``alex.pth`` (LPIPS ``linK.model.1.weight`` keys);
``i3d_file`` writes an InceptionI3d state dict with every channel count divided by 8. Weights
are random (seeded): these exercise the loaders and the metric code, not the real features.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

from d4d.evaluation.i3d import InceptionI3d
from d4d.lpips import CHANNELS, alexnet_features
from d4d.testing.stock_folders import TOKENIZER_MAX_LENGTH, bpe_tokenizer


def clip_folder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = bpe_tokenizer(path.parent / f".{path.name}-bpe")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=TOKENIZER_MAX_LENGTH,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                           patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def lpips_folder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    features = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    torch.save(features, path / "alexnet.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(CHANNELS)}, path / "alex.pth")
    return path


def i3d_file(path: Path, seed: int = 0, width_divisor: int = 8) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(InceptionI3d(width_divisor).state_dict(), path)
    return path
