"""d4d-render: render one animated asset into a 4D sample (docs/conventions.md).

    d4d-render ASSET --out DIR [--frames 24] [--resolution 256] [--engine cycles|workbench|eevee]
               [--samples N] [--seed N] [--distance 2] [--elevation 0] [--fov 49.13]
               [--azimuth-start 0] [--videos dynamic static front] [--preset paper|preview]

Exit status: 0 on success, 1 when the asset cannot be rendered (one line on stderr naming the
file and the reason), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d4d.rendering.api import Renderer
from d4d.rendering.errors import AssetError
from d4d.rendering.options import ENGINES, PRESETS, VIDEOS, RenderOptions


def build_parser() -> argparse.ArgumentParser:
    defaults = RenderOptions()
    p = argparse.ArgumentParser(prog="d4d-render", description="Render an animated 3D asset into dynamic, static and front orbital videos.")
    p.add_argument("asset", type=Path, help="asset file (glb gltf fbx obj dae abc blend usd usda usdc usdz stl ply)")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist unless --overwrite)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default", help="named settings; explicit flags override it (paper: the released Cycles 128-sample settings)")
    p.add_argument("--frames", type=int, help=f"frames per video (default {defaults.frames})")
    p.add_argument("--resolution", type=int, help=f"image side in pixels (default {defaults.resolution})")
    p.add_argument("--engine", choices=ENGINES, help=f"render engine (default {defaults.engine})")
    p.add_argument("--samples", type=int, help=f"Cycles samples per pixel (default {defaults.samples})")
    p.add_argument("--no-denoise", dest="denoise", action="store_false", default=None, help="disable Cycles denoising")
    p.add_argument("--denoise-quality", choices=("high", "balanced", "fast"), help=f"OpenImageDenoise quality (default {defaults.denoise_quality})")
    p.add_argument("--max-bounces", type=int, help=f"Cycles light bounces (default {defaults.max_bounces})")
    p.add_argument("--seed", type=int, help="seed for light energies and sampling (default 0)")
    p.add_argument("--device", choices=("cpu", "gpu"), help="Cycles device (default cpu; gpu: OptiX, CUDA, HIP, oneAPI or Metal)")
    p.add_argument("--distance", type=float, help=f"camera distance (default {defaults.distance})")
    p.add_argument("--elevation", dest="elevation_deg", type=float, help="orbit elevation, degrees (default 0)")
    p.add_argument("--fov", dest="fov_deg", type=float, help=f"horizontal field of view, degrees (default {defaults.fov_deg:.2f})")
    p.add_argument("--azimuth-start", dest="azimuth_start_deg", type=float, help="azimuth of the first orbit frame and the front camera, degrees (default 0)")
    p.add_argument("--closed-orbit", dest="closed_orbit", action="store_true", default=None, help="first and last orbit frames share a pose (the released script's layout; on in --preset paper)")
    p.add_argument("--open-orbit", dest="closed_orbit", action="store_false", default=None, help="all orbit frames at distinct poses, 360/T apart (the default)")
    p.add_argument("--videos", nargs="+", choices=VIDEOS, help="which videos to render (default: all)")
    p.add_argument("--action", help="render this action as the clip (asset.json lists them under animation.actions)")
    p.add_argument("--timeout", dest="timeout_s", type=float, help=f"seconds before a render is killed (default {defaults.timeout_s:g})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--allow-missing-files", action="store_true", help="render even if linked textures are missing")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def options_from_args(args: argparse.Namespace) -> RenderOptions:
    settings = dict(PRESETS[args.preset])
    for name in ("frames", "resolution", "engine", "samples", "denoise", "denoise_quality", "max_bounces", "seed", "device", "distance",
                 "elevation_deg", "fov_deg", "azimuth_start_deg", "closed_orbit", "timeout_s", "action"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.videos:
        settings["videos"] = tuple(dict.fromkeys(args.videos))
    return RenderOptions(**settings)


def _show_progress(progress: dict) -> None:
    end = "\n" if progress["done"] == progress["total"] else ""
    print(f"\r  {progress['stage']:>7}: {progress['done']}/{progress['total']} frames", end=end, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with Renderer(on_progress=None if args.quiet else _show_progress) as renderer:
            asset = renderer.render(args.asset, args.out, options, overwrite=args.overwrite, allow_missing_files=args.allow_missing_files)
    except (AssetError, FileExistsError) as exc:
        print(f"d4d-render: error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        anim = asset["animation"]
        mm = asset["motion_magnitude"]
        print(
            f"{args.asset} -> {args.out}: {asset['importer']} import, "
            f"{'frames {:g}..{:g}'.format(*tuple(anim['frame_range'])) if anim['has_animation'] else 'no animation'}, "
            f"motion magnitude {'n/a' if mm is None else f'{mm:.2f}'}, "
            f"{asset['timings']['total_s']:.1f} s ({asset['timings']['render_per_frame_s']:.2f} s/frame)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
