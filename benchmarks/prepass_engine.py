"""Which engine should the curation pre-pass render with? Seconds per pre-pass render by engine.

The pre-pass renders a clip's dynamic and static orbits small (``DecisionConfig.prepass_options``)
so that rejects never pay for the quality render. Headless Blender on a machine without a GPU
draws Workbench through software GL, where the cost follows the triangle count; Cycles' cost
follows the pixels and samples. This renders the pre-pass of each asset with every candidate
setting in one warm Blender worker (same import, same clip) and times it:

- ``workbench``: the ``preview`` preset (Workbench, the pre-pass engine of d4d 0.1), the reference;
- ``cycles-1``, ``cycles-4``: Cycles with 1 or 4 samples, no denoising;
- ``cycles-8-denoised``: Cycles at the quality render's samples and denoiser.

Assets: the animated built-ins and the heavy wild asset (81,920 triangles, two 2048 px textures).

    python -m benchmarks.prepass_engine [--frames 24] [--resolution 64]

Writes benchmarks/results/prepass_engine.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from d4d.curation.procedure import DecisionConfig
from d4d.rendering.api import Renderer
from d4d.rendering.builtin_assets import ensure_builtin_assets
from d4d.rendering.options import PREVIEW_PRESET, RenderOptions
from d4d.testing.wild_assets import ensure_wild_assets

RESULTS = Path(__file__).with_name("results")
ASSETS = ("rigid", "skinned", "shapekeys", "late_start", "heavy")


def settings(frames: int, resolution: int) -> dict[str, RenderOptions]:
    """Candidate pre-pass renders: the pipeline's pre-pass options with the engine settings swapped."""
    prepass = DecisionConfig(render=RenderOptions(frames=frames, max_sample_step_s=None), prepass_resolution=resolution).prepass_options()
    return {
        "workbench": replace(prepass, **PREVIEW_PRESET),
        "cycles-1": replace(prepass, engine="cycles", samples=1, denoise=False),
        "cycles-4": replace(prepass, engine="cycles", samples=4, denoise=False),
        "cycles-8-denoised": replace(prepass, engine="cycles", samples=8, denoise=True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=64, help="pre-pass render side, pixels")
    args = parser.parse_args(argv)
    candidates = settings(args.frames, args.resolution)
    rows = []
    with tempfile.TemporaryDirectory(prefix="d4d-bench-engine-") as tmp:
        root = Path(tmp)
        files = {**ensure_builtin_assets(root / "builtin"), **ensure_wild_assets(root / "wild")}
        with Renderer() as renderer:
            for asset in ASSETS:
                opened = renderer.open(files[asset])
                plan = opened.clips(candidates["workbench"])[0]
                info = opened.render(plan, root / "warm", candidates["workbench"], overwrite=True)  # shaders and caches warm for every candidate
                row = {"asset": asset, "faces": info.counts["faces"], "seconds": {}}
                for name, options in candidates.items():
                    clock = time.perf_counter()
                    opened.render(plan, root / f"{asset}-{name}", options, overwrite=True)
                    row["seconds"][name] = time.perf_counter() - clock
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1min": os.getloadavg()[0]},
        "frames": args.frames, "resolution": args.resolution, "videos": list(candidates["workbench"].videos),
        "reference": "workbench", "rows": rows,
        "total_s": {name: sum(r["seconds"][name] for r in rows) for name in candidates},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prepass_engine.json").write_text(json.dumps(summary, indent=2) + "\n")
    names = list(candidates)
    print("| asset | faces | " + " | ".join(f"{n} s" for n in names) + " | workbench / cycles-4 |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for r in rows + [{"asset": "**all**", "faces": "", "seconds": summary["total_s"]}]:
        s = r["seconds"]
        print(f"| {r['asset']} | {r['faces']} | " + " | ".join(f"{s[n]:.2f}" for n in names) + f" | {s['workbench'] / s['cycles-4']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
