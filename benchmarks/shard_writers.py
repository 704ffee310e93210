"""Shard writing throughput: kept clips per hour with 1 and 2 shard writers, in the same run.

    nice -n 19 python -m benchmarks.shard_writers [--writers 1 2] [--clips 24] [--resolution 256] [--frames 24]

Only encoding is measured. The clips are real quality renders, as d4d-curate renders a kept clip
(``RenderOptions`` defaults: Cycles, 8 samples, denoised, three videos) of the built-in animated
assets, rendered once (not timed) and copied under distinct clip ids up to ``--clips``. They
are handed to the run's shard writers (``pipelines.writers.ShardWriters`` with the production
``WriteShards`` step: lossy VP9, Parquet) on one embedded Ray, all at once, as a driver hands
them over when its workers keep clips faster than the writers encode; nothing else runs. So
``clips_per_hour`` is the ceiling shard writing puts on a run; each writer count writes into
a fresh output folder, in the same Ray session. ``writer_cpu_s_per_clip`` is the CPU time the
writer processes used (every thread: libvpx encodes rows in parallel), ``writer_cores`` that
over the wall time (from /proc/PID/stat; the machine may be shared with other work).

Writes benchmarks/results/shard_writers.json and prints a Markdown table (benchmarks/PIPELINE_RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import ray

from d4d.pipelines.ray_adapter import init_ray, shutdown_ray
from d4d.pipelines.steps import WriteShards
from d4d.pipelines.writers import ShardWriters
from d4d.rendering.api import Renderer
from d4d.rendering.builtin_assets import ensure_builtin_assets
from d4d.rendering.options import RenderOptions
from d4d.shards.files import ShardNames, list_shards

RESULTS = Path(__file__).with_name("results")
ANIMATED = ("rigid", "skinned", "shapekeys", "late_start")


def render_clips(root: Path, clips: int, options: RenderOptions) -> list[str]:
    """``clips`` render directories: one real render per animated built-in, copied under new clip ids."""
    assets = ensure_builtin_assets(root / "builtin")
    originals = [root / "originals" / name for name in ANIMATED]
    renderer = Renderer(log_dir=root / "logs")
    try:
        for name, out in zip(ANIMATED, originals):
            renderer.render(assets[name], out, options)
    finally:
        renderer.close()
    renders = []
    for i in range(clips):
        copy = root / "renders" / f"clip{i:03d}"
        shutil.copytree(originals[i % len(originals)], copy)
        asset = json.loads((copy / "asset.json").read_text())
        asset["uid"] = f"{asset['uid']}-copy{i:03d}"
        (copy / "asset.json").write_text(json.dumps(asset))
        renders.append(str(copy))
    return renders


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system, every thread) the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(renders: list[str], out: Path, writers: int, shard_batch: int) -> dict:
    """Write ``renders`` with ``writers`` shard writers into ``out``/shards; the rate and what it used."""
    def step(k: int, count: int) -> WriteShards:
        return WriteShards(out / "shards", "lossy", 512.0, staging=out / "staging" / f"writer-{k}", names=ShardNames(k, count))

    pool = ShardWriters(writers, step)
    pool.start()
    pids = ray.get([w.actor.__ray_call__.remote(lambda actor: os.getpid()) for w in pool.writers])  # started before the clock
    cpu = cpu_seconds(pids)
    started = time.perf_counter()
    pending, written, batches = list(renders), 0, 0
    while pending or pool.busy():
        pending = pool.submit(pending, shard_batch, final=True)
        ready, _ = ray.wait(pool.refs(), num_returns=1)
        _, _, report = pool.result(ready[0])
        assert not report["failed"] and report["stop"] is None, report
        written, batches = written + len(report["written"]), batches + 1
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu
    for writer in pool.writers:
        ray.kill(writer.actor, no_restart=True)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in list_shards(out / "shards"))
    assert written == rows == len(renders), (written, rows)
    return {"writers": writers, "clips": written, "batches": batches, "wall_s": wall, "s_per_clip": wall / written,
            "clips_per_hour": 3600.0 * written / wall, "writer_cpu_s_per_clip": cpu / written, "writer_cores": cpu / wall,
            "shards": len(list_shards(out / "shards"))}


def table(runs: list[dict]) -> str:
    base = runs[0]["clips_per_hour"]
    lines = ["| shard writers | clips | batches | wall s | s per clip | clips/h | vs 1 writer | writers' CPU s per clip | writers' cores |", "|---" * 9 + "|"]
    for r in runs:
        lines.append(f"| {r['writers']} | {r['clips']} | {r['batches']} | {r['wall_s']:.1f} | {r['s_per_clip']:.2f} | {r['clips_per_hour']:.0f} | "
                     f"{r['clips_per_hour'] / base:.2f}x | {r['writer_cpu_s_per_clip']:.2f} | {r['writer_cores']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shard_writers", description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--shard-batch", type=int, default=8, help="d4d-curate's --shard-batch")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--frames", type=int, default=24)
    args = p.parse_args(argv)
    options = RenderOptions(resolution=args.resolution, frames=args.frames)
    with tempfile.TemporaryDirectory(prefix="d4d-bench-writers-") as tmp:
        root = Path(tmp)
        clock = time.perf_counter()
        renders = render_clips(root, args.clips, options)
        render_s = time.perf_counter() - clock
        where, session = init_ray(None, max(args.writers), 0, root)
        try:
            runs = [measure(renders, root / f"out-{n}", n, args.shard_batch) for n in args.writers]
        finally:
            shutdown_ray()
    meta = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "platform": platform.platform(), "ray": where, "render_s": render_s,
            "resolution": args.resolution, "frames": args.frames, "engine": options.engine, "samples": options.samples, "shard_batch": args.shard_batch}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shard_writers.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    print(f"\n{args.clips} clips of {args.frames} frames at {args.resolution} px ({options.engine}, {options.samples} samples), lossy; {meta}\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
