"""Curation job throughput on this machine: assets per hour, stage by stage, 1 vs 2 workers.

The batch mimics real Objaverse, where most assets are rejected: the five built-ins (four
animated), the ten static third-party files of ../shared/assets/objaverse-xl-test-files, and
``--static-copies`` distinct copies of the static built-in (its glTF JSON gets a different
``asset.extras``, so each copy has its own sha256 and uid). Each worker count runs the whole
job from scratch (embedded local Ray, Cycles quality renders of the kept assets, shards).

    python -m benchmarks.pipeline_throughput [--workers 1 2] [--frames 24] [--resolution 64] [--static-copies 10]

``assets/h`` counts from the worker pool's start to the last result, shard writing included
(Ray's start-up is reported separately); stage columns are seconds per clip that reached the
stage (the import is charged to an asset's first clip's pre-check). Prints a Markdown table; writes benchmarks/results/pipeline_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

from d4d.curation.procedure import DecisionConfig
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.runner import run_curation
from d4d.pipelines.sources import SourceSpec
from d4d.rendering.builtin_assets import ensure_builtin_assets
from d4d.rendering.options import RenderOptions

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "objaverse-xl-test-files"
RESULTS = Path(__file__).with_name("results")
STAGES = ("fetch", "precheck", "prepass", "quality")


def glb_copy(source: Path, target: Path, number: int) -> None:
    """Write ``source`` (a glTF binary) to ``target`` with ``asset.extras.copy = number`` in its JSON."""
    data = source.read_bytes()
    magic, version, _, json_len, json_type = struct.unpack("<4sIIII", data[:20])
    gltf = json.loads(data[20 : 20 + json_len])
    gltf["asset"].setdefault("extras", {})["copy"] = number
    chunk = json.dumps(gltf, separators=(",", ":")).encode()
    chunk += b" " * (-len(chunk) % 4)
    rest = data[20 + json_len :]
    body = struct.pack("<II", len(chunk), json_type) + chunk + rest
    target.write_bytes(struct.pack("<4sII", magic, version, 12 + len(body)) + body)


def build_batch(root: Path, static_copies: int) -> Path:
    assets = root / "batch"
    assets.mkdir(parents=True)
    for name, path in ensure_builtin_assets(root / "builtin").items():
        shutil.copy(path, assets / f"{name}.glb")
    for path in sorted(SHARED_ASSETS.iterdir()) if SHARED_ASSETS.exists() else []:
        shutil.copy(path, assets / path.name)
    for i in range(static_copies):
        glb_copy(assets / "static.glb", assets / f"static_copy{i:02d}.glb", i)
    return assets


def measure(assets: Path, out: Path, workers: int, frames: int, resolution: int) -> dict:
    config = PipelineConfig(decision=DecisionConfig(render=RenderOptions(frames=frames, resolution=resolution)), workers=workers, shard_batch=4)
    started = time.time()
    stats = run_curation(SourceSpec("local", str(assets)), config, out)
    return {"workers": workers, "total_s": time.time() - started, **stats}


def table(runs: list[dict]) -> str:
    base = runs[0]["assets_per_hour"]
    lines = [
        "| workers | assets | clips keep / reject / failed | job s | Ray start s | assets/h | speed-up | "
        + " | ".join(STAGES)
        + " |",
        "|---" * (7 + len(STAGES)) + "|",
    ]
    for r in runs:
        d = r["by_decision"]
        per = r["stage_seconds_per_clip"]
        lines.append(
            f"| {r['workers']} | {r['finished']} | {d.get('keep', 0)} / {d.get('reject', 0)} / {d.get('failed', 0)} | {r['wall_s']:.1f} | "
            f"{r['total_s'] - r['wall_s']:.1f} | {r['assets_per_hour']:.0f} | {r['assets_per_hour'] / base:.2f}x | "
            + " | ".join(f"{per.get(s, 0.0):.2f}" for s in STAGES)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--resolution", type=int, default=64, help="quality render side (Cycles), pixels")
    p.add_argument("--static-copies", type=int, default=10)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="d4d-bench-pipeline-") as tmp:
        assets = build_batch(Path(tmp), args.static_copies)
        runs = [measure(assets, Path(tmp) / f"out-{n}", n, args.frames, args.resolution) for n in args.workers]
    RESULTS.mkdir(exist_ok=True)
    meta = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "platform": platform.platform(), "frames": args.frames, "resolution": args.resolution}
    (RESULTS / "pipeline_throughput.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2, default=str))
    print(f"\n{runs[0]['finished']} assets, {args.frames} frames, quality {args.resolution} px Cycles; {meta}\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
