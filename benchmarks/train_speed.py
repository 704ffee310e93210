"""Training speed of the tiny configurations: the trainer's full step against a bare UNet step.

    python -m benchmarks.train_speed [--steps 10] [--threads 1] [--batch 2]

Per task (text / image / static, tiny presets, CPU):
- trainer step: what d4d-train does per optimizer step with batch_train_size = --batch: encode
  the batch (VAE, text or image encoder), condition dropout, noising, the Denoiser (UNet +
  motion embedding hook), L_ldm + L_mr, backward, AdamW step, EMA update;
- bare step: the same UNet, forward + backward of an MSE loss on precomputed inputs (no
  encoders, no motion embedding, no L_mr, no optimizer): the floor the trainer's overhead is
  measured against.
Also prints the parameter counts and the fp32 AdamW training-state size of the paper-sized
configurations (built on the meta device, no memory used). Peak memory is the process's peak
resident set (ru_maxrss), which only grows: read it as an upper bound per row.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from d4d.testing.train_fixtures import make_clips
from d4d.training import architectures as arch_lib
from d4d.training.backbone import INPUT_CHANNELS, Denoiser
from d4d.training.components import build_components
from d4d.training.config import preset
from d4d.training.data import collate
from d4d.training.objective import batch_inputs, compute_losses, drop_conditions, empty_prompt_embedding


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, steps: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_task(task: str, steps: int, batch_size: int) -> dict:
    config = preset(f"tiny-{task}", train_batch_size=batch_size)
    parts = build_components(task, config.architecture, seed=0)
    for frozen in (parts.vae, parts.text_encoder, parts.image_encoder):
        if frozen is not None:
            frozen.requires_grad_(False).eval()
    model = Denoiser(parts.unet, parts.motion_embedding, task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    ema = EMAModel(list(model.parameters()), decay=config.ema_decay)
    batch = collate(make_clips(batch_size, config.num_frames, config.resolution), config.num_frames, config.resolution)
    generator = torch.Generator().manual_seed(0)
    device = torch.device("cpu")
    text_null = empty_prompt_embedding(parts, device)

    def trainer_step():
        z0, zbar, cond = batch_inputs(batch, parts, config, device)
        cond = drop_conditions(cond, cond.null(text_null), config, generator)
        losses = compute_losses(model, parts.scheduler, z0, zbar, cond, config, generator)
        losses.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(model.parameters())

    z0, zbar, cond = batch_inputs(batch, parts, config, device)
    unet = parts.unet
    channels = INPUT_CHANNELS[task]
    sample = torch.randn(batch_size, config.num_frames, channels, *z0.shape[-2:])
    timesteps = torch.randint(0, 1000, (batch_size,), generator=generator)

    def bare_step():
        if task == "text":
            out = unet(sample.permute(0, 2, 1, 3, 4), timesteps, encoder_hidden_states=cond.text_embeddings).sample
            out = out.permute(0, 2, 1, 3, 4)
        else:
            ids = torch.tensor([[6.0, 127.0, 0.02]]).expand(batch_size, -1)
            out = unet(sample, timesteps, encoder_hidden_states=cond.image_embeddings, added_time_ids=ids).sample
        F.mse_loss(out, z0).backward()
        unet.zero_grad(set_to_none=True)

    trainer = timed(trainer_step, steps)
    bare = timed(bare_step, steps)
    params = sum(p.numel() for p in model.parameters())
    return {"task": task, "params": params, "trainer_ms": 1000 * statistics.median(trainer),
            "bare_ms": 1000 * statistics.median(bare), "samples_per_s": batch_size / statistics.median(trainer),
            "peak_rss_mib": peak_rss_mib()}


def paper_sizes() -> list[dict]:
    rows = []
    for task in ("text", "image", "static"):
        arch = arch_lib.get_architecture(f"paper-{task}")
        with torch.device("meta"):
            unet = arch_lib.build_unet(arch, INPUT_CHANNELS[task])
        params = sum(p.numel() for p in unet.parameters())
        # fp32 weights + gradients + two AdamW moments = 16 bytes per trainable parameter
        rows.append({"task": task, "unet": arch.unet_class, "params": params, "adamw_state_gib": params * 16 / 2**30})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=2, help="clips per step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, median of {args.steps} steps")
    print("| task | params | trainer step (ms) | bare UNet fwd+bwd (ms) | trainer overhead | samples/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for task in ("text", "image", "static"):
        r = bench_task(task, args.steps, args.batch)
        print(f"| tiny-{task} | {r['params']:,} | {r['trainer_ms']:.1f} | {r['bare_ms']:.1f} | "
              f"{r['trainer_ms'] / r['bare_ms']:.2f}x | {r['samples_per_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    print()
    print("| paper config | UNet | UNet params | fp32 AdamW training state (GiB) |")
    print("|---|---|---|---|")
    for r in paper_sizes():
        print(f"| paper-{r['task']} | {r['unet']} | {r['params'] / 1e9:.2f} B | {r['adamw_state_gib']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
