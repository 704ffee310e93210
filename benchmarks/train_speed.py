"""Training and sampling speed per backbone: the trainer's full step against a bare UNet step.

    python -m benchmarks.train_speed [--steps 10] [--threads 1] [--batch 2]
    python -m benchmarks.train_speed --paper --device cuda      # paper sizes, on a GPU

Per preset (tiny, CPU, by default: tiny-text on ModelScope's UNet, tiny-image / tiny-static on
I2VGen-XL, tiny-image-svd / tiny-static-svd on SVD):
- trainer step: what d4d-train does per optimizer step with train_batch_size = --batch: encode
  the batch (VAE, text and/or image encoder, SVD's noise-augmented condition image), condition
  dropout, the backbone's training noise (discrete VP, or SVD's EDM), the Denoiser (UNet +
  motion-embedding hook + static-orbit channels), L_ldm + L_mr, backward, AdamW step, EMA update;
- bare step: the same UNet through its own conditioning (training.unets adapter), forward +
  backward of an MSE loss on precomputed inputs (no encoders, no motion embedding, no static
  channels, no L_mr, no optimizer): the floor the trainer's overhead is measured against;
- sampling: Diffusion4DPipeline with w1 and the zero-motion w2 branch (three UNet branches per
  step), --sample-steps steps, divided per step.
``--paper`` runs the paper-size presets (24 x 256 x 256, batch 1, bf16 autocast, gradient
checkpointing of every block layer, training.memory) on ``--device``; on CPU it prints their parameter
counts and fp32 AdamW state only (built on the meta device). Peak memory: the process's peak RSS
on CPU (it only grows, so an upper bound per row), CUDA's max allocated on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from d4d.testing.train_fixtures import make_clips
from d4d.training import architectures as arch_lib
from d4d.training.backbone import Denoiser
from d4d.training.components import build_components
from d4d.training.config import preset
from d4d.training.data import collate
from d4d.training.memory import enable_activation_checkpointing
from d4d.training.objective import batch_inputs, compute_losses, drop_conditions, empty_prompt_embedding, micro_conditions, null_conditions
from d4d.training.pipeline import Diffusion4DPipeline
from d4d.training.schedules import training_schedule

TINY = ("tiny-text", "tiny-image", "tiny-static", "tiny-image-svd", "tiny-static-svd")
PAPER = ("paper-text", "paper-image", "paper-static", "paper-image-svd", "paper-static-svd")


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, steps: int, device: torch.device, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def bench_preset(name: str, steps: int, batch_size: int, sample_steps: int, device: torch.device, mixed: bool) -> dict:
    """Trainer step, bare UNet step and per-step sampling time of preset ``name`` on ``device``."""
    config = preset(name, train_batch_size=batch_size, mixed_precision="bf16" if mixed else "no")
    parts = build_components(config.task, config.architecture, seed=0)
    for frozen in (parts.vae, parts.text_encoder, parts.image_encoder):
        if frozen is not None:
            frozen.requires_grad_(False).eval().to(device)
    micro = micro_conditions(config, parts.adapter)
    model = Denoiser(parts.unet, parts.motion_embedding, config.task, micro, parts.static_input).to(device)
    if mixed:
        enable_activation_checkpointing(parts.unet)
    schedule = training_schedule(parts.scheduler, config.edm_p_mean, config.edm_p_std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    ema = EMAModel(list(model.parameters()), decay=config.ema_decay)
    ema.to(device)
    batch = collate(make_clips(batch_size, config.num_frames, config.resolution), config.num_frames, config.resolution)
    generator = torch.Generator(device=device).manual_seed(0)
    text_null = empty_prompt_embedding(parts, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if mixed else contextlib.nullcontext

    def trainer_step():
        with autocast():
            z0, zbar, cond = batch_inputs(batch, parts, config, device, generator)
            cond = drop_conditions(cond, null_conditions(cond, text_null, parts.adapter), config, generator)
            losses = compute_losses(model, schedule, z0, zbar, cond, config, generator)
        losses.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(model.parameters())

    z0, _, cond = batch_inputs(batch, parts, config, device, generator)
    draw = schedule.noisy(z0, generator)
    if config.task == "static":  # no static channels in the bare step (SVD's widened conv_in gets zeros)
        cond.static_latents = torch.zeros_like(z0) if parts.adapter.name == "svd" else None

    def bare_step():
        with autocast():
            out = parts.adapter.forward(parts.unet, draw.model_input, draw.timesteps, cond, micro)
            loss = F.mse_loss(out.float(), draw.target.float())
        loss.backward()
        parts.unet.zero_grad(set_to_none=True)

    trainer = timed(trainer_step, steps, device)
    bare = timed(bare_step, steps, device)
    model.eval()
    pipe = Diffusion4DPipeline(unet=parts.unet, vae=parts.vae, scheduler=parts.scheduler, motion_embedding=parts.motion_embedding,
                               static_input=parts.static_input, tokenizer=parts.tokenizer, text_encoder=parts.text_encoder,
                               image_encoder=parts.image_encoder, task=config.task, num_frames=config.num_frames,
                               resolution=config.resolution, fps=micro.fps)
    sample_kwargs = dict(prompt="a red ball", image=None if config.task == "text" else batch.dynamic_video[:1, 0].to(device),
                         static_video=batch.static_video[:1].to(device) if config.task == "static" else None,
                         num_inference_steps=sample_steps, w2=0.5, static_reference="zero-motion")

    def sample():
        with autocast():
            pipe(**sample_kwargs, generator=torch.Generator(device=device).manual_seed(0))

    sampling = timed(sample, max(1, steps // 5), device, warmup=1)
    params = sum(p.numel() for p in model.parameters())
    return {"preset": name, "backbone": parts.adapter.name, "schedule": schedule.kind, "params": params,
            "trainer_ms": 1000 * statistics.median(trainer), "bare_ms": 1000 * statistics.median(bare),
            "samples_per_s": batch_size / statistics.median(trainer),
            "sample_step_ms": 1000 * statistics.median(sampling) / sample_steps, "peak_mib": peak_memory_mib(device)}


def paper_sizes() -> list[dict]:
    """Stock UNet parameter counts of the paper presets' backbones (built on the meta device)."""
    rows = []
    for name in ("paper-text", "paper-image", "paper-image-svd"):
        arch = arch_lib.get_architecture(preset(name).architecture)
        with torch.device("meta"):
            unet = arch_lib.build_unet(arch)
        params = sum(p.numel() for p in unet.parameters())
        # fp32 weights + gradients + two AdamW moments = 16 bytes per trainable parameter
        rows.append({"preset": name, "unet": arch.unet_class, "params": params, "adamw_state_gib": params * 16 / 2**30})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=2, help="clips per step")
    parser.add_argument("--sample-steps", type=int, default=10, help="sampler steps of the sampling measurement")
    parser.add_argument("--paper", action="store_true", help="time the paper-size presets (needs a GPU: --device cuda)")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), median of {args.steps} steps")
    names, batch, mixed = TINY, args.batch, False
    if args.paper:
        if device.type != "cuda":
            print("paper-size steps: not measured (no CUDA device); sizes only:")
            names = ()
        else:
            names, batch, mixed = PAPER, 1, True
    if names:
        print(f"batch {batch}{', bf16 autocast' if mixed else ''}")
        print("| preset | backbone | schedule | params | trainer step (ms) | bare UNet fwd+bwd (ms) | trainer / bare | "
              "samples/s | sampling (ms/step, 3 branches) | peak memory (MiB) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            r = bench_preset(name, args.steps, batch, args.sample_steps, device, mixed)
            print(f"| {r['preset']} | {r['backbone']} | {r['schedule']} | {r['params']:,} | {r['trainer_ms']:.1f} | {r['bare_ms']:.1f} | "
                  f"{r['trainer_ms'] / r['bare_ms']:.2f}x | {r['samples_per_s']:.1f} | {r['sample_step_ms']:.1f} | {r['peak_mib']:.0f} |")
        print()
    print("| paper preset | UNet | UNet params (stock) | fp32 AdamW training state (GiB) |")
    print("|---|---|---|---|")
    for r in paper_sizes():
        print(f"| {r['preset']} | {r['unet']} | {r['params'] / 1e9:.2f} B | {r['adamw_state_gib']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
