"""The static reference ebar of the 3D-aware guidance: which model it is, and loading it.

The paper's ebar(z, y) is the base multi-view model: a model of *static* orbits, given the same
condition y without m. d4d makes one with ``d4d-train --target static`` (static orbits, same
conditions, no motion embedding). A dynamic run started from ``--pretrained`` records, in its
exported model's config, the folder it keeps as reference:

- a d4d model of static orbits (``target`` "static"): that folder ("static-orbit model");
- a d4d dynamic model: the reference that model recorded (inherited);
- any other folder (a stock ModelScope / I2VGen-XL / SVD folder): that folder, marked
  "starting backbone": it is the model the run started from, not one trained on static orbits.

``d4d-sample`` uses the recorded reference by default; ``--static-model`` names another one.
The reference shares the main model's frozen encoders (as a run fine-tuned from it does): it
receives the conditions the main model encoded. ``static_pipeline`` makes the reference a
sampler of its own (the static orbit beside a text or image sample), stock folders included.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .backbone import Denoiser
from .components import load_components
from .pipeline import Diffusion4DPipeline
from .unets import MicroConditions

STATIC_ORBIT_MODEL = "static-orbit model"
STARTING_BACKBONE = "starting backbone (not trained on static orbits)"


def pipeline_config(folder: Path) -> dict | None:
    """A d4d model folder's Diffusion4DPipeline config (model_index.json), or None for other folders."""
    path = Path(folder) / "model_index.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return config if config.get("_class_name") == "Diffusion4DPipeline" else None


def starting_reference(pretrained: Path | None) -> tuple[str | None, str | None]:
    """(folder, kind) of the static reference a dynamic run started from ``pretrained`` keeps;
    (None, None) for a run built from a preset."""
    if pretrained is None:
        return None, None
    folder = Path(pretrained).resolve()
    config = pipeline_config(folder)
    if config is None:
        return str(folder), STARTING_BACKBONE
    if config.get("target") == "static":
        return str(folder), STATIC_ORBIT_MODEL
    return config.get("static_reference"), config.get("static_reference_kind")


def load_static_denoiser(folder: str | Path, task: str, unet_class: type, device: torch.device | str,
                         dtype: torch.dtype = torch.float32) -> Denoiser:
    """The reference folder's UNet (+ static input) as a motion-free Denoiser, in eval mode.

    Raises ValueError when it is not a model of ``task`` on the same backbone (``unet_class``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"static reference {folder}: not a directory")
    config = pipeline_config(folder)
    if config is not None and config.get("task") != task:
        raise ValueError(f"static reference {folder}: a {config.get('task')!r} model, expected {task!r}")
    parts = load_components(folder, task, target="static")
    if type(parts.unet) is not unet_class:
        raise ValueError(f"static reference {folder}: its UNet is a {type(parts.unet).__name__}, the model's a {unet_class.__name__}")
    micro = None
    if config is not None:
        micro = parts.adapter.micro(config.get("fps"), config.get("motion_bucket_id", MicroConditions.motion_bucket_id),
                                    config.get("noise_aug_strength", MicroConditions.noise_aug_strength))
    denoiser = Denoiser(parts.unet, None, task, micro, parts.static_input)
    return denoiser.to(device, dtype).eval()


def static_pipeline(folder: str | Path, model: Diffusion4DPipeline) -> Diffusion4DPipeline:
    """The static reference ``folder`` as a sampler of static orbits for ``model``'s conditions.

    A d4d model folder is loaded as saved. Any other folder (the stock backbone a run was
    fine-tuned from: its ``model_index.json`` names a diffusers pipeline, not Diffusion4DPipeline)
    is loaded for ``model``'s task without a motion embedding (``target`` "static"), on its own
    conventions: its scheduler, its backbone's default micro-conditions and no caption prefix (a
    stock model was never trained with d4d's); the clip size, background and orbit layout are
    ``model``'s, so the orbit it samples lies on the cameras of the sample beside it.
    """
    folder = Path(folder)
    if pipeline_config(folder) is not None:
        return Diffusion4DPipeline.from_pretrained(folder)
    config = model.config
    parts = load_components(folder, config.task, target="static")
    return Diffusion4DPipeline(unet=parts.unet, vae=parts.vae, scheduler=parts.scheduler, static_input=parts.static_input,
                               tokenizer=parts.tokenizer, text_encoder=parts.text_encoder, image_encoder=parts.image_encoder,
                               task=config.task, target="static", num_frames=config.num_frames, resolution=config.resolution,
                               caption_prefix="", background=config.background, orbit_layout=config.orbit_layout)
