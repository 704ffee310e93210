"""Held-out PSNR against time of d4d-reconstruct on real renders of built-in and third-party assets.

Two asset sets (``--asset-set``): ``builtin``, every built-in asset (d4d-make-assets), and
``third-party``, animated files of Debian's assimp-testmodels (/usr/share/assimp/models) in
three formats and three kinds of motion (THIRD_PARTY); a file that is absent is skipped with
one line. The Objaverse-XL test files (../shared/assets) are not used: none of them animates
(tests/test_render.py). Each asset is rendered with Cycles (d4d-render's defaults) into
dynamic and static orbits, then reconstructed on the CPU with each setting in the same run:
``cpu`` (the CPU default), ``fast`` (the quick preview) and ``fast-0.1`` (the reference: the
setting d4d 0.1 used on CPUs, ``fast`` with the paper-like deformation rates 1e-2 / 1e-3). Held-out views are d4d-reconstruct's (dynamic frames 4, 12, 20 of 24,
their poses left out of the static orbit too), evaluated every ``--eval-every`` steps;
evaluation time is excluded from every time reported.

    python -m benchmarks.reconstruct_quality [--asset-set builtin|third-party] [--renders DIR]
        [--assets rigid skinned ...] [--presets cpu fast fast-0.1] [--resolution 128] [--frames 24]
        [--eval-every 250] [--threads N]

``--renders DIR`` reuses (or fills) DIR/<asset>/ render directories. Writes
benchmarks/results/reconstruct_quality.json (built-ins; presets cpu, fast, fast-0.1 by
default) or reconstruct_third_party.json (presets cpu, fast) and prints a Markdown table; the
targets of issue 14 (at least 30 dB in at most 300 s per asset) are checked per row. Each row
has wall seconds without evaluations and the process's CPU seconds (evaluations included;
their wall seconds are ``timings_s["eval"]``).
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

from d4d.files import write_json_atomic
from d4d.reconstruction.config import PRESETS, ReconstructConfig, preset
from d4d.reconstruction.outputs import write_outputs
from d4d.reconstruction.trainer import reconstruct
from d4d.reconstruction.views import views_from_sample
from d4d.rendering.builtin_assets import BUILTIN_ASSETS
from d4d.rendering.contract import load_render

RESULTS = Path(__file__).with_name("results")
ASSIMP_MODELS = Path("/usr/share/assimp/models")
#: Third-party animated assets (Debian's assimp-testmodels): name -> file. Not used: FBX/huesitos.fbx
#: (Blender imports its material with alpha 0, so Cycles renders nothing), FBX/animation_with_skeleton.fbx
#: and glTF2/simple_skin (flat sheets, empty masks edge-on).
THIRD_PARTY = {
    "animation_clips": ASSIMP_MODELS / "Collada/library_animation_clips.dae",  # Collada, a skinned bending cylinder
    "box_nested": ASSIMP_MODELS / "Collada/box_nested_animation.dae",  # Collada, a box moved by nested bones (rigid)
    "morph_cube": ASSIMP_MODELS / "glTF2/glTF-Sample-Models/AnimatedMorphCube-glTF/AnimatedMorphCube.gltf",  # glTF 2, morph targets
}
#: asset set -> (asset names, default settings, default results file).
ASSET_SETS = {
    "builtin": (list(BUILTIN_ASSETS), ["cpu", "fast", "fast-0.1"], RESULTS / "reconstruct_quality.json"),
    "third-party": (list(THIRD_PARTY), ["cpu", "fast"], RESULTS / "reconstruct_third_party.json"),
}
TARGET_PSNR_DB = 30.0
TARGET_SECONDS = 300.0
#: The reference: d4d 0.1's CPU setting, ``fast`` with the deformation rates it had then.
REFERENCES = {"fast-0.1": lambda: replace(PRESETS["fast"](), deformation=replace(PRESETS["fast"]().deformation, lr_grid=1e-2, lr_mlp=1e-3))}


def setting(name: str) -> ReconstructConfig:
    """A preset of d4d-reconstruct or a reference of this benchmark, without progress lines or checkpoints."""
    config = REFERENCES[name]() if name in REFERENCES else preset(name)
    return replace(config, progress_every_s=0.0, checkpoint_every=0)


def source_of(asset: str) -> str:
    """The file an asset comes from, as the results name it."""
    return str(THIRD_PARTY[asset].relative_to(ASSIMP_MODELS)) if asset in THIRD_PARTY else f"built-in {asset}.glb"


def ensure_renders(root: Path, assets: list[str], resolution: int, frames: int) -> tuple[dict[str, Path], dict[str, str]]:
    """(asset -> render directory under ``root``, asset -> why it was skipped), rendering (Cycles,
    d4d's defaults) those that are missing; an absent or unrenderable file is skipped with one line."""
    dirs = {name: root / name for name in assets}
    skipped = {}
    missing = [name for name, d in dirs.items() if not (d / "transforms.json").is_file()]
    for name in [n for n in missing if n in THIRD_PARTY and not THIRD_PARTY[n].is_file()]:
        skipped[name] = f"{THIRD_PARTY[name]} is absent (Debian's assimp-testmodels not installed?)"
    missing = [name for name in missing if name not in skipped]
    if missing:
        from d4d.rendering.api import Renderer
        from d4d.rendering.builtin_assets import ensure_builtin_assets
        from d4d.rendering.errors import AssetError
        from d4d.rendering.options import RenderOptions

        files = {**(ensure_builtin_assets(root / "assets") if set(missing) & set(BUILTIN_ASSETS) else {}), **THIRD_PARTY}
        with Renderer() as renderer:
            for name in missing:
                try:
                    renderer.render(files[name], dirs[name], RenderOptions(resolution=resolution, frames=frames, videos=("dynamic", "static", "front")))
                except AssetError as err:
                    skipped[name] = f"render failed: {err}"
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", flush=True)
    return {name: d for name, d in dirs.items() if name not in skipped}, skipped


def run_one(render: Path, preset_name: str, eval_every: int, out: Path) -> dict:
    """One reconstruction: final held-out scores, seconds (evaluations excluded) and the PSNR history."""
    sample = load_render(render, videos=("dynamic", "static"))
    config = setting(preset_name)
    load_start, cpu_start = time.perf_counter(), time.process_time()
    views = views_from_sample(sample)
    load_s = time.perf_counter() - load_start
    result = reconstruct(views, config, device="cpu", backend="torch", eval_every=eval_every)
    video = sample.videos["dynamic"]
    metrics = write_outputs(result, video.times, sample.K, sample.width, sample.height, 2.0, out, {"input": str(render)})
    cpu_seconds = time.process_time() - cpu_start
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
        "cpu_seconds": round(cpu_seconds, 1),
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
    parser.add_argument("--asset-set", choices=sorted(ASSET_SETS), default="builtin", help="built-in assets or third-party files (THIRD_PARTY)")
    parser.add_argument("--assets", nargs="+", choices=[*BUILTIN_ASSETS, *THIRD_PARTY], help="a subset of the set's assets (default: all)")
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS) + sorted(REFERENCES),
                        help="settings to compare (default: cpu fast fast-0.1 for builtin, cpu fast for third-party; fast-0.1 is the reference)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--eval-every", type=int, default=250, help="held-out evaluation every this many steps (time excluded)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, as d4d-reconstruct)")
    parser.add_argument("--out", type=Path, help="results JSON (default: results/reconstruct_quality.json or reconstruct_third_party.json)")
    args = parser.parse_args(argv)
    names, presets, out = ASSET_SETS[args.asset_set]
    assets, presets, out = args.assets or names, args.presets or presets, args.out or out
    if not set(assets) <= set(names):
        parser.error(f"--assets {' '.join(sorted(set(assets) - set(names)))}: not in the {args.asset_set} set")
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="d4d-bench-recon-"))
    renders, skipped = ensure_renders(args.renders or work / "renders", assets, args.resolution, args.frames)
    load_before = os.getloadavg()
    rows = []
    for asset in renders:
        for name in presets:
            try:
                row = {"asset": asset, "source": source_of(asset), **run_one(renders[asset], name, args.eval_every, work / f"{asset}-{name}")}
            except (RuntimeError, ValueError) as err:  # one failing reconstruction is recorded, not the end of the run
                print(f"failed {asset} {name}: {err}", flush=True)
                skipped[f"{asset} {name}"] = f"reconstruction failed: {err}"
                continue
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
            write_json_atomic(out, {  # after every row, so an interrupted run keeps what it measured
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "asset_set": args.asset_set,
                "skipped": skipped,
                "resolution": args.resolution,
                "frames": args.frames,
                "targets": {"psnr_db": TARGET_PSNR_DB, "seconds": TARGET_SECONDS},
                "rows": rows,
            })
    print()
    print("| asset | source | preset | steps | held-out PSNR (dB) | SSIM | seconds | CPU s | train s to 30 dB | Gaussians | >= 30 dB in <= 300 s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['asset']} | {r['source']} | {r['preset']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} | "
              f"{r['train_seconds_to_target'] if r['train_seconds_to_target'] is not None else 'never'} | {r['n_gaussians']} | {'yes' if r['meets_target'] else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
