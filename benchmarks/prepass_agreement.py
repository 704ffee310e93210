"""Curation pre-pass: does the cheap decision agree with the full-quality one, and what does it save?

For a mixed batch that is mostly rejects (as real Objaverse is), every asset is decided twice
with the same rules (curation.decision.decide):

- pre-pass: the orbits-only cheap render (Cycles, 4 samples) at ``--prepass-resolution`` that d4d-curate and
  d4d-decide use to reject early (``DecisionConfig.prepass_options``);
- full quality: Cycles with d4d's default settings at ``--resolution``, the reference.

It reports the agreement (same keep/reject/failed, and same reason) and the time of the two
strategies: "quality for every asset" against "pre-pass for every asset, quality only for
the assets the pre-pass keeps or defers" (the staged decision defers rejects that rest on
image-fidelity rules alone, curation.procedure.IMAGE_FIDELITY_RULES, to the quality render),
and how many assets that strategy rejects wrongly (pre-pass reject, quality keep). The batch: the five built-ins, every file of
../shared/assets/objaverse-xl-test-files (static), and the animated and static
assimp-testmodels files the render tests use, where present.

    python -m benchmarks.prepass_agreement [--frames 24] [--resolution 256] [--prepass-resolution 64]

Writes benchmarks/results/prepass_agreement.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from d4d.curation.config import CurationConfig
from d4d.curation.decision import Decision
from d4d.curation.procedure import IMAGE_FIDELITY_RULES, DecisionConfig, decide_render_dir, failure_decision
from d4d.rendering.api import Renderer
from d4d.rendering.builtin_assets import ensure_builtin_assets
from d4d.rendering.errors import AssetError
from d4d.rendering.options import PREVIEW_PRESET, RenderOptions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "assets" / "objaverse-xl-test-files"
ASSIMP = Path("/usr/share/assimp/models")
ASSIMP_FILES = [
    "glTF2/simple_skin/simple_skin.gltf",
    "glTF2/glTF-Sample-Models/AnimatedMorphCube-glTF/AnimatedMorphCube.gltf",
    "FBX/animation_with_skeleton.fbx",
    "Collada/box_nested_animation.dae",
    "Collada/duck.dae",
    "BLEND/box.blend",
    "OBJ/box.obj",
    "glTF2/BoxTextured-glTF/BoxTextured.gltf",
]


def batch(work: Path) -> list[Path]:
    assets = list(ensure_builtin_assets(work / "builtin").values())
    assets += sorted(SHARED.glob("*.*")) if SHARED.exists() else []
    assets += [ASSIMP / rel for rel in ASSIMP_FILES if (ASSIMP / rel).exists()]
    return assets


def decide_with(renderer: Renderer, asset: Path, out: Path, options: RenderOptions, config: CurationConfig) -> tuple[Decision, float]:
    started = time.perf_counter()
    try:
        renderer.render(asset, out, options)
        decision = decide_render_dir(out, config)
    except AssetError as exc:
        decision = failure_decision(exc)
    return decision, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=256, help="full-quality (Cycles) render side")
    parser.add_argument("--prepass-resolution", type=int, default=64, help="pre-pass render side")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "prepass_agreement.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="d4d-bench-prepass-"))
    config = CurationConfig()
    quality = RenderOptions(frames=args.frames, resolution=args.resolution)
    prepass = DecisionConfig(render=quality, prepass_resolution=args.prepass_resolution).prepass_options()
    rows = []
    with Renderer() as renderer:
        # Start Blender outside the timings: both strategies use one warm worker.
        renderer.render(ensure_builtin_assets(work / "builtin")["static"], work / "warmup", RenderOptions(**PREVIEW_PRESET, frames=2, resolution=16))
        for i, asset in enumerate(batch(work)):
            cheap, cheap_s = decide_with(renderer, asset, work / f"pre-{i}", prepass, config)
            full, full_s = decide_with(renderer, asset, work / f"full-{i}", quality, config)
            deferred = cheap.decision == "reject" and set(cheap.measures["rules_fired_by"]) <= IMAGE_FIDELITY_RULES
            rows.append({
                "asset": str(asset.relative_to(ASSIMP) if asset.is_relative_to(ASSIMP) else asset.name),
                "prepass": [cheap.decision, cheap.reason], "quality": [full.decision, full.reason], "deferred": deferred,
                "prepass_s": cheap_s, "quality_s": full_s,
            })
            print(json.dumps(rows[-1]), flush=True)

    same_decision = sum(r["prepass"][0] == r["quality"][0] for r in rows)
    same_reason = sum(r["prepass"] == r["quality"] for r in rows)
    all_quality_s = sum(r["quality_s"] for r in rows)
    needs_quality = lambda r: r["prepass"][0] == "keep" or r["deferred"]  # noqa: E731
    with_prepass_s = sum(r["prepass_s"] + (r["quality_s"] if needs_quality(r) else 0.0) for r in rows)
    wrong_rejects = sum(not needs_quality(r) and r["quality"][0] == "keep" for r in rows)
    summary = {
        "frames": args.frames,
        "prepass": f"{prepass.engine} {prepass.samples} samples {args.prepass_resolution} px",
        "quality": f"cycles {quality.samples} samples {args.resolution} px",
        "assets": len(rows),
        "kept_by_quality": sum(r["quality"][0] == "keep" for r in rows),
        "same_decision": same_decision,
        "same_reason": same_reason,
        "deferred_to_quality": sum(r["deferred"] for r in rows),
        "wrong_rejects_with_deferral": wrong_rejects,
        "quality_for_all_s": all_quality_s,
        "prepass_then_quality_s": with_prepass_s,
        "time_saved_fraction": 1.0 - with_prepass_s / all_quality_s,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print("\n| asset | pre-pass | full quality | pre-pass s | quality s |\n|---|---|---|---|---|")
    for r in rows:
        cheap = " ".join(x for x in r["prepass"] if x) + (" (deferred)" if r["deferred"] else "")
        print(f"| {r['asset']} | {cheap} | {' '.join(x for x in r['quality'] if x)} | {r['prepass_s']:.1f} | {r['quality_s']:.1f} |")
    print(f"\nagreement: {same_decision}/{len(rows)} decisions, {same_reason}/{len(rows)} reasons; "
          f"{summary['deferred_to_quality']} deferred to the quality render, {wrong_rejects} wrong rejects after deferral; "
          f"quality for all {all_quality_s:.0f} s vs pre-pass then quality {with_prepass_s:.0f} s "
          f"({100 * summary['time_saved_fraction']:.0f}% saved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
