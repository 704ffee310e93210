"""The paper's Table 1 and its ablations at toy scale, on CPU: does the model side learn?

    python -m benchmarks.learning --out /tmp/learning --scale smoke     # a few minutes: the whole path at a tiny size
    python -m benchmarks.learning --out /tmp/learning --scale full      # about an hour on 2 CPU cores

1. **Data**: a procedural dataset d4d generates itself (rendering.procedural_assets: primitive
   shapes, two-tone colours, six motions at drawn amplitudes, captions in Cap3D's format), the
   last assets held out; each split curated by ``run_curation`` (real Blender, Workbench at a
   low resolution; real Ray; Parquet shards).
2. **Models from scratch** on the train shards (presets ``small-image`` / ``small-static``,
   I2VGen-XL's UNet at 32 px): the image-to-4D static base (target static; its run fits the one
   VAE of the benchmark, the autoencoder stage), the static-3D-to-4D static base fine-tuned from
   it, and per task the 4D model fine-tuned from its base with L_mr (motion_loss_weight 1) and
   without (0).
3. **Samples** of the held-out clips (all; 3 at the smoke scale; d4d-sample as a function): image-to-4D from the clip's
   first dynamic frame, static-3D-to-4D from its static orbit, requested m the clip's own; with
   3D-aware guidance (w2 0.5, the static base as ebar), without it (w2 0), with the m = 0
   shortcut as ebar; plus each reference's own sample (the static base's, and the 4D model at
   m = 0), whose measured m says how static each reference is.
4. **d4d-eval** on the held-out shards: PSNR, SSIM, LPIPS (``--lpips`` weights; absent
   otherwise), the motion error |m_generated - m_requested| and Spearman's correlation of the
   two over clips. Then the table beside the paper's numbers and a verdict per claim, paired by
   clip (a difference counts when it exceeds twice its standard error), written to
   ``--results`` (benchmarks/: LEARNING_RESULTS.md and results/learning.json).

Rerunning with the same --out resumes (curation, training and samples are kept).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from d4d.curation.procedure import DecisionConfig
from d4d.evaluation.cli import main as eval_main
from d4d.files import write_bytes_atomic, write_json_atomic
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.runner import run_curation
from d4d.pipelines.sources import parse_source
from d4d.progress import setup_logging
from d4d.rendering.contract import load_render
from d4d.rendering.options import RenderOptions
from d4d.rendering.procedural_assets import CAPTIONS_FILE, SPLITS, ensure_procedural_assets
from d4d.training.config import preset
from d4d.training.sample import SampleConfig
from d4d.training.sample import sample as sample_video
from d4d.training.train import train_on_shards

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    """Sizes and schedules of one benchmark run."""

    assets: int
    """Procedural assets in all."""
    heldout: int
    """Of which held out (the last ones: one per motion up to six)."""
    frames: int
    """T, frames per orbit (the paper: 24)."""
    render_resolution: int
    """Side of the curated renders, pixels (training resizes them to 32)."""
    autoencoder_steps: int
    """Steps of the one autoencoder stage."""
    base_steps: int
    """UNet steps of the image-to-4D static base."""
    static_base_steps: int
    """UNet steps of the static-3D-to-4D static base, fine-tuned from the image one."""
    train_steps: int
    """UNet steps of each 4D model (four: two tasks, with and without L_mr)."""
    sample_steps: int
    """DDIM steps per sample (the paper: 50)."""
    sample_clips: int | None = None
    """Held-out clips sampled, evenly spaced in uid order (None: all of them)."""


SCALES = {
    # The whole path at a tiny size (8 frames): checks that it runs, says little about learning.
    "smoke": Scale(assets=8, heldout=3, frames=8, render_resolution=64, autoencoder_steps=10, base_steps=4, static_base_steps=2,
                   train_steps=4, sample_steps=2, sample_clips=3),
    # The measured run that fits a session shared with the test suite: 24 frames, fewer steps (LEARNING_RESULTS.md).
    "short": Scale(assets=16, heldout=4, frames=24, render_resolution=64, autoencoder_steps=300, base_steps=150,
                   static_base_steps=75, train_steps=100, sample_steps=20),
    # More than an hour on 2 CPU cores at batch 4 (not measured yet).
    "full": Scale(assets=24, heldout=6, frames=24, render_resolution=64, autoencoder_steps=600, base_steps=300, static_base_steps=150,
                  train_steps=300, sample_steps=25),
}
#: The paper's guidance weight of the 3D-aware term.
W2 = 0.5


@dataclass(frozen=True)
class SampledRun:
    """One generated run: which model, which task, how it is guided."""

    name: str
    model: str
    """A training run name (OUT/train/NAME)."""
    task: str
    w2: float
    reference: str = "static-model"
    zero_motion: bool = False
    """Request m = 0 instead of the clip's m (the shortcut reference's own sample)."""
    ablation: str = ""
    """What this run shows (the table's last column)."""


RUNS = (
    SampledRun("image", "image-lmr", "image", W2, ablation="image-to-4D as in the paper (L_mr, w2 0.5, static base as ebar)"),
    SampledRun("image-no-lmr", "image-nolmr", "image", W2, ablation="without L_mr"),
    SampledRun("image-no-w2", "image-lmr", "image", 0.0, ablation="without the 3D-aware term"),
    SampledRun("image-m0-ref", "image-lmr", "image", W2, reference="zero-motion", ablation="ebar = the m = 0 shortcut"),
    SampledRun("static", "static-lmr", "static", W2, ablation="static-3D-to-4D as in the paper"),
    SampledRun("static-no-lmr", "static-nolmr", "static", W2, ablation="without L_mr"),
    SampledRun("static-no-w2", "static-lmr", "static", 0.0, ablation="without the 3D-aware term"),
    SampledRun("static-m0-ref", "static-lmr", "static", W2, reference="zero-motion", ablation="ebar = the m = 0 shortcut"),
    SampledRun("ref-static-base", "base-image", "image", 0.0, ablation="the paper's ebar sampling alone (a static orbit)"),
    SampledRun("ref-m0", "image-lmr", "image", 0.0, zero_motion=True, ablation="the m = 0 shortcut sampling alone"),
)


def curate(out: Path, scale: Scale, workers: int) -> dict[str, Path]:
    """The procedural dataset, each split curated into OUT/curation/<split>; split -> its folder."""
    assets = out / "assets"
    ensure_procedural_assets(assets, scale.assets, scale.heldout)
    render = RenderOptions(frames=scale.frames, resolution=scale.render_resolution, engine="workbench")
    config = PipelineConfig(decision=DecisionConfig(render=render), workers=workers, shard_batch=8, keep_renders=True)  # sampled against below
    folders = {}
    for split in SPLITS:
        folder = out / "curation" / split
        stats = finished_curation(folder, len(list((assets / split).glob("*.glb"))))
        if stats is None:
            stats = run_curation(parse_source(f"local:{assets / split}", folder), config, folder, captions_csv=assets / split / CAPTIONS_FILE)
        if not stats["in_shards"]:
            raise RuntimeError(f"{folder}: curation kept no clip of the {split} split ({stats['by_reason']})")
        folders[split] = folder
    return folders


def finished_curation(folder: Path, assets: int) -> dict | None:
    """The stats.json of a curation that finished all ``assets`` (a rerun skips it rather than
    start Ray again only to find nothing to do), else None."""
    path = folder / "stats.json"
    if not path.exists():
        return None
    stats = json.loads(path.read_text())
    counts = stats.get("assets", {})
    return stats if counts.get("total") == assets and counts.get("finished") == assets else None


def _resume(run: Path) -> str | None:
    return "latest" if (run / "checkpoints").exists() else None


def train(out: Path, scale: Scale, shards: Path) -> dict[str, Path]:
    """Every model, from scratch on the train shards; name -> run folder."""
    runs = out / "train"
    image = preset("small-image", num_frames=scale.frames)
    image = replace(image, autoencoder=replace(image.autoencoder, steps=scale.autoencoder_steps,
                                               checkpointing_steps=min(image.autoencoder.checkpointing_steps, scale.autoencoder_steps)))

    def schedule(config, steps):
        return replace(config, max_steps=steps, checkpointing_steps=min(config.checkpointing_steps, steps),
                       lr_warmup_steps=min(config.lr_warmup_steps, steps // 4))

    plan = [  # (name, config, started from)
        ("base-image", schedule(replace(image, target="static"), scale.base_steps), None),
        ("base-static", schedule(replace(preset("small-static", num_frames=scale.frames), target="static"), scale.static_base_steps),
         "base-image"),
        ("image-lmr", schedule(image, scale.train_steps), "base-image"),
        ("image-nolmr", schedule(replace(image, motion_loss_weight=0.0), scale.train_steps), "base-image"),
        ("static-lmr", schedule(preset("small-static", num_frames=scale.frames), scale.train_steps), "base-static"),
        ("static-nolmr", schedule(replace(preset("small-static", num_frames=scale.frames), motion_loss_weight=0.0), scale.train_steps),
         "base-static"),
    ]
    done = {}
    for name, config, start in plan:
        run = runs / name
        if not (run / "model" / "model_index.json").exists():  # exported at the end: a finished run
            pretrained = None if start is None else done[start] / "model"
            train_on_shards(config, shards, run, pretrained=pretrained, resume=_resume(run), cache_latents=True)
        done[name] = run
    return done


def heldout_clips(curation: Path) -> list[dict]:
    """The held-out clips: uid, render folder, m (version-1 scale), sorted by uid."""
    clips = []
    for render in sorted(p for p in (curation / "renders").iterdir() if (p / "asset.json").exists()):
        asset = load_render(render, load_pixels=False).asset
        clips.append({"uid": render.name, "render": render, "motion_magnitude": float(asset.motion_magnitude)})
    return clips


def sample_runs(out: Path, scale: Scale, models: dict[str, Path], clips: list[dict]) -> dict[str, Path]:
    """Every SampledRun for every held-out clip, into OUT/samples/<run>/<uid>; run -> folder."""
    folders = {}
    for spec in RUNS:
        folder = out / "samples" / spec.name
        for clip in clips:
            target = folder / clip["uid"]
            if (target / "transforms.json").exists():
                continue
            config = SampleConfig(image=str(clip["render"] / "dynamic" / "000.png") if spec.task == "image" else None,
                                  static=str(clip["render"]) if spec.task == "static" else None,
                                  motion_magnitude=0.0 if spec.zero_motion else clip["motion_magnitude"], steps=scale.sample_steps,
                                  w2=spec.w2, static_reference=spec.reference, static_orbit="none", seed=0)
            sample_video(models[spec.model], target, config)
        folders[spec.name] = folder
    return folders


def evaluate(out: Path, samples: dict[str, Path], heldout_shards: Path, lpips: str | None) -> dict:
    """d4d-eval on every generated run against the held-out shards; its eval.json."""
    argv = [*map(str, samples.values()), "--shards", str(heldout_shards), "--out", str(out / "eval"), "--overwrite"]
    if lpips is not None:
        argv += ["--lpips", lpips]
    if eval_main(argv) != 0:
        raise RuntimeError("d4d-eval failed (its message is above)")
    return json.loads((out / "eval" / "eval.json").read_text())


# ---- the table and the claims ----

#: Paper rows beside ours (PAPER.md, Table 1; 20 held-out assets, 256 px, 8 A100).
PAPER = {"image": {"ssim": 0.83, "psnr": 16.7, "lpips": 0.21}, "static": {"ssim": 0.82, "psnr": 16.8, "lpips": 0.19}}
#: Per-run columns: key in eval.json metrics (or "m_generated", the per-clip mean), heading, digits.
TABLE = (("psnr", "PSNR", 2), ("ssim", "SSIM", 3), ("lpips", "LPIPS", 3), ("motion_error", "motion error", 1),
         ("motion_rank", "Spearman(m*, m)", 2), ("m_generated", "m measured", 1))


def paired(eval_json: dict, a: str, b: str, key: str) -> dict:
    """Per-clip ``key`` of run a minus run b over the clips both have: mean, standard error, n."""
    rows = {run["name"]: {r["uid"]: r for r in run["per_clip"] if "skipped" not in r} for run in eval_json["runs"]}
    common = sorted(set(rows.get(a, {})) & set(rows.get(b, {})))
    diffs = [rows[a][u][key] - rows[b][u][key] for u in common if rows[a][u].get(key) is not None and rows[b][u].get(key) is not None]
    diffs = [d for d in diffs if math.isfinite(d)]
    if not diffs:
        return {"mean": None, "se": None, "n": 0}
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else None
    return {"mean": float(np.mean(diffs)), "se": se, "n": len(diffs)}


def verdict(diff: dict, higher_is_better: bool) -> str:
    """"holds" when the paired difference favours the claim by more than twice its standard
    error, "contradicted" when it opposes it by as much, else "inconclusive"."""
    if diff["mean"] is None or diff["se"] is None:
        return "not measured"
    signed = diff["mean"] if higher_is_better else -diff["mean"]
    if signed > 2 * diff["se"]:
        return "holds"
    if signed < -2 * diff["se"]:
        return "contradicted"
    return "inconclusive"


def _metric(eval_json: dict, run: str, key: str) -> float | None:
    for entry in eval_json["runs"]:
        if entry["name"] == run:
            if key == "m_generated":
                values = [r["m_generated"] for r in entry["per_clip"] if "skipped" not in r]
                return float(np.mean(values)) if values else None
            return entry["metrics"][key]["value"]
    return None


def claims(eval_json: dict) -> list[dict]:
    """The paper's claims this benchmark can test, each with its paired evidence and verdict."""
    found = []

    def add(claim: str, a: str, b: str, key: str, higher: bool) -> None:
        diff = paired(eval_json, a, b, key)
        found.append({"claim": claim, "compare": f"{a} - {b}", "measure": key, **diff, "verdict": verdict(diff, higher)})

    for task in ("image", "static"):
        add(f"{task}: L_mr makes the measured motion follow the requested m (lower motion error)",
            task, f"{task}-no-lmr", "motion_error", False)
        add(f"{task}: the 3D-aware term (w2) improves fidelity (PSNR)", task, f"{task}-no-w2", "psnr", True)
        add(f"{task}: the 3D-aware term (w2) improves fidelity (SSIM)", task, f"{task}-no-w2", "ssim", True)
        add(f"{task}: the static base as ebar beats the m = 0 shortcut (PSNR)", task, f"{task}-m0-ref", "psnr", True)
    add("static-3D-to-4D is at least as faithful as image-to-4D (paper: PSNR 16.8 vs 16.7)", "static", "image", "psnr", True)
    add("the static base is a more static reference than the m = 0 shortcut (lower m measured on its sample)",
        "ref-static-base", "ref-m0", "m_generated", False)
    for task in ("image", "static"):
        rho = _metric(eval_json, task, "motion_rank")
        found.append({"claim": f"{task}: the requested m controls the generated motion (Spearman > 0 over held-out clips)",
                      "compare": task, "measure": "motion_rank", "mean": rho, "se": None,
                      "n": next((r["metrics"]["motion_rank"]["n"] for r in eval_json["runs"] if r["name"] == task), 0),
                      "verdict": "not measured" if rho is None else ("holds" if rho > 0.5 else "inconclusive" if rho > 0 else "contradicted")})
    return found


def _cell(value, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def results_markdown(results: dict) -> str:
    """LEARNING_RESULTS.md: settings, the table beside the paper's, the claims with verdicts, timings."""
    eval_json, scale = results["eval"], results["scale"]
    lines = ["# Learning at toy scale (benchmarks/learning.py)", "",
             f"`{results['command']}`: scale **{results['scale_name']}**, {results['heldout_clips']} held-out clips of "
             f"{scale['heldout']} held-out assets, {results['train_clips']} training clips of {scale['assets'] - scale['heldout']} "
             f"assets; {scale['frames']} frames at 32 px (renders {scale['render_resolution']} px, Workbench); autoencoder "
             f"{scale['autoencoder_steps']} steps, static bases {scale['base_steps']} + {scale['static_base_steps']}, each 4D model "
             f"{scale['train_steps']} steps; {scale['sample_steps']} DDIM steps per sample; {results['total_minutes']:.1f} minutes on "
             f"{results['machine']}. Autoencoder held-out PSNR {_cell(results['autoencoder_psnr'], 1)} dB.", "",
             "| run | " + " | ".join(title for _, title, _ in TABLE) + " | what it shows |", "|---|" + "---|" * (len(TABLE) + 1)]
    ablations = {spec.name: spec.ablation for spec in RUNS}
    for run in eval_json["runs"]:
        cells = [_cell(_metric(eval_json, run["name"], key), digits) for key, _, digits in TABLE]
        lines.append(f"| {run['name']} | " + " | ".join(cells) + f" | {ablations.get(run['name'], '')} |")
    for task, row in PAPER.items():
        cells = [_cell(row.get(key), digits) for key, _, digits in TABLE]
        lines.append(f"| Diffusion4D paper, {task} | " + " | ".join(cells) + " | Table 1: 20 assets, 256 px, 24 frames, 8 A100 |")
    lpips = next((r["metrics"]["lpips"]["reason"] for r in eval_json["runs"] if r["metrics"]["lpips"]["value"] is None), None)
    lines += ["", "Motion error is |m measured - m requested|; m measured (Eq. 1 over the white background) carries an offset against "
              "the version-1 scale of m requested, so compare motion errors across runs, not with zero. Spearman is over clips."]
    if lpips:
        lines.append(f"LPIPS absent: {lpips}.")
    lines += ["", "## The paper's claims at this scale", "",
              "Paired by held-out clip (same seed, same condition); a claim holds when the mean difference favours it by more than "
              "twice its standard error, is contradicted when it opposes it by as much, else inconclusive.", "",
              "| claim | compared | measure | mean difference | s.e. | clips | verdict |", "|---|---|---|---|---|---|---|"]
    for c in results["claims"]:
        lines.append(f"| {c['claim']} | {c['compare']} | {c['measure']} | {_cell(c['mean'], 3)} | {_cell(c['se'], 3)} | {c['n']} | "
                     f"**{c['verdict']}** |")
    lines += ["", "## What this scale can and cannot say", "",
              "- Not comparable with the paper's numbers: 32 px instead of 256, models of about a million parameters trained from "
              "scratch for minutes on CPU instead of fine-tuned billion-parameter backbones, a few held-out clips instead of 20, "
              "procedural primitives instead of Objaverse. The paper's rows sit beside ours for orientation only.",
              "- CLIP-F/O and FVD are not measured (no local CLIP or I3D weights); LPIPS only with --lpips.",
              "- A verdict is about this scale: \"inconclusive\" means the difference is within twice its standard error over the "
              "held-out clips, not that the claim is false at the paper's scale."]
    if results["scale_name"] == "smoke":
        lines.append("- **This is the smoke scale** (8 frames, a few optimizer steps): it checks that the whole path runs; its models "
                     "have not learnt, so its verdicts say nothing about the claims. `--scale full` is the measured run.")
    lines += ["", "## Time per stage", ""] + [f"- {name}: {seconds / 60:.1f} min" for name, seconds in results["timings"].items()]
    return "\n".join(lines) + "\n"


def write_results(results: dict, directory: Path) -> tuple[Path, Path]:
    """``directory``/LEARNING_RESULTS.md and ``directory``/results/learning.json (atomically)."""
    json_path = write_json_atomic(directory / "results" / "learning.json", results)
    md_path = write_bytes_atomic(directory / "LEARNING_RESULTS.md", results_markdown(results).encode())
    return md_path, json_path


def check_scale(out: Path, scale: Scale) -> None:
    """Record the scale in OUT/scale.json; a folder made at another scale is refused (its data
    and runs would mix with this one's)."""
    path = out / "scale.json"
    if path.exists() and json.loads(path.read_text()) != asdict(scale):
        raise SystemExit(f"--out {out}: made at another scale ({path}); give another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, asdict(scale))


def run(out: Path, scale_name: str, scale: Scale, workers: int, lpips: str | None, command: str) -> dict:
    """The whole benchmark; returns the results document."""
    timings, started = {}, time.time()
    check_scale(out, scale)

    def stage(name, fn, *args):
        t = time.time()
        print(f"== learning benchmark: {name}", flush=True)
        value = fn(*args)
        timings[name] = time.time() - t
        return value

    folders = stage("curate", curate, out, scale, workers)
    models = stage("train", train, out, scale, folders["train"] / "shards")
    clips = heldout_clips(folders["heldout"])
    if scale.sample_clips is not None:
        clips = clips[::max(1, len(clips) // scale.sample_clips)][:scale.sample_clips]
    samples = stage("sample", sample_runs, out, scale, models, clips)
    eval_json = stage("evaluate", evaluate, out, samples, folders["heldout"] / "shards", lpips)
    autoencoder = json.loads((models["base-image"] / "autoencoder" / "metrics.json").read_text())
    train_stats = json.loads((folders["train"] / "stats.json").read_text())
    return {"schema": "d4d-learning-benchmark", "version": 1, "command": command, "scale_name": scale_name, "scale": asdict(scale),
            "machine": f"{_cpus()} CPU cores", "total_minutes": (time.time() - started) / 60, "timings": timings,
            "train_clips": train_stats["in_shards"], "heldout_clips": len(clips), "autoencoder_psnr": autoencoder.get("heldout_psnr"),
            "eval": eval_json, "claims": claims(eval_json)}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="working folder (data, runs, samples, eval); rerunning resumes")
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke", help="smoke (minutes), short (about half an hour on 2 cores) or full (more than an hour)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks",
                        help="where LEARNING_RESULTS.md and results/learning.json go (default: benchmarks/)")
    parser.add_argument("--workers", type=int, default=1, help="Blender workers of the curation (default 1)")
    parser.add_argument("--lpips", help="local LPIPS weights folder (alexnet.pth, alex.pth) for d4d-eval; absent: LPIPS reported absent")
    args = parser.parse_args(argv)
    setup_logging()
    command = "python -m benchmarks.learning " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    results = run(args.out.resolve(), args.scale, SCALES[args.scale], args.workers, args.lpips, command)
    md_path, json_path = write_results(results, args.results)
    print(results_markdown(results), f"wrote {md_path} and {json_path}", sep="\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
