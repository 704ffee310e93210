"""Time to a held-out PSNR for d4d-reconstruct on a 24-frame orbit (CPU here; results in RECONSTRUCT_RESULTS.md).

    python -m benchmarks.reconstruct_speed [--input RENDER_DIR] [--resolution 64] [--preset fast]
                                           [--target-psnr 25] [--eval-every 50] [--threads 1]
                                           [--device cpu] [--backend auto]

Without --input it renders the synthetic two-sphere scene of d4d/testing/recon_fixtures.py (a
moving and a resting sphere, dynamic + static 24-view orbits). It trains with held-out
evaluations every --eval-every steps and prints, as JSON and as a markdown table row, the
wall and CPU seconds of training (evaluation excluded) until the held-out PSNR first
reaches the target, and the final PSNR / SSIM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from d4d.reconstruction.config import PRESETS, preset
from d4d.reconstruction.trainer import reconstruct
from d4d.reconstruction.views import views_from_sample
from d4d.rendering.contract import load_render
from d4d.testing.recon_fixtures import make_sphere_render


def synthetic_render(out: Path, resolution: int) -> Path:
    return make_sphere_render(out, resolution=resolution, frames=24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", help="render directory (default: the synthetic two-sphere scene)")
    parser.add_argument("--resolution", type=int, default=64, help="side of the synthetic renders, pixels")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast")
    parser.add_argument("--target-psnr", type=float, default=25.0)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        render = Path(args.input) if args.input else synthetic_render(Path(tmp) / "render", args.resolution)
        sample = load_render(render, videos=("dynamic", "static"))
        config = preset(args.preset, progress_every_s=0.0, checkpoint_every=0)
        cpu_start = time.process_time()
        result = reconstruct(views_from_sample(sample), config, device=args.device, backend=args.backend, eval_every=args.eval_every)
        cpu_total = time.process_time() - cpu_start
    reached = next((h for h in result.history if h["psnr"] >= args.target_psnr), None)
    final = result.history[-1] if result.history else result.evaluate()
    report = {
        "input": str(args.input or f"synthetic two spheres {args.resolution}x{args.resolution}"),
        "device": args.device,
        "backend": result.backend,
        "threads": args.threads,
        "preset": args.preset,
        "steps": config.coarse_iterations + config.iterations,
        "target_psnr": args.target_psnr,
        "step_reached": reached["step"] if reached else None,
        "train_seconds_to_target": round(reached["train_seconds"], 1) if reached else None,
        "train_seconds_total": round(result.history[-1]["train_seconds"], 1) if result.history else None,
        "process_cpu_seconds_total_incl_eval": round(cpu_total, 1),
        "final_psnr": round(final["psnr"], 2),
        "final_ssim": round(final["ssim"], 4),
        "n_gaussians": int(result.params["means"].shape[0]),
        "history": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in h.items()} for h in result.history],
    }
    print(json.dumps(report, indent=1))
    print(
        f"| {report['input']} | {report['device']} ({report['backend']}, {args.threads} thread) | {report['steps']} | "
        f"{report['step_reached']} | {report['train_seconds_to_target']} | {report['train_seconds_total']} | "
        f"{report['final_psnr']} | {report['final_ssim']} | {report['n_gaussians']} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
