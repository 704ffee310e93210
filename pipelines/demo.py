"""``make demo``: d4d end to end on its built-in assets, on an embedded local Ray.

    python -m d4d.pipelines.demo --out DIR [--frames 24] [--resolution 128] [--engine cycles] [--workers N]

The demo is a list of steps (``STEPS``), each a function of the shared ``DemoContext`` that
returns the lines to print about what it made: curate the built-in assets into shards (Cycles
quality renders of the kept ones), train a tiny text-to-4D model on those shards, sample an
orbital video from it, reconstruct 4D Gaussians from a kept asset's render, and write the
HTML report. Later steps read ``ctx.outputs`` from the steps before them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


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
    from d4d.curation.procedure import DecisionConfig
    from d4d.pipelines.config import PipelineConfig
    from d4d.pipelines.runner import run_curation
    from d4d.pipelines.sources import parse_source
    from d4d.rendering.options import RenderOptions

    out = ctx.out / "curation"
    render = RenderOptions(frames=ctx.args.frames, resolution=ctx.args.resolution, engine=ctx.args.engine)
    config = PipelineConfig(decision=DecisionConfig(render=render), workers=ctx.args.workers, shard_batch=4)
    stats = run_curation(parse_source("builtin", out), config, out)
    ctx.outputs["curate"] = {"dir": out, "shards": out / "shards", "stats": stats}
    return [
        f"decisions:  {out / 'decisions.parquet'}  ({stats['by_decision']})",
        f"failures:   {out / 'failures.parquet'}",
        f"stats:      {out / 'stats.json'}",
        f"shards:     {out / 'shards'}  ({stats['in_shards']} kept clips, {ctx.args.frames} frames at {ctx.args.resolution} px)",
        f"renders:    {out / 'renders'}",
    ]


def _check(code: int, what: str) -> None:
    if code != 0:
        raise SystemExit(f"demo: {what} failed (exit status {code})")


def train(ctx: DemoContext) -> list[str]:
    """Tiny randomly initialised text-to-4D models trained on the demo's shards (CPU, seconds), in the
    paper's order: the base model of static orbits (--target static), then the 4D model fine-tuned
    from it, which keeps it as the static reference of its 3D-aware guidance."""
    from d4d.training.train import main as train_main

    base, run = ctx.out / "train" / "tiny-text-static", ctx.out / "train" / "tiny-text"
    common = ["--shards", str(ctx.outputs["curate"]["shards"]), "--config", "tiny-text", "--num-frames", str(ctx.args.frames),
              "--resolution", "32", "--max-steps", str(ctx.args.train_steps), "--validation-steps", str(ctx.args.train_steps)]
    for output, extra in ((base, ["--target", "static"]), (run, ["--pretrained", str(base / "model")])):
        resume = ["--resume", "latest"] if (output / "checkpoints").exists() else []
        _check(train_main(["--output", str(output), *common, *extra, *resume]), "d4d-train")
    ctx.outputs["train"] = {"run": run}
    return [f"static model: {base}", f"run:        {run}  (TensorBoard: tensorboard --logdir {run})"]


def sample(ctx: DemoContext) -> list[str]:
    """A 4D orbital video sampled from the tiny model with 3D-aware classifier-free guidance."""
    from d4d.training.sample import main as sample_main

    out = ctx.out / "sample"
    _check(sample_main(["--model", str(ctx.outputs["train"]["run"]), "--out", str(out), "--prompt", "a box sliding and turning", "--steps", "10"]), "d4d-sample")
    ctx.outputs["sample"] = {"dir": out}
    return [f"sample:     {out}  (frames, dynamic.mp4, transforms.json; a tiny model trained for a few steps, so expect noise)"]


def reconstruct(ctx: DemoContext) -> list[str]:
    """4D Gaussians fitted to the first kept asset's quality render."""
    from d4d.reconstruction.cli import main as reconstruct_main

    renders = sorted(p for p in (ctx.outputs["curate"]["dir"] / "renders").iterdir() if (p / "asset.json").exists())
    if not renders:
        return ["nothing kept to reconstruct"]
    out = ctx.out / "reconstruction" / renders[0].name
    if not (out / "metrics.json").exists():  # a rerun keeps a finished reconstruction
        args = [str(renders[0]), "--out", str(out), "--preset", "fast", "--iterations", str(ctx.args.recon_steps), "--coarse-iterations", str(ctx.args.recon_steps // 2)]
        _check(reconstruct_main(args), "d4d-reconstruct")
    ctx.outputs["reconstruct"] = {"dir": out}
    psnr = __import__("json").loads((out / "metrics.json").read_text())["heldout"]["psnr"]
    return [f"4D Gaussians: {out}  (frames/*.ply, turntable.mp4; held-out PSNR {psnr:.1f} dB)"]


def report(ctx: DemoContext) -> list[str]:
    """HTML reports (no server, no network) of the curation output, the training run and the reconstruction."""
    from d4d.inspection.report import write_report

    pages = {"curation": ctx.outputs["curate"]["dir"], "training": ctx.outputs["train"]["run"]}
    if "reconstruct" in ctx.outputs:
        pages["reconstruction"] = ctx.outputs["reconstruct"]["dir"]
    lines = []
    for name, path in pages.items():
        page = write_report(path, ctx.out / "report" / name / "index.html")
        lines.append(f"{name + ':':<15} {page}")
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
    from d4d.pipelines.curate import default_workers

    p = argparse.ArgumentParser(prog="python -m d4d.pipelines.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory (rerunning resumes)")
    p.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    p.add_argument("--resolution", type=int, default=128, help="quality render side, pixels (default 128)")
    p.add_argument("--engine", default="cycles", help="quality render engine (default cycles)")
    p.add_argument("--workers", type=int, default=default_workers(), help=f"Blender workers (default {default_workers()})")
    p.add_argument("--train-steps", type=int, default=30, help="training steps of the tiny model (default 30)")
    p.add_argument("--recon-steps", type=int, default=400, help="fine-stage reconstruction steps (default 400; coarse: half)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = DemoContext(args.out.resolve(), args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    for number, (name, step) in enumerate(STEPS, start=1):
        print(f"== demo step {number}/{len(STEPS)}: {name}", flush=True)
        started = time.time()
        lines = step(ctx)
        report += [f"{name} ({time.time() - started:.0f} s):"] + [f"  {line}" for line in lines]
    print("\n== d4d demo results in " + str(ctx.out), *report, sep="\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
