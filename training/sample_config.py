"""What d4d-sample samples and how (``SampleConfig``), and the paper's guidance weights.

Free of torch, so the command's ``--help`` and argument checks answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The paper's guidance weights: w1 (classifier-free) and w2 (3D-aware).
DEFAULT_W1 = 7.0
DEFAULT_W2 = 0.5


@dataclass(frozen=True)
class SampleConfig:
    """What to sample and how (d4d-sample's options; the model and OUT are its arguments)."""

    prompt: str | None = None
    """Text condition (text-to-4D models; I2VGen-XL image models take it too)."""
    image: str | None = None
    """Condition image, PNG (image-to-4D; optional for static-3D-to-4D, whose default is the static orbit's first frame)."""
    static: str | None = None
    """Render directory whose static orbit conditions a static-3D-to-4D model; it is written beside the sample."""
    motion_magnitude: float | None = None
    """m, version-1 scale (default: the mean m of the model's training clips)."""
    steps: int = 50
    """Denoising steps (paper: 50)."""
    w1: float = DEFAULT_W1
    """Classifier-free guidance weight (paper: 7.0)."""
    w2: float | None = None
    """3D-aware (static reference) weight (paper: 0.5; default 0.5 for a 4D model, 0 for a static one)."""
    static_reference: Literal["static-model", "zero-motion", "frozen"] = "static-model"
    """ebar: "static-model" (the paper's: a model of static orbits, --static-model or the one the
    model recorded) or "zero-motion" (this model at m = 0: a shortcut predicting average motion);
    "frozen" is the old name of "static-model"."""
    static_model: str | None = None
    """Run directory or model folder of the static reference (d4d-train --target static); default: the one the model recorded."""
    static_orbit: Literal["sample", "none"] = "sample"
    """Text and image models: "sample" also samples the static orbit of the same condition and
    seed with the static model and writes it under static/, so d4d-reconstruct fits its coarse
    stage on it (d4d's choice, docs/training.md: the paper does not say where that orbit comes
    from for generated content); "none" writes the dynamic orbit alone. Skipped, with a
    warning, when no static model is known."""
    seed: int = 0
    """Seeds the initial noise."""
    device: str = "auto"
    """Torch device: auto (cuda when available), cpu, cuda, cuda:1 ..."""
