"""Settings of one d4d-eval run (one dataclass; ``d4d.options`` builds the flags from the field docs)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal


@dataclass
class EvalConfig:
    """What d4d-eval measures and with which local weights. Saved in ``eval.json``."""

    clip: str | None = None
    """Local CLIP folder (transformers CLIPModel + tokenizer, e.g. openai/clip-vit-large-patch14 saved
    with save_pretrained) for CLIP-F and CLIP-O; none: those metrics are reported absent."""
    i3d: str | None = None
    """Local I3D weights file (.pt/.pth/.safetensors, the pytorch-i3d InceptionI3d layout, Kinetics-400
    RGB) for FVD; none: FVD is reported absent."""
    lpips: str | None = None
    """Local LPIPS folder: alexnet.pth (torchvision AlexNet state dict) and alex.pth (LPIPS v0.1 linear
    layers); none: LPIPS is reported absent."""
    background: float = 1.0
    """Grey level in [0, 1] the ground-truth renders are composited over (the models' training
    background; d4d's default white)."""
    clip_reference: Literal["ground-truth", "condition"] = "ground-truth"
    """What CLIP-F/O compare each generated frame with: the ground-truth frame with the same camera
    and time ("ground-truth", d4d's reading of the paper), or the condition (the prompt's text
    embedding for text-to-4D, the condition image for image/static-to-4D)."""
    front_window_deg: float = 45.0
    """CLIP-F uses the orbit frames whose azimuth is within this many degrees of the front (0);
    CLIP-O uses every orbit frame (d4d's choice: a generated orbit has no separate front video)."""
    fvd_size: int = 224
    """Frames are resized (bilinear) to this square size for I3D (FVD's usual 224)."""
    batch_size: int = 16
    """Frames per network call (CLIP, LPIPS)."""
    device: str = "auto"
    """Torch device for the networks: "auto" (CUDA when available), "cpu", "cuda", "cuda:1"..."""

    def __post_init__(self) -> None:
        allowed = typing.get_args(typing.get_type_hints(EvalConfig)["clip_reference"])
        if self.clip_reference not in allowed:
            raise ValueError(f"clip_reference: got {self.clip_reference!r}, expected one of {list(allowed)}")
        if not 0.0 <= self.background <= 1.0:
            raise ValueError(f"background: got {self.background}, expected a grey level in [0, 1]")
        if not 0.0 <= self.front_window_deg <= 180.0:
            raise ValueError(f"front_window_deg: got {self.front_window_deg}, expected 0..180")
        if self.fvd_size < 32:
            raise ValueError(f"fvd_size: got {self.fvd_size}, expected >= 32")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: got {self.batch_size}, expected >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
