"""CLIP similarities of generated frames: CLIP-F (front views) and CLIP-O (the whole orbit).

A local CLIP folder (transformers ``CLIPModel`` and ``CLIPTokenizer`` saved with
``save_pretrained``) embeds frames and, for text conditions, prompts. Frames are resized
(bicubic, antialiased) to the vision tower's square input and normalised with CLIP's mean and
std (square renders need no crop). A score is the cosine similarity of the projected embeddings.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTokenizer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipScorer:
    """CLIP image and text embeddings from a local folder.

    Args:
        folder: transformers CLIPModel folder (config.json + weights; tokenizer files for text).
        device: torch device.
        batch_size: frames per forward pass.
    """

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu", batch_size: int = 16):
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ValueError(f"CLIP folder {folder}: no config.json (a transformers CLIPModel saved with save_pretrained)")
        try:
            self.model = CLIPModel.from_pretrained(folder).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ValueError(f"CLIP folder {folder}: cannot load CLIPModel ({exc})") from None
        self.folder, self.device, self.batch_size = folder, torch.device(device), batch_size
        self._tokenizer = None

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [N, 3, H, W] in [0, 1] -> unit-length embeddings float32 [N, D]."""
        size = self.model.config.vision_config.image_size
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        out = []
        for chunk in frames.split(self.batch_size):
            pixels = F.interpolate(chunk.float().to(self.device), size=(size, size), mode="bicubic", align_corners=False,
                                   antialias=True).clamp(0, 1)
            pooled = self.model.vision_model(pixel_values=(pixels - mean) / std).pooler_output
            out.append(F.normalize(self.model.visual_projection(pooled).float(), dim=-1))
        return torch.cat(out).cpu()

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Prompts -> unit-length embeddings float32 [N, D]."""
        if self._tokenizer is None:
            try:
                self._tokenizer = CLIPTokenizer.from_pretrained(self.folder)
            except (OSError, ValueError, TypeError) as exc:
                raise ValueError(f"CLIP folder {self.folder}: no usable tokenizer for text conditions ({exc})") from None
        max_length = min(self._tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings)
        ids = self._tokenizer(texts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
        pooled = self.model.text_model(input_ids=ids.to(self.device)).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1).cpu()


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of unit vectors a [N, D] and b [N, D] (or b [1, D], broadcast) -> [N]."""
    return (a * b).sum(dim=-1)
