"""d4d-render: render one animated asset into a 4D sample (docs/conventions.md).

    d4d-render ASSET --out DIR [--preset paper|preview|default] [--frames 24] [--resolution 256]
               [--engine cycles|workbench|eevee] [--action NAME] [--window K] ... (--help lists all)

Writes the render directory (docs/conventions.md) and ``preview.mp4`` in it: every orbit side by
side over white (rendering.preview). Every option is a field of ``RenderOptions``, ``AssetPolicy`` or ``Limits`` (their docs are the
help). Exit status: 0 on success, 1 when the asset cannot be rendered (one line on stderr,
``<input>: <reason>: <detail>``, the reason one of ``FAILURE_KINDS`` or ``output_exists``,
``write_failed``, ``internal_error``; no traceback), 130 when stopped by SIGINT or SIGTERM
(``interrupted``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import StageProgress
from d4d.rendering.api import AssetPolicy, Limits, Renderer
from d4d.rendering.contract import AssetInfo
from d4d.rendering.errors import AssetError
from d4d.rendering.options import PRESETS, RenderOptions
from d4d.rendering.preview import write_preview
from d4d.untrusted import printable

#: Flags of d4d-render 0.1 kept working: field -> old spellings.
RENDER_ALIASES = {"elevation_deg": ["--elevation"], "fov_deg": ["--fov"], "azimuth_start_deg": ["--azimuth-start"], "timeout_s": ["--timeout"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4d-render", description="Render an animated 3D asset into dynamic, static and front orbital videos.")
    p.add_argument("asset", type=Path, help="asset file (glb gltf fbx obj dae abc blend usd usda usdc usdz stl ply)")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist unless --overwrite)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="named settings; explicit flags override it (paper: the released Cycles 128-sample settings, closed orbit, frames 0..T-1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    add_options(p.add_argument_group("render settings (RenderOptions)"), RenderOptions, aliases=RENDER_ALIASES)
    p.add_argument("--open-orbit", dest="closed_orbit", action="store_false", default=None, help="same as --no-closed-orbit")
    add_options(p.add_argument_group("what the asset may do (AssetPolicy)"), AssetPolicy)
    add_options(p.add_argument_group("resource bounds (Limits)"), Limits)
    return p


def options_from_args(args: argparse.Namespace) -> RenderOptions:
    """The preset's RenderOptions with the flags given applied (ValueError names a bad value)."""
    return apply_overrides(RenderOptions(**PRESETS[args.preset]), overrides_from_args(args, RenderOptions))


def summary(path: Path, out: Path, asset: AssetInfo) -> str:
    anim = asset.animation
    span = f"frames {anim.frame_range[0]:g}..{anim.frame_range[1]:g}" if anim.has_animation else "no animation"
    mm = "n/a" if asset.motion_magnitude is None else f"{asset.motion_magnitude:.2f}"
    clip = f" {anim.action!r}" if anim.action else ""
    return (f"{path} -> {out}: {asset.importer} import,{clip} {span}, motion magnitude {mm}, "
            f"{asset.timings['total_s']:.1f} s ({asset.timings['render_per_frame_s']:.2f} s/frame)")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _fail(what, reason: str, detail: str, status: int = 1) -> int:
    """Print the one error line ``<input>: <reason>: <detail>`` and return the exit status."""
    print(f"{printable(str(what), 400)}: {reason}: {printable(detail, 400)}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
        policy = apply_overrides(AssetPolicy(), overrides_from_args(args, AssetPolicy))
        limits = apply_overrides(Limits(), overrides_from_args(args, Limits))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        for stop in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a parent may have left it ignored, which Python keeps
            signal.signal(stop, _interrupt)
        with Renderer(on_progress=None if args.quiet else StageProgress("images", prefix="rendering "), limits=limits) as renderer:
            asset = renderer.render(args.asset, args.out, options, overwrite=args.overwrite, policy=policy)
        preview = write_preview(args.out)
    except KeyboardInterrupt:
        return _fail(args.asset, "interrupted", "stopped by a signal; Blender stopped, nothing written at --out", 130)
    except AssetError as exc:
        return _fail(exc.asset or args.asset, exc.kind, exc.reason)
    except FileExistsError:
        return _fail(args.out, "output_exists", "the output directory exists (use --overwrite to replace it)")
    except OSError as exc:
        return _fail(args.out, "write_failed", f"{exc.strerror or exc} ({exc.filename or 'writing the render'})")
    except Exception as exc:  # a bug: still one line for the user, the type names it
        return _fail(args.asset, "internal_error", f"{type(exc).__name__}: {exc}")
    if not args.quiet:
        print(summary(args.asset, args.out, asset) + f"; preview {preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
