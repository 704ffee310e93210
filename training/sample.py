"""d4d-sample: generate a 4D orbital video with a trained model, as a render directory.

    d4d-sample --model RUN --out OUT --prompt "a dog wagging its tail" --motion-magnitude 800
    d4d-sample --model RUN --out OUT --image front.png
    d4d-sample --model RUN --out OUT --static RENDER_DIR --static-model STATIC_RUN
    d4d-sample --model RUN --out OUT --image front.png --static-reference zero-motion   # the m = 0 shortcut

The 3D-aware term (--w2) needs ebar, a model of static orbits (d4d-train --target static): by
default the one the model recorded when it was fine-tuned from it, or --static-model. The
"zero-motion" reference is this model at m = 0, a shortcut: that branch was trained on dynamic
clips with m dropped, so it predicts their average motion, not a static orbit.

OUT holds dynamic/000.png .. (T frames), dynamic.mp4, transforms.json (orbit cameras at distance
2, elevation 0, field of view 49.13 degrees, times 0..1) and asset.json, so
``d4d-reconstruct OUT`` takes it directly. --model is a run directory (its model/ is used) or
a model folder.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from d4d.rendering.contract import RenderContractError, load_render

from .guidance import DEFAULT_W1, DEFAULT_W2
from .outputs import write_orbit_render
from .pipeline import STATIC_REFERENCES, Diffusion4DPipeline
from .reference import load_static_denoiser

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
            rgba = np.asarray(image.convert("RGBA"))
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"--image {path}: cannot read ({exc})") from None
    return rgba_to_video(rgba[None], background, resolution)


def load_static(render_dir: Path, background: float, resolution: int, num_frames: int) -> torch.Tensor:
    """The static orbit of a render directory -> float32 [1, T, 3, R, R] in [-1, 1]."""
    try:
        render = load_render(render_dir, videos=("static",))
    except RenderContractError as exc:
        raise ValueError(f"--static {render_dir}: {exc}") from None
    rgba = render.videos["static"].rgba
    if rgba.shape[0] != num_frames:
        raise ValueError(f"--static {render_dir}: static video has {rgba.shape[0]} frames, the model makes {num_frames}")
    return rgba_to_video(rgba, background, resolution)[None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d4d-sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="run directory or model folder (d4d-train output)")
    parser.add_argument("--out", required=True, type=Path, help="output render directory")
    parser.add_argument("--prompt", help="text condition (text-to-4D models)")
    parser.add_argument("--image", type=Path, help="condition image, PNG (image-to-4D; optional for static-3D-to-4D)")
    parser.add_argument("--static", type=Path, help="render directory whose static orbit conditions a static-3D-to-4D model")
    parser.add_argument("--motion-magnitude", type=float, help="m, version-1 scale (default: the model's training mean)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (paper: 50)")
    parser.add_argument("--w1", type=float, default=DEFAULT_W1, help="classifier-free guidance weight (paper: 7.0)")
    parser.add_argument("--w2", type=float, help=f"3D-aware (static reference) weight (paper: {DEFAULT_W2}; 0 for a static model)")
    parser.add_argument("--static-reference", choices=STATIC_REFERENCES + tuple(RENAMED_REFERENCES), default="static-model",
                        help="ebar: 'static-model' (the paper's: a model of static orbits, --static-model or the one the "
                             "model recorded) or 'zero-motion' (this model at m = 0: a shortcut predicting average motion); "
                             "'frozen' is the old name of 'static-model'")
    parser.add_argument("--static-model", type=Path,
                        help="run directory or model folder of the static reference (d4d-train --target static); "
                             "default: the reference the model recorded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def sample(args: argparse.Namespace) -> Path:
    pipe = Diffusion4DPipeline.from_pretrained(model_folder(args.model)).to(args.device)
    cfg = pipe.config
    prompt, image, static = args.prompt, None, None
    if cfg.task == "text" and not prompt:
        raise ValueError(f"{args.model}: a text-to-4D model; give --prompt")
    if args.image is not None:
        image = load_image(args.image, cfg.background, cfg.resolution)
    if cfg.task == "static":
        if args.static is None:
            raise ValueError(f"{args.model}: a static-3D-to-4D model; give --static RENDER_DIR")
        static = load_static(args.static, cfg.background, cfg.resolution, cfg.num_frames)
        if image is None:
            image = static[:, 0]  # the front view at time 0
    elif cfg.task == "image" and image is None:
        raise ValueError(f"{args.model}: an image-to-4D model; give --image PNG")
    if args.static_reference in RENAMED_REFERENCES:
        logger.warning("--static-reference %s is now called %s", args.static_reference, RENAMED_REFERENCES[args.static_reference])
        args.static_reference = RENAMED_REFERENCES[args.static_reference]
    w2 = args.w2 if args.w2 is not None else (DEFAULT_W2 if cfg.target == "dynamic" else 0.0)
    static_denoiser, reference = None, None
    if w2 != 0 and args.static_reference == "static-model":
        reference = model_folder(args.static_model) if args.static_model is not None else cfg.static_reference
        if reference is None:
            raise ValueError(f"{args.model}: --w2 {w2} needs a static reference and the model records none (it was not "
                             "fine-tuned from --pretrained); give --static-model PATH (a d4d-train --target static model), "
                             "--static-reference zero-motion (the m = 0 shortcut, not the paper's ebar), or --w2 0")
        static_denoiser = load_static_denoiser(reference, cfg.task, type(pipe.unet), args.device, pipe.unet.dtype)
        kind = cfg.static_reference_kind if args.static_model is None else "given by --static-model"
        logger.info("static reference ebar: %s (%s)", reference, kind)
    logger.info("sampling %s-to-4D (%s model): %d steps, w1=%s, w2=%s, static reference %s", cfg.task, cfg.target, args.steps,
                args.w1, w2, args.static_reference if w2 != 0 else "unused")
    out = pipe(prompt=prompt, image=image, static_video=static, motion_magnitude=args.motion_magnitude,
               num_inference_steps=args.steps, w1=args.w1, w2=w2, static_reference=args.static_reference,
               static_denoiser=static_denoiser, generator=torch.Generator().manual_seed(args.seed))
    motion = cfg.default_motion_magnitude if args.motion_magnitude is None else args.motion_magnitude
    asset = {"model": str(args.model), "task": cfg.task, "prompt": prompt,
             "image": None if args.image is None else str(args.image),
             "static": None if args.static is None else str(args.static), "motion_magnitude": motion,
             "steps": args.steps, "w1": args.w1, "w2": w2, "static_reference": args.static_reference,
             "static_model": None if reference is None else str(reference), "seed": args.seed,
             "background": cfg.background, "alpha": "opaque: a generated video has no alpha channel"}
    return write_orbit_render(args.out, out.frames[0].cpu().numpy(), asset)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        path = sample(args)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
