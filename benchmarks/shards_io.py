"""Shard write/read throughput and size against the PNG render folders they come from.

    python -m benchmarks.shards_io                         # synthetic renders, 256 px, 24 frames
    python -m benchmarks.shards_io --renders DIR [DIR ...]  # real render directories

For each codec it measures, on this machine, in one process (no DataLoader workers), as samples
per wall second and per CPU second of the process (the machine may be shared):
- write: d4d-shards write of all render directories (PNG decode + video encode + Parquet);
- read: ShardDataset over the shards, decoding the dynamic and static videos to tensors;
- bytes per sample on disk; for the lossy codec the worst premultiplied-RGB PSNR and alpha error.
The reference, measured in the same run, reads each PNG folder with rendering.contract.load_render
and converts the same two videos to the same tensors. Results: benchmarks/SHARDS_RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from d4d.rendering.contract import load_render, read_asset
from d4d.shards.dataset import ShardDataset
from d4d.shards.decode import frames_to_tensors
from d4d.shards.from_render import render_uid
from d4d.shards.video import decode_rgba
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render

VIDEOS = ("dynamic", "static")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def best_rates(readers: dict, samples: int, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (samples per wall second, samples per CPU second), the best of ``repeats`` runs.

    The readers run interleaved, one after another in every repeat, so a shared machine's
    changing load hits them alike; CPU time (all threads of this process) is less sensitive
    to that load than wall time.
    """
    best = {name: (math.inf, math.inf) for name in readers}
    for _ in range(repeats):
        for name, run in readers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return {name: (samples / wall, samples / cpu) for name, (wall, cpu) in best.items()}


def read_pngs(render_dirs: list[Path]) -> None:
    for render_dir in render_dirs:
        sample = load_render(render_dir, videos=VIDEOS)
        for name in VIDEOS:
            frames_to_tensors(sample.videos[name].rgba)


def read_shards(shard_dir: Path) -> None:
    for _ in ShardDataset(shard_dir, videos=VIDEOS, seed=0):
        pass


def lossy_error(render_dirs: list[Path], shard_dir: Path) -> tuple[float, float, float]:
    """(worst premultiplied-RGB PSNR dB, worst alpha mean abs error, worst alpha max error), 0..255."""
    rows = {r["uid"]: r for r in pq.read_table(shard_dir, columns=["uid", *(f"{v}_video" for v in VIDEOS)]).to_pylist()}
    worst_psnr, worst_mae, worst_max = math.inf, 0.0, 0.0
    for render_dir in render_dirs:
        sample = load_render(render_dir, videos=VIDEOS)
        row = rows[render_uid(render_dir, read_asset(render_dir))]
        for name in VIDEOS:
            ref, dec = sample.videos[name].rgba, decode_rgba(row[f"{name}_video"])
            pre = lambda x: x[..., :3].astype(np.float64) * x[..., 3:4] / 255.0  # noqa: E731
            mse = ((pre(dec) - pre(ref)) ** 2).mean()
            worst_psnr = min(worst_psnr, math.inf if mse == 0 else 10 * math.log10(255**2 / mse))
            alpha_error = np.abs(dec[..., 3].astype(int) - ref[..., 3])
            worst_mae, worst_max = max(worst_mae, alpha_error.mean()), max(worst_max, alpha_error.max())
    return worst_psnr, worst_mae, worst_max


def synthetic_renders(root: Path, count: int, size: int, frames: int) -> list[Path]:
    return [make_shard_render(root, f"bench{i}", size=size, frames=frames) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", nargs="*", type=Path, help="render directories to use instead of synthetic ones")
    parser.add_argument("--synthetic", type=int, default=8, help="number of synthetic renders (default 8)")
    parser.add_argument("--size", type=int, default=256, help="synthetic frame size, pixels (default 256)")
    parser.add_argument("--frames", type=int, default=24, help="synthetic frames per video (default 24)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each read; the best is kept (default 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="d4d-bench-shards-") as tmp:
        tmp = Path(tmp)
        render_dirs = args.renders or synthetic_renders(tmp / "renders", args.synthetic, args.size, args.frames)
        first = load_render(render_dirs[0], load_pixels=False)
        frames = len(next(iter(first.videos.values())).times)
        n = len(render_dirs)
        print(f"{n} render directories, {first.width}x{first.height}, {frames} frames per video, videos {sorted(first.videos)}")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads 1")
        png_bytes = sum(folder_bytes(d) for d in render_dirs) / n
        readers, rows = {"PNG folders (reference)": lambda: read_pngs(render_dirs)}, {}
        for codec in ("lossy", "lossless"):
            shard_dir = tmp / f"shards-{codec}"
            wall, cpu = time.perf_counter(), time.process_time()
            report = write_shards(render_dirs, shard_dir, ShardWriteConfig(codec=codec))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if report.failed:
                raise SystemExit(f"write failed: {report.failed}")
            shard_bytes = sum(p.stat().st_size for p in shard_dir.glob("part-*.parquet")) / n
            error = "exact"
            if codec == "lossy":
                psnr, mae, worst = lossy_error(render_dirs, shard_dir)
                error = f"PSNR >= {psnr:.1f} dB, alpha MAE <= {mae:.3f}, max {worst:.0f} (of 255)"
            name = f"shards, {codec}"
            readers[name] = lambda shard_dir=shard_dir: read_shards(shard_dir)
            rows[name] = (f"{n / wall:.2f} / {n / cpu:.2f}", f"{shard_bytes / 1e6:.3f} ({png_bytes / shard_bytes:.1f}x smaller)", error)
        rates = best_rates(readers, n, args.repeats)
        rows = {"PNG folders (reference)": ("-", f"{png_bytes / 1e6:.3f}", "-"), **rows}
        lines = [
            "| storage | write samples/s (wall / CPU) | read samples/s (wall / CPU) | MB per sample | lossy error |",
            "|---|---|---|---|---|",
        ]
        for name, (write, size, error) in rows.items():
            lines.append(f"| {name} | {write} | {rates[name][0]:.2f} / {rates[name][1]:.2f} | {size} | {error} |")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
