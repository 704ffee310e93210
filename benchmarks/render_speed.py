"""Render speed and quality: d4d's renderer against the paper's released settings, same run.

Reference (the released Diffusion4D recipe): Cycles, 128 samples, OpenImageDenoise at high
quality, Blender's 12 light bounces, and a fresh Blender process per asset
(``d4d-render --preset paper --open-orbit`` in a new process each time).
Candidate: d4d's defaults (Cycles 8 samples, fast denoising, 4 bounces) with one warm
Blender worker for all assets.

Both render the dynamic and static 24-frame orbits at 256x256 with the same cameras (the
reference's closed orbit is switched off so every frame has a twin) at the same animation
times (the paper's frames 0..T-1; the preset's second orbit is left out), so image quality is
PSNR of the candidate against the reference frames: over the whole frame composited on
white, and over the asset's pixels only (alpha > 0 in either image).

    python -m benchmarks.render_speed [--frames 24] [--resolution 256] [--assets rigid static ...]

Writes benchmarks/results/render_speed.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from d4d.rendering.api import Renderer
from d4d.rendering.builtin_assets import BUILTIN_ASSETS, ensure_builtin_assets
from d4d.rendering.contract import load_render
from d4d.rendering.options import RenderOptions

RESULTS = Path(__file__).with_name("results")


def psnr(a: np.ndarray, b: np.ndarray, foreground_only: bool) -> float:
    """PSNR (dB) between uint8 RGBA frame stacks [T, H, W, 4], colour composited over white."""
    a, b = a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0
    over_white = lambda x: x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])  # noqa: E731
    err = (over_white(a) - over_white(b)) ** 2
    if foreground_only:
        mask = (a[..., 3] > 0) | (b[..., 3] > 0)
        err = err[mask]
    mse = float(err.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--assets", nargs="+", default=list(BUILTIN_ASSETS), choices=BUILTIN_ASSETS)
    parser.add_argument("--out", type=Path, default=RESULTS / "render_speed.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="d4d-bench-render-"))
    assets = ensure_builtin_assets(work / "assets")
    videos = ("dynamic", "static")
    n_frames = args.frames * len(videos)
    rows = []

    candidate_opts = RenderOptions(frames=args.frames, resolution=args.resolution, videos=videos, time_sampling="first_frames")
    with Renderer() as renderer:
        # Start the warm worker outside the timings: a long job pays Blender's start once.
        renderer.render(assets["static"], work / "warmup", RenderOptions(engine="workbench", frames=2, resolution=32))
        for name in args.assets:
            ref_dir, cand_dir = work / f"ref-{name}", work / f"d4d-{name}"
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "d4d.rendering.cli", str(assets[name]), "--out", str(ref_dir), "--preset", "paper",
                 "--open-orbit", "--orbits", "1", "--frames", str(args.frames), "--resolution", str(args.resolution), "--videos", *videos, "-q"],
                check=True,
            )
            ref_s = time.perf_counter() - started
            started = time.perf_counter()
            renderer.render(assets[name], cand_dir, candidate_opts)
            cand_s = time.perf_counter() - started
            ref, cand = load_render(ref_dir, videos=videos), load_render(cand_dir, videos=videos)
            ref_px = np.concatenate([ref.videos[v].rgba for v in videos])
            cand_px = np.concatenate([cand.videos[v].rgba for v in videos])
            rows.append(
                {
                    "asset": name,
                    "reference_s_per_asset": ref_s,
                    "d4d_s_per_asset": cand_s,
                    "reference_s_per_frame": ref_s / n_frames,
                    "d4d_s_per_frame": cand_s / n_frames,
                    "speedup": ref_s / cand_s,
                    "psnr_full_db": psnr(cand_px, ref_px, foreground_only=False),
                    "psnr_foreground_db": psnr(cand_px, ref_px, foreground_only=True),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    total_ref = sum(r["reference_s_per_asset"] for r in rows)
    total_cand = sum(r["d4d_s_per_asset"] for r in rows)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "frames_per_video": args.frames,
        "resolution": args.resolution,
        "videos": list(videos),
        "reference": "Cycles 128 samples, OIDN high, 12 bounces, fresh Blender process per asset",
        "candidate": f"d4d defaults: Cycles {candidate_opts.samples} samples, OIDN {candidate_opts.denoise_quality}, {candidate_opts.max_bounces} bounces, one warm worker",
        "speedup_total": total_ref / total_cand,
        "min_psnr_full_db": min(r["psnr_full_db"] for r in rows),
        "min_psnr_foreground_db": min(r["psnr_foreground_db"] for r in rows),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print()
    print("| asset | reference s/asset | d4d s/asset | reference s/frame | d4d s/frame | speed-up | PSNR full (dB) | PSNR asset pixels (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['asset']} | {r['reference_s_per_asset']:.1f} | {r['d4d_s_per_asset']:.1f} | {r['reference_s_per_frame']:.2f} | "
              f"{r['d4d_s_per_frame']:.3f} | {r['speedup']:.1f}x | {r['psnr_full_db']:.1f} | {r['psnr_foreground_db']:.1f} |")
    print(f"| **all** | {total_ref:.1f} | {total_cand:.1f} | | | **{summary['speedup_total']:.1f}x** | min {summary['min_psnr_full_db']:.1f} | min {summary['min_psnr_foreground_db']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
