"""d4d-reconstruct: fit explicit 4D Gaussians to a render's orbital videos.

    d4d-reconstruct INPUT --out DIR [--preset fast|paper] [--iterations N] [--coarse-iterations N]
                    [--backend auto|torch|gsplat] [--device auto|cpu|cuda[:K]] [--init hull|random]
                    [--seed N]

INPUT is a d4d-render directory, a d4d-sample output directory, or a shard row
``SHARD.parquet#ROW`` (0-based row number, or the row's uid). Outputs: see
reconstruction/outputs.py. Exit status: 0 on success, 1 when the input cannot be read or the
run fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from d4d.reconstruction.config import PRESETS, preset
from d4d.reconstruction.inputs import load_input
from d4d.reconstruction.outputs import write_outputs
from d4d.reconstruction.rasterize import BACKENDS
from d4d.reconstruction.trainer import reconstruct
from d4d.reconstruction.views import views_from_sample

log = logging.getLogger("d4d-reconstruct")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d4d-reconstruct", description="Fit 4D Gaussians (canonical Gaussians + HexPlane deformation) to orbital videos.")
    parser.add_argument("input", metavar="INPUT", help="render directory, d4d-sample output directory, or SHARD.parquet#ROW")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="hyperparameter preset (default paper: 5000 coarse + 2000 fine steps; fast: small CPU runs)")
    parser.add_argument("--iterations", type=int, help="fine-stage steps (deformation learnt); default from the preset")
    parser.add_argument("--coarse-iterations", type=int, help="coarse-stage steps (static Gaussians); default from the preset")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="rasterizer: gsplat (CUDA), torch (any device) or auto (default)")
    parser.add_argument("--device", default="auto", help="torch device: auto (cuda when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--init", choices=("hull", "random"), help="initial points: visual hull of the alpha masks, or random in the unit cube")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides = {k: v for k, v in {"iterations": args.iterations, "coarse_iterations": args.coarse_iterations, "init": args.init, "seed": args.seed}.items() if v is not None}
    try:
        config = preset(args.preset, **overrides)
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    try:
        sample = load_input(args.input)
        views = views_from_sample(sample)
        log.info("%s: %s, %dx%d", args.input, ", ".join(f"{k} ({len(v.times)} frames)" for k, v in sample.videos.items()), sample.width, sample.height)
        start = time.perf_counter()
        result = reconstruct(views, config, device=device, backend=args.backend)
        video = sample.videos.get("dynamic") or next(iter(sample.videos.values()))
        distance = float(np.linalg.norm(video.c2w[:, :3, 3], axis=-1).mean())
        metrics = write_outputs(result, video.times, sample.K, sample.width, sample.height, distance, Path(args.out),
                                {"input": str(args.input), "device": str(device), "total_seconds": round(time.perf_counter() - start, 3)})
    except (ValueError, OSError) as exc:
        print(f"d4d-reconstruct: {args.input}: {exc}", file=sys.stderr)
        return 1
    held = metrics["heldout"]
    print(f"{args.out}: {metrics['n_gaussians']} Gaussians, held-out PSNR {held['psnr']} dB, SSIM {held['ssim']} over {len(held['views'])} views")
    return 0


if __name__ == "__main__":
    sys.exit(main())
