"""``make demo``: d4d end to end on its built-in assets, on an embedded local Ray.

    python -m d4d.demo --out DIR [--frames 24] [--resolution 128] [--engine cycles] [--workers N]
                       [--static-steps 600] [--train-steps 400] [--autoencoder-steps 300] [--sample-steps 50]
                       [--w1 2] [--reconstruct-preset fast] [--reconstruct-render]

The demo is a list of steps (``STEPS``), each a function of the shared ``DemoContext`` that
returns the lines to print about what it made: curate the built-in assets into shards (Cycles
quality renders of the kept clips), train tiny text-to-4D models on those shards (the static
base, then the 4D model from it), sample an orbital video from the 4D model (with the static
orbit its base samples), reconstruct 4D Gaussians from that sample (and with
``--reconstruct-render`` from the render it was prompted for), and write the HTML reports. Later steps read ``ctx.outputs`` from the steps before them. It sits on
the top floor (d4d/, beside d4d.testing) because it uses every package.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from d4d.curation.procedure import DecisionConfig
from d4d.files import write_json_atomic
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.curate import default_workers
from d4d.pipelines.runner import run_curation
from d4d.pipelines.sources import parse_source
from d4d.progress import setup_logging
from d4d.reconstruction.config import AUTO, PRESETS
from d4d.reconstruction.config import preset as reconstruct_preset
from d4d.reconstruction.run import reconstruct_input
from d4d.rendering.builtin_assets import CAPTIONS_FILE, ensure_builtin_assets
from d4d.rendering.contract import load_render
from d4d.rendering.options import ENGINES, RenderOptions
from d4d.training.config import preset
from d4d.video import write_mp4

#: The training preset of the demo's models (training.config), and the demo's schedule (the
#: preset's own is 600 autoencoder steps and 600 UNet steps per model; README, "What make demo
#: does"): the static base trains DEMO_STATIC_STEPS, the 4D model DEMO_TRAIN_STEPS from it. At
#: 300 / 200 the column sample measured 20.4 dB, matte IoU 0.51; at 600 / 400 24.6 dB, IoU 0.73.
DEMO_PRESET = "small-text"
DEMO_STATIC_STEPS = 600
DEMO_TRAIN_STEPS = 400
DEMO_AUTOENCODER_STEPS = 300
#: The demo's classifier-free guidance weight: the paper's 7.0 oversaturates the colours of a
#: 1.3 M-parameter model (the demo's column prompt: 19.0 dB against its render at 7, 22.5 dB at 2;
#: README, "What make demo does"); d4d-sample keeps the paper's 7.0 as its default.
DEMO_W1 = 2.0


@dataclass
class DemoContext:
    """What the demo steps share.

    Attributes:
        out: the demo's output directory; each step writes under its own subfolder.
        args: the parsed command line.
        outputs: step name -> what it produced (paths, numbers) for the steps after it.
    """
    out: Path
    args: argparse.Namespace
    outputs: dict = field(default_factory=dict)


def curate(ctx: DemoContext) -> list[str]:
    """The curation job on the built-in assets: shards, decisions, failures, stats."""
    out = ctx.out / "curation"
    render = RenderOptions(frames=ctx.args.frames, resolution=ctx.args.resolution, engine=ctx.args.engine)
    config = PipelineConfig(decision=DecisionConfig(render=render), workers=ctx.args.workers, shard_batch=4, keep_renders=True)  # compared and reconstructed below
    spec = parse_source("builtin", out)
    ensure_builtin_assets(spec.path)  # with their captions.csv, which puts a caption in each shard row
    stats = run_curation(spec, config, out, captions_csv=Path(spec.path) / CAPTIONS_FILE)
    ctx.outputs["curate"] = {"dir": out, "shards": out / "shards", "stats": stats}
    return [
        f"decisions:  {out / 'decisions.parquet'}  ({stats['by_decision']})",
        f"failures:   {out / 'failures.parquet'}",
        f"stats:      {out / 'stats.json'}",
        f"shards:     {out / 'shards'}  ({stats['in_shards']} kept clips, {ctx.args.frames} frames at {ctx.args.resolution} px)",
        f"renders:    {out / 'renders'}",
    ]


def train(ctx: DemoContext) -> list[str]:
    """Text-to-4D models trained from scratch on the demo's shards (preset ``small-text``, CPU,
    minutes), in the paper's order: the base model of static orbits (target static; its run first
    fits the VAE on the shards' frames, the autoencoder stage), then the 4D model fine-tuned from
    it, which keeps it as the static reference of its 3D-aware guidance."""
    from d4d.training.train import train_on_shards  # transformers: after main() has quieted the libraries

    shards = ctx.outputs["curate"]["shards"]
    config = preset(DEMO_PRESET, num_frames=ctx.args.frames)
    config = replace(config, autoencoder=replace(config.autoencoder, steps=ctx.args.autoencoder_steps))
    base, run = ctx.out / "train" / f"{DEMO_PRESET}-static", ctx.out / "train" / DEMO_PRESET
    static = _schedule(replace(config, target="static"), ctx.args.static_steps)
    config = _schedule(config, ctx.args.train_steps)
    base_model = train_on_shards(static, shards, base, resume=_resume(base), cache_latents=True)
    train_on_shards(config, shards, run, pretrained=base_model, resume=_resume(run), cache_latents=True)
    ctx.outputs["train"] = {"run": run, "base": base}
    autoencoder = json.loads((base / "autoencoder" / "metrics.json").read_text())
    return [f"autoencoder:  {base / 'autoencoder'}  (held-out PSNR {autoencoder['heldout_psnr']:.1f} dB)",
            f"static model: {base}", f"run:          {run}  (TensorBoard: tensorboard --logdir {run})"]


def _schedule(config, steps: int):
    """``config`` trained for ``steps`` optimizer steps, with a checkpoint at least at the end."""
    return replace(config, max_steps=steps, checkpointing_steps=min(config.checkpointing_steps, steps))


def _resume(run: Path) -> str | None:
    """"latest" when ``run`` has checkpoints (a rerun continues it), else None."""
    return "latest" if (run / "checkpoints").exists() else None


def sample(ctx: DemoContext) -> list[str]:
    """A 4D orbital video sampled from the 4D model with 3D-aware classifier-free guidance (and the
    static orbit its static base samples), prompted with a kept clip's caption and motion
    magnitude, and held against that clip's render (``sample/comparison.json``, and the render
    beside the sample in ``sample/beside_render.mp4``)."""
    from d4d.training.sample import SampleConfig
    from d4d.training.sample import sample as sample_video

    out = ctx.out / "sample"
    learnt = _captioned_render(ctx.outputs["curate"]["dir"] / "renders")
    asset = load_render(learnt, load_pixels=False).asset
    sample_video(ctx.outputs["train"]["run"], out, SampleConfig(prompt=asset.caption, motion_magnitude=asset.motion_magnitude,
                                                               steps=ctx.args.sample_steps, w1=ctx.args.w1))
    comparison = compare_to_render(out, learnt)
    write_json_atomic(out / "comparison.json", comparison)
    ctx.outputs["sample"] = {"dir": out, "learnt": learnt, "comparison": comparison}
    return [f"sample:     {out}  (prompt {asset.caption!r}, m = {asset.motion_magnitude:.0f}; RGBA frames with a matte, static/ orbit, "
            "dynamic.mp4, transforms.json)",
            f"against the render it learnt ({learnt.name}): PSNR {comparison['psnr']:.1f} dB, matte IoU {comparison['matte_iou']:.2f}, "
            f"side by side: {out / 'beside_render.mp4'}"]


def _captioned_render(renders: Path) -> Path:
    """The first kept render (by name) whose asset has a caption: the clip the demo prompts for."""
    for render in sorted(p for p in renders.iterdir() if (p / "asset.json").exists()):
        if load_render(render, load_pixels=False).asset.caption:
            return render
    raise ValueError(f"{renders}: no kept render has a caption to prompt the text model with")


def compare_to_render(sample_dir: Path, render_dir: Path) -> dict:
    """How closely a sampled orbit reproduces a render of the same cameras: PSNR (dB) of the RGB
    composited over the sample's background, the render area-resized to the sample's size, and the
    IoU of the two mattes (alpha > 0.5); writes both orbits side by side to ``beside_render.mp4``."""
    sampled = load_render(sample_dir, videos=("dynamic",))
    rendered = load_render(render_dir, videos=("dynamic",)).videos["dynamic"].rgba
    ours = sampled.videos["dynamic"].rgba
    if rendered.shape[0] != ours.shape[0]:
        raise ValueError(f"{sample_dir}: {ours.shape[0]} frames, the render {render_dir} has {rendered.shape[0]}")
    size = ours.shape[1]
    theirs = torch.nn.functional.interpolate(torch.from_numpy(rendered).permute(0, 3, 1, 2).float(), size=(size, size),
                                             mode="area").permute(0, 2, 3, 1).numpy()
    background = float(json.loads((sample_dir / "asset.json").read_text()).get("render", {}).get("background", 1.0))

    def over_background(rgba: np.ndarray) -> np.ndarray:
        alpha = rgba[..., 3:] / 255.0
        return rgba[..., :3] / 255.0 * alpha + background * (1 - alpha)

    mse = float(np.mean((over_background(ours.astype(np.float32)) - over_background(theirs)) ** 2))
    a, b = ours[..., 3] > 127, theirs[..., 3] > 127
    union = np.logical_or(a, b).sum()
    side_by_side = np.concatenate([np.round(over_background(theirs) * 255), np.round(over_background(ours.astype(np.float32)) * 255)],
                                  axis=2).astype(np.uint8)
    write_mp4(side_by_side, sample_dir / "beside_render.mp4")
    return {"render": str(render_dir), "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
            "matte_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0, "resolution": size}


def _reconstruct(source: Path, out: Path, preset_name: str) -> dict:
    """4D Gaussians from SOURCE into OUT with the preset ``preset_name`` (``auto``: the one for
    this device). A rerun keeps a finished reconstruction and resumes an interrupted one;
    returns its metrics.json."""
    if not (out / "metrics.json").exists():
        if preset_name == AUTO:
            reconstruct_input(source, out)
        else:
            reconstruct_input(source, out, reconstruct_preset(preset_name), preset_name=preset_name)
    return json.loads((out / "metrics.json").read_text())


def reconstruct(ctx: DemoContext) -> list[str]:
    """4D Gaussians fitted to the sampled video (the paper's product: a generated video become
    a 4D asset) and, with ``--reconstruct-render``, for comparison to the quality render of the
    clip the sample was prompted with (at the render's size: most of the demo's time then)."""
    lines = []
    sampled = ctx.out / "reconstruction" / "sample"
    metrics = _reconstruct(ctx.outputs["sample"]["dir"], sampled, ctx.args.reconstruct_preset)
    ctx.outputs["reconstruct"] = {"sample": sampled}
    lines.append(f"from the sample: {sampled}  (frames/*.ply, turntable.mp4; PSNR {_psnr(metrics)})")
    if ctx.args.reconstruct_render:
        learnt = ctx.outputs["sample"]["learnt"]
        rendered = ctx.out / "reconstruction" / "render"
        metrics = _reconstruct(learnt, rendered, ctx.args.reconstruct_preset)
        ctx.outputs["reconstruct"]["render"] = rendered
        lines.append(f"from its render: {rendered}  (PSNR {_psnr(metrics)})")
    return lines


def _psnr(metrics: dict) -> str:
    """The mean PSNR of a reconstruction's metrics.json, and on which views it was measured."""
    scores = metrics.get("heldout") or metrics.get("training_views") or {}
    psnr = scores.get("psnr")
    return f"{psnr:.1f} dB on {metrics.get('evaluated_on', 'unknown views')}" if isinstance(psnr, (int, float)) else "not measured"


def report(ctx: DemoContext) -> list[str]:
    """HTML reports (no server, no network) of the curation output, both training runs (the static
    base's shows its autoencoder stage), the sample beside the render it learnt and the reconstructions."""
    from d4d.inspection.report import write_report

    pages = {"curation": ctx.outputs["curate"]["dir"], "training-static": ctx.outputs["train"]["base"],
             "training": ctx.outputs["train"]["run"], "sample": ctx.outputs["sample"]["dir"]}
    for name, path in ctx.outputs.get("reconstruct", {}).items():
        pages[f"reconstruction-{name}"] = path
    lines = []
    for name, path in pages.items():
        page = write_report(path, ctx.out / "report" / name / "index.html")
        lines.append(f"{name + ':':<24} {page}")
    return lines + ["open them in a browser: file://" + str(ctx.out / "report" / "curation" / "index.html")]


#: The demo, in order: (name, step). Each step gets the context and returns lines to print.
STEPS = [
    ("curate", curate),
    ("train", train),
    ("sample", sample),
    ("reconstruct", reconstruct),
    ("report", report),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m d4d.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory (rerunning resumes)")
    p.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    p.add_argument("--resolution", type=int, default=128, help="quality render side, pixels (default 128)")
    p.add_argument("--engine", choices=ENGINES, default="cycles", help="quality render engine (default cycles)")
    p.add_argument("--workers", type=int, default=default_workers(), help=f"Blender workers (default {default_workers()})")
    p.add_argument("--static-steps", type=int, default=DEMO_STATIC_STEPS,
                   help=f"training steps of the static base model (default {DEMO_STATIC_STEPS}; preset {DEMO_PRESET} trains 600)")
    p.add_argument("--train-steps", type=int, default=DEMO_TRAIN_STEPS,
                   help=f"training steps of the 4D model, fine-tuned from the static base (default {DEMO_TRAIN_STEPS}, to keep the demo "
                        f"near 15 minutes on 2 CPU cores; preset {DEMO_PRESET} trains 600)")
    p.add_argument("--autoencoder-steps", type=int, default=DEMO_AUTOENCODER_STEPS,
                   help=f"steps of the autoencoder stage (default {DEMO_AUTOENCODER_STEPS}; preset {DEMO_PRESET} fits 600)")
    p.add_argument("--sample-steps", type=int, default=50, help="denoising steps of the sample (default 50, the paper's)")
    p.add_argument("--w1", type=float, default=DEMO_W1,
                   help=f"classifier-free guidance weight of the sample (default {DEMO_W1}: the paper's 7.0 oversaturates a model this small)")
    p.add_argument("--reconstruct-preset", choices=[AUTO, *sorted(PRESETS)], default="fast",
                   help="d4d-reconstruct preset of the reconstructions (default fast, the quick one; auto: paper on CUDA, cpu elsewhere)")
    p.add_argument("--reconstruct-render", action="store_true",
                   help="also reconstruct the render of the prompted clip, for comparison (at the render's resolution: about 15 minutes "
                        "more on 2 CPU cores at 128 px)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    ctx = DemoContext(args.out.resolve(), args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    summary: list[str] = []
    for number, (name, step) in enumerate(STEPS, start=1):
        print(f"== demo step {number}/{len(STEPS)}: {name}", flush=True)
        started = time.time()
        lines = step(ctx)
        summary += [f"{name} ({time.time() - started:.0f} s):"] + [f"  {line}" for line in lines]
    print("\n== d4d demo results in " + str(ctx.out), *summary, sep="\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
