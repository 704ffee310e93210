"""The curation path per asset, measured against d4d 0.1's own code in the same run.

Two measurements, on folders of assets d4d generates itself:

1. **Path** (issue 15): assets per hour through the curation steps (no Ray: the per-asset
   work a Ray worker does), on a mixed folder like real Objaverse: mostly rejects (static
   assets, a T-pose-only character), several kept animations, one heavy textured mesh. The
   reference is d4d 0.1 as it landed (commit ``REFERENCE_COMMIT``, extracted with ``git archive``
   and run from that tree in a subprocess): a 16 px pre-check render read only for its
   asset.json, then the 64 px pre-pass and the quality render, each importing, analysing and
   hashing the file again. d4d now: one import and one analysis per asset shared by every
   stage, an analysis-only pre-check, an orbit-only pre-pass, an 8-frame reject preview. Both
   judge one clip per asset (the whole animation in T frames), at the same quality settings.
2. **Clips** (issue 12): clips per asset and seconds per clip on multi-action characters (glTF
   and FBX), a 20 s animation, a T-pose-only character and a built-in, every animation and
   window as its own clip, against d4d 0.1's one clip per asset (its own code, as above).

    python -m benchmarks.curation_path [--frames 24] [--resolution 128]

Writes benchmarks/results/curation_path.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from d4d.curation.procedure import DecisionConfig
from d4d.curation.sources import LocalFolderSource
from d4d.pipelines.chain import StepChain
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.sources import SourceSpec
from d4d.pipelines.steps import WorkerContext, default_steps
from d4d.pipelines.work import WorkItem
from d4d.rendering.builtin_assets import ensure_builtin_assets
from d4d.rendering.options import RenderOptions
from d4d.testing.wild_assets import ensure_wild_assets

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
SHARED_ASSETS = REPO.parent / "shared" / "assets" / "objaverse-xl-test-files"
#: d4d 0.1 as it landed: the reference path.
REFERENCE_COMMIT = "a0f1c70"

#: Runs d4d 0.1's steps over a folder from inside its own tree; one JSON line per asset.
REFERENCE_DRIVER = """
import json, sys, time
from pathlib import Path
from curation.sources import LocalFolderSource
from pipelines.chain import StepChain
from pipelines.config import PipelineConfig
from pipelines.sources import SourceSpec
from pipelines.steps import WorkerContext, default_steps
from pipelines.work import WorkItem
folder, out, frames, resolution, warm = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
chain = StepChain(default_steps(SourceSpec("local", folder), PipelineConfig(frames=frames, resolution=resolution), out / "renders"), WorkerContext(out / "logs"))
chain.setup()
for record in LocalFolderSource(warm).records():
    chain.process(WorkItem(record))  # start Blender outside the measurement
for record in LocalFolderSource(folder).records():
    clock = time.perf_counter()
    item = chain.process(WorkItem(record))
    print(json.dumps({"name": Path(record.file_identifier).name, "decisions": [item.decision], "seconds": time.perf_counter() - clock}), flush=True)
chain.close()
"""


def reference_tree(root: Path) -> Path:
    """d4d 0.1's files at REFERENCE_COMMIT, extracted under ``root``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", REFERENCE_COMMIT], check=True, capture_output=True).stdout
    tree = root / "d4d-0.1"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def reference_path(folder: Path, warm: Path, root: Path, frames: int, resolution: int) -> dict:
    tree = reference_tree(root)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", REFERENCE_DRIVER, str(folder), str(root / "reference-out"), str(frames), str(resolution), str(warm)],
                          cwd=tree, env=env, check=True, capture_output=True, text=True, timeout=7200)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return _summary({r["name"]: r for r in rows})


def d4d_path(folder: Path, warm: Path, root: Path, config: PipelineConfig) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    chain = StepChain(default_steps(SourceSpec("local", str(folder)), config, root / "renders"), WorkerContext(root / "logs", root))
    chain.setup()
    rows = {}
    try:
        for record in LocalFolderSource(warm).records():
            chain.process(WorkItem(record))
        for record in LocalFolderSource(folder).records():
            clock = time.perf_counter()
            item = chain.process(WorkItem(record))
            seconds = time.perf_counter() - clock
            decisions = [c.decision.decision for c in item.clips] or [f"failed {item.failure.reason}"]
            rows[Path(record.file_identifier).name] = {"name": Path(record.file_identifier).name, "decisions": decisions, "seconds": seconds,
                                                       "clips": [{"action": c.action, "window": c.window, "decision": c.decision.decision,
                                                                  "reason": c.decision.reason, "seconds": sum(c.timings.values())} for c in item.clips]}
    finally:
        chain.close()
    return _summary(rows)


def _summary(rows: dict) -> dict:
    total = sum(r["seconds"] for r in rows.values())
    clips = sum(len(r["decisions"]) for r in rows.values())
    kept = sum(d == "keep" for r in rows.values() for d in r["decisions"])
    return {"assets": rows, "total_s": total, "assets_per_hour": 3600 * len(rows) / total, "clips": clips, "kept": kept,
            "clips_per_asset": clips / len(rows), "seconds_per_clip": total / clips}


def mixed_folder(root: Path, builtin: dict, wild: dict) -> Path:
    """Rejects (static built-in, T-pose only, the third-party static files when present), several
    kept animations (four built-ins) and one heavy textured mesh."""
    folder = root / "mixed"
    folder.mkdir()
    for name, path in builtin.items():
        shutil.copy(path, folder / f"{name}.glb")
    for name in ("tpose_only", "heavy"):
        shutil.copy(wild[name], folder / f"{name}.glb")
    for path in sorted(SHARED_ASSETS.glob("*.*")) if SHARED_ASSETS.exists() else []:
        shutil.copy(path, folder / path.name)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=128, help="quality render side (Cycles, the renderer's default settings otherwise)")
    args = parser.parse_args(argv)
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1min_before": os.getloadavg()[0]},
               "settings": {"frames": args.frames, "resolution": args.resolution, "reference_commit": REFERENCE_COMMIT}}
    with tempfile.TemporaryDirectory(prefix="d4d-bench-path-") as tmp:
        root = Path(tmp)
        builtin = ensure_builtin_assets(root / "builtin")
        wild = ensure_wild_assets(root / "wild")
        warm = root / "warm"
        warm.mkdir()
        shutil.copy(builtin["static"], warm / "static.glb")
        mixed = mixed_folder(root, builtin, wild)
        render = RenderOptions(frames=args.frames, resolution=args.resolution)
        one_clip = PipelineConfig(decision=DecisionConfig(render=replace(render, max_sample_step_s=None)))
        results["reference"] = reference_path(mixed, warm, root / "reference", args.frames, args.resolution)
        results["d4d"] = d4d_path(mixed, warm, root / "d4d", one_clip)
        results["path_speedup"] = results["d4d"]["assets_per_hour"] / results["reference"]["assets_per_hour"]

        several = root / "several"
        several.mkdir()
        for name in ("character", "soldier", "dance_20s", "tpose_only"):
            shutil.copy(wild[name], several / Path(wild[name]).name)
        shutil.copy(builtin["skinned"], several / "skinned.glb")
        every = PipelineConfig(decision=DecisionConfig(render=render))
        results["clips"] = {"d4d 0.1: one clip per asset": reference_path(several, warm, root / "clips-reference", args.frames, args.resolution),
                            "d4d: every animation and window": d4d_path(several, warm, root / "clips-every", every)}
    results["machine"]["load_1min_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "curation_path.json").write_text(json.dumps(results, indent=2) + "\n")

    print("| asset | decision | d4d 0.1 s | d4d s | speed-up |\n|---|---|---|---|---|")
    for name, row in results["d4d"]["assets"].items():
        ref = results["reference"]["assets"][name]
        print(f"| {name} | {', '.join(row['decisions'])} | {ref['seconds']:.2f} | {row['seconds']:.2f} | {ref['seconds'] / row['seconds']:.2f}x |")
    print(f"| **all {len(results['d4d']['assets'])}** | | {results['reference']['total_s']:.1f} | {results['d4d']['total_s']:.1f} | **{results['path_speedup']:.2f}x** |")
    print(f"\nassets/h: d4d 0.1 {results['reference']['assets_per_hour']:.0f}, d4d {results['d4d']['assets_per_hour']:.0f}\n")
    print("| behaviour | assets | clips | kept | clips/asset | s/clip | total s |\n|---|---|---|---|---|---|---|")
    for label, row in results["clips"].items():
        print(f"| {label} | {len(row['assets'])} | {row['clips']} | {row['kept']} | {row['clips_per_asset']:.1f} | {row['seconds_per_clip']:.2f} | {row['total_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
