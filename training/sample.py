"""d4d-sample as a function: sample a 4D orbital video with a trained model into a render directory.

The command line, its options and what OUT holds: training/sample_cli.py (docs/training.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from d4d.progress import tqdm_options
from d4d.rendering.contract import RenderContractError, VideoFrames, load_render
from d4d.rendering.orbits import layout_videos
from d4d.training.sample_config import SampleConfig

from .guidance import DEFAULT_W2
from .matte import matte_rgba
from .outputs import to_uint8, write_sample
from .pipeline import Diffusion4DPipeline
from .reference import load_static_denoiser, static_pipeline
from .sample_cli import main  # noqa: F401 - d4d-sample

logger = logging.getLogger("d4d.sample")

#: --static-reference values of earlier versions -> their name now.
RENAMED_REFERENCES = {"frozen": "static-model"}


def model_folder(path: Path) -> Path:
    """A run directory's ``model/``, or ``path`` itself when it is a model folder."""
    for candidate in (path / "model", path):
        if (candidate / "model_index.json").is_file():
            return candidate
    raise ValueError(f"--model {path}: neither it nor {path / 'model'} holds a model_index.json (a d4d-train model)")


def rgba_to_video(rgba: np.ndarray, background: float, resolution: int) -> torch.Tensor:
    """uint8 [N, H, W, 4] straight alpha -> float32 [N, 3, R, R] in [-1, 1], composited over ``background``."""
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(0, 3, 1, 2).float() / 255.0
    rgb = x[:, :3] * x[:, 3:4] + background * (1.0 - x[:, 3:4])
    if rgb.shape[-2:] != (resolution, resolution):
        rgb = F.interpolate(rgb, size=(resolution, resolution), mode="area")
    return rgb * 2.0 - 1.0


def load_image(path: Path, background: float, resolution: int) -> torch.Tensor:
    """A PNG (any mode) -> float32 [1, 3, R, R] in [-1, 1]."""
    try:
        with Image.open(path) as image:
            rgba = np.array(image.convert("RGBA"))  # a writable copy: torch.from_numpy warns on read-only arrays
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"--image {path}: cannot read ({exc})") from None
    return rgba_to_video(rgba[None], background, resolution)


def load_static(render_dir: Path, num_frames: int) -> VideoFrames:
    """The static orbit of a render directory (frames and cameras); ValueError naming it otherwise."""
    try:
        render = load_render(render_dir, videos=("static",))
    except RenderContractError as exc:
        raise ValueError(f"--static {render_dir}: {exc}") from None
    orbit = render.videos["static"]
    if len(orbit) != num_frames:
        raise ValueError(f"--static {render_dir}: static video has {len(orbit)} frames, the model makes {num_frames}")
    return orbit


def sample(model: Path, out: Path, config: SampleConfig = SampleConfig()) -> Path:
    """d4d-sample as a function: sample one orbital video from ``model`` into the render
    directory ``out``; returns it. ValueError naming the option for bad conditions."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    pipe = Diffusion4DPipeline.from_pretrained(model_folder(model)).to(device)
    pipe.set_progress_bar_config(**tqdm_options("sampling", "steps"))
    cfg = pipe.config
    prompt, image, static, static_orbit = config.prompt, None, None, None
    if cfg.task == "text" and not prompt:
        raise ValueError(f"{model}: a text-to-4D model; give --prompt")
    if config.image is not None:
        image = load_image(Path(config.image), cfg.background, cfg.resolution)
    if cfg.task == "static":
        if config.static is None:
            raise ValueError(f"{model}: a static-3D-to-4D model; give --static RENDER_DIR")
        static_orbit = load_static(Path(config.static), cfg.num_frames)
        static = rgba_to_video(static_orbit.rgba, cfg.background, cfg.resolution)[None]
        if image is None:
            image = static[:, 0]  # the front view at time 0
    elif cfg.task == "image" and image is None:
        raise ValueError(f"{model}: an image-to-4D model; give --image PNG")
    reference_name = config.static_reference
    if reference_name in RENAMED_REFERENCES:
        logger.warning("--static-reference %s is now called %s", reference_name, RENAMED_REFERENCES[reference_name])
        reference_name = RENAMED_REFERENCES[reference_name]
    w2 = config.w2 if config.w2 is not None else (DEFAULT_W2 if cfg.target == "dynamic" else 0.0)
    static_denoiser, reference = None, None
    if w2 != 0 and reference_name == "static-model":
        reference = model_folder(Path(config.static_model)) if config.static_model is not None else cfg.static_reference
        if reference is None:
            raise ValueError(f"{model}: --w2 {w2} needs a static reference and the model records none (it was not "
                             "fine-tuned from --pretrained); give --static-model PATH (a d4d-train --target static model), "
                             "--static-reference zero-motion (the m = 0 shortcut, not the paper's ebar), or --w2 0")
        static_denoiser = load_static_denoiser(reference, cfg.task, type(pipe.unet), device, pipe.unet.dtype)
        kind = cfg.static_reference_kind if config.static_model is None else "given by --static-model"
        logger.info("static reference ebar: %s (%s)", reference, kind)
    logger.info("sampling %s-to-4D (%s model): %d steps, w1=%s, w2=%s, static reference %s", cfg.task, cfg.target, config.steps,
                config.w1, w2, reference_name if w2 != 0 else "unused")
    result = pipe(prompt=prompt, image=image, static_video=static, motion_magnitude=config.motion_magnitude,
                  num_inference_steps=config.steps, w1=config.w1, w2=w2, static_reference=reference_name,
                  static_denoiser=static_denoiser, generator=torch.Generator().manual_seed(config.seed))
    motion = cfg.default_motion_magnitude if config.motion_magnitude is None else config.motion_magnitude
    if static_orbit is None and cfg.target == "dynamic" and config.static_orbit == "sample":
        static_folder = model_folder(Path(config.static_model)) if config.static_model is not None else cfg.static_reference
        if static_folder is None:
            logger.warning("no static model known (give --static-model): the sample has no static orbit, so d4d-reconstruct skips its coarse stage")
        else:
            logger.info("static orbit from %s", static_folder)
            static_orbit = sample_static_orbit(static_pipeline(static_folder, pipe).to(device), prompt, image, config)
    generated = {**asdict(config), "model": str(model), "task": cfg.task, "motion_magnitude": motion, "w2": w2, "static_reference": reference_name,
                 "static_model": None if reference is None else str(reference)}
    return write_sample(out, result.frames[0].cpu().numpy(), pipe.orbit_layout, cfg.background, generated, static_orbit)


def sample_static_orbit(pipe: Diffusion4DPipeline, prompt: str | None, image: torch.Tensor | None, config: SampleConfig) -> VideoFrames:
    """The static orbit the static model ``pipe`` (reference.static_pipeline) samples for the same
    condition and seed (guidance w1 only): RGBA frames matted against its background, on its orbit
    layout at time 0."""
    pipe.set_progress_bar_config(**tqdm_options("sampling the static orbit", "steps"))
    result = pipe(prompt=prompt, image=image, num_inference_steps=config.steps, w1=config.w1, w2=0.0,
                  generator=torch.Generator().manual_seed(config.seed))
    layout = pipe.orbit_layout
    orbit = layout_videos(layout, ("static",), np.zeros(layout.frames))["static"]
    orbit.rgba = matte_rgba(to_uint8(result.frames[0].cpu().numpy()), pipe.config.background)
    return orbit


if __name__ == "__main__":
    raise SystemExit(main())
