"""Held-out PSNR against time of d4d-reconstruct on real renders of every built-in asset.

Each built-in asset (d4d-make-assets) is rendered with Cycles (d4d-render's defaults) into
dynamic and static orbits, then reconstructed on the CPU with each setting in the same run:
``cpu`` (the CPU default), ``fast`` (the quick preview) and ``fast-0.1`` (the reference: the
setting d4d 0.1 used on CPUs, ``fast`` with the paper-like deformation rates 1e-2 / 1e-3). Held-out views are d4d-reconstruct's (dynamic frames 4, 12, 20 of 24,
their poses left out of the static orbit too), evaluated every ``--eval-every`` steps;
evaluation time is excluded from every time reported.

    python -m benchmarks.reconstruct_quality [--renders DIR] [--assets rigid skinned ...]
        [--presets cpu fast fast-0.1] [--resolution 128] [--frames 24] [--eval-every 250] [--threads N]

``--renders DIR`` reuses (or fills) DIR/<asset>/ render directories. Writes
benchmarks/results/reconstruct_quality.json and prints a Markdown table; the targets of
issue 14 (at least 30 dB in at most 300 s per asset) are checked per row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from d4d.reconstruction.config import PRESETS, ReconstructConfig, preset
from d4d.reconstruction.outputs import write_outputs
from d4d.reconstruction.trainer import reconstruct
from d4d.reconstruction.views import views_from_sample
from d4d.rendering.builtin_assets import BUILTIN_ASSETS
from d4d.rendering.contract import load_render

RESULTS = Path(__file__).with_name("results")
TARGET_PSNR_DB = 30.0
TARGET_SECONDS = 300.0
#: The reference: d4d 0.1's CPU setting, ``fast`` with the deformation rates it had then.
REFERENCES = {"fast-0.1": lambda: replace(PRESETS["fast"](), deformation=replace(PRESETS["fast"]().deformation, lr_grid=1e-2, lr_mlp=1e-3))}


def setting(name: str) -> ReconstructConfig:
    """A preset of d4d-reconstruct or a reference of this benchmark, without progress lines or checkpoints."""
    config = REFERENCES[name]() if name in REFERENCES else preset(name)
    return replace(config, progress_every_s=0.0, checkpoint_every=0)


def ensure_renders(root: Path, assets: list[str], resolution: int, frames: int) -> dict[str, Path]:
    """asset -> render directory under ``root``, rendering (Cycles, d4d's defaults) those that are missing."""
    dirs = {name: root / name for name in assets}
    missing = [name for name, d in dirs.items() if not (d / "transforms.json").is_file()]
    if missing:
        from d4d.rendering.api import Renderer
        from d4d.rendering.builtin_assets import ensure_builtin_assets
        from d4d.rendering.options import RenderOptions

        files = ensure_builtin_assets(root / "assets")
        with Renderer() as renderer:
            for name in missing:
                renderer.render(files[name], dirs[name], RenderOptions(resolution=resolution, frames=frames, videos=("dynamic", "static", "front")))
    return dirs


def run_one(render: Path, preset_name: str, eval_every: int, out: Path) -> dict:
    """One reconstruction: final held-out scores, seconds (evaluations excluded) and the PSNR history."""
    sample = load_render(render, videos=("dynamic", "static"))
    config = setting(preset_name)
    load_start = time.perf_counter()
    views = views_from_sample(sample)
    load_s = time.perf_counter() - load_start
    result = reconstruct(views, config, device="cpu", backend="torch", eval_every=eval_every)
    video = sample.videos["dynamic"]
    metrics = write_outputs(result, video.times, sample.K, sample.width, sample.height, 2.0, out, {"input": str(render)})
    timings = metrics["timings_s"]
    seconds = load_s + sum(v for k, v in timings.items() if k != "eval") - timings.get("eval", 0.0)
    reached = next((h for h in result.history if h["psnr"] >= TARGET_PSNR_DB), None)
    return {
        "preset": preset_name,
        "steps": config.coarse_iterations + config.iterations,
        "psnr": round(metrics["heldout"]["psnr"], 2),
        "ssim": round(metrics["heldout"]["ssim"], 4),
        "psnr_per_view": [round(v["psnr"], 2) for v in metrics["heldout"]["views"]],
        "seconds": round(seconds, 1),
        "train_seconds": round(result.history[-1]["train_seconds"], 1) if result.history else None,
        "train_seconds_to_target": round(reached["train_seconds"], 1) if reached else None,
        "n_gaussians": metrics["n_gaussians"],
        "timings_s": timings,
        "history": [{"step": h["step"], "train_seconds": round(h["train_seconds"], 1), "psnr": round(h["psnr"], 2)} for h in result.history],
        "meets_target": metrics["heldout"]["psnr"] >= TARGET_PSNR_DB and seconds <= TARGET_SECONDS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=Path, help="directory of <asset>/ renders to reuse or fill (default: a temporary one)")
    parser.add_argument("--assets", nargs="+", default=list(BUILTIN_ASSETS), choices=BUILTIN_ASSETS)
    parser.add_argument("--presets", nargs="+", default=["cpu", "fast", "fast-0.1"], choices=sorted(PRESETS) + sorted(REFERENCES), help="settings to compare (fast-0.1 is the reference)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--eval-every", type=int, default=250, help="held-out evaluation every this many steps (time excluded)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, as d4d-reconstruct)")
    parser.add_argument("--out", type=Path, default=RESULTS / "reconstruct_quality.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="d4d-bench-recon-"))
    renders = ensure_renders(args.renders or work / "renders", args.assets, args.resolution, args.frames)
    load_before = os.getloadavg()
    rows = []
    for asset in args.assets:
        for name in args.presets:
            row = {"asset": asset, **run_one(renders[asset], name, args.eval_every, work / f"{asset}-{name}")}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "resolution": args.resolution,
        "frames": args.frames,
        "targets": {"psnr_db": TARGET_PSNR_DB, "seconds": TARGET_SECONDS},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print("| asset | preset | steps | held-out PSNR (dB) | SSIM | seconds | train s to 30 dB | Gaussians | >= 30 dB in <= 300 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['asset']} | {r['preset']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.0f} | "
              f"{r['train_seconds_to_target'] if r['train_seconds_to_target'] is not None else 'never'} | {r['n_gaussians']} | {'yes' if r['meets_target'] else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
