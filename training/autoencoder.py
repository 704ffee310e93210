"""The autoencoder stage: fit the VAE of a from-scratch model on the shards' own frames.

A latent diffusion model learns in its VAE's latent space and is seen through its decoder, so a
model built from an architecture preset (no ``--pretrained`` folder) first fits its
``AutoencoderKL`` on the frames it will be trained on (docs/training.md, "The autoencoder
stage"); a random VAE is never used to train a UNet. The stage lives in ``RUN/autoencoder/``:

=======================  ===================================================================
``config.json``          the stage's settings (a rerun with other settings is refused)
``checkpoint/``          ``state.safetensors`` + ``state.json`` (training.state_files, no
                         pickle): weights, AdamW moments, step and the sampler's generator, every
                         ``checkpointing_steps``; a rerun continues from it exactly
``vae/``                 the fitted ``AutoencoderKL`` (diffusers layout, safetensors), its
                         ``scaling_factor`` set to 1 / std of its latents on training frames
``metrics.json``         held-out and training PSNR (dB), loss history, scaling factor, time
=======================  ===================================================================

Frames: the dynamic and static orbits of every clip, composited over the run's background and
resized to its resolution. Frame ``t`` of each video is held out when ``t % holdout_every == 0``
(never trained on; the held-out PSNR is measured on those). At most ``max_frames`` training
frames are kept in memory, drawn clip by clip with a seeded reservoir when the shards hold more.
Loss: MSE of the reconstruction (a posterior sample decoded) plus ``kl_weight`` times the KL
term (d4d's choice: no perceptual or adversarial term, so the stage needs no downloaded weights).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from d4d.files import publish_dir, staging_dir, write_json_atomic
from d4d.progress import bar

from .config import AutoencoderConfig
from .state_files import check_form, read_state, write_state

logger = logging.getLogger(__name__)


@dataclass
class FrameSet:
    """Frames of the stage: ``train`` float32 [N, 3, R, R] and ``heldout`` float32 [M, 3, R, R], in [-1, 1]."""

    train: torch.Tensor
    heldout: torch.Tensor


def load_frames(shards: Path, resolution: int, background: float, config: AutoencoderConfig) -> FrameSet:
    """Every clip's dynamic and static frames from ``shards``, split into training and held-out
    frames (``config.holdout_every``); at most ``config.max_frames`` training frames, drawn by a
    reservoir over clips seeded by ``config.seed``."""
    from d4d.shards.dataset import ShardDataset

    dataset = ShardDataset(shards, videos=("dynamic", "static"), tensors=(), shuffle=False, rank=0, world_size=1,
                           background=background)
    rng = np.random.default_rng(config.seed)
    train: list[torch.Tensor] = []
    heldout: list[torch.Tensor] = []
    held_budget = max(64, config.max_frames // 8)
    for sample in dataset:
        for key in ("dynamic_video", "static_video"):
            video = torch.as_tensor(sample[key]).float()
            if video.shape[-2:] != (resolution, resolution):
                video = F.interpolate(video, size=(resolution, resolution), mode="area")
            held = torch.arange(video.shape[0]) % config.holdout_every == 0
            if sum(len(h) for h in heldout) < held_budget:
                heldout.append(video[held])
            frames = video[~held]
            if sum(len(t) for t in train) + len(frames) <= config.max_frames:
                train.append(frames)
            else:  # reservoir over videos: each video seen so far stays with equal probability
                slot = int(rng.integers(0, len(train) + 1))
                if slot < len(train):
                    train[slot] = frames
    if not train:
        raise ValueError(f"{shards}: no frames to fit the autoencoder on")
    return FrameSet(torch.cat(train), torch.cat(heldout) if heldout else torch.cat(train)[:0])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (measured on the [0, 1] scale)."""
    mse = F.mse_loss((a.clamp(-1, 1) + 1) / 2, (b.clamp(-1, 1) + 1) / 2).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def reconstruction_psnr(vae: AutoencoderKL, frames: torch.Tensor, chunk: int = 64) -> float | None:
    """PSNR (dB) of ``frames`` [N, 3, R, R] decoded from their posterior mode; None for no frames."""
    if len(frames) == 0:
        return None
    vae.eval()
    out = torch.cat([vae.decode(vae.encode(frames[i:i + chunk]).latent_dist.mode()).sample for i in range(0, len(frames), chunk)])
    return psnr(out, frames)


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, frames: torch.Tensor, limit: int = 1024, chunk: int = 64) -> float:
    """1 / std of the posterior-mode latents of up to ``limit`` frames: unit-variance latents for
    the diffusion model, as Stable Diffusion's 0.18215 was chosen."""
    vae.eval()
    frames = frames[:limit]
    latents = torch.cat([vae.encode(frames[i:i + chunk]).latent_dist.mode() for i in range(0, len(frames), chunk)])
    return float(1.0 / latents.float().std().clamp_min(1e-6))


def _stage_state(vae: AutoencoderKL, optimizer: torch.optim.Optimizer, generator: torch.Generator, step: int, history: list[dict]) -> dict:
    return {"vae": vae.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": step,
            "history": history}


def _save_state(path: Path, vae: AutoencoderKL, optimizer: torch.optim.Optimizer, generator: torch.Generator, step: int,
                history: list[dict]) -> None:
    """Write the stage's resumable state to the folder ``path`` (staged, then published whole):
    ``state.safetensors`` + ``state.json`` (training.state_files: no pickle)."""
    staged = staging_dir(path)
    write_state(staged, "state", _stage_state(vae, optimizer, generator, step, history))
    publish_dir(staged, path)


def _load_state(path: Path, vae: AutoencoderKL, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> tuple[int, list[dict]]:
    """Restore what ``_save_state`` wrote, after checking it has the form of the live objects'
    state; returns (step, history). ValueError naming the file otherwise."""
    state = read_state(path, "state")
    live = _stage_state(vae, optimizer, generator, 0, [])
    check_form({k: state.get(k) for k in ("vae", "generator")}, {k: live[k] for k in ("vae", "generator")}, str(path / "state"))
    if not isinstance(state.get("step"), int) or not isinstance(state.get("history"), list):
        raise ValueError(f"{path / 'state.json'}: not an autoencoder checkpoint of d4d (no step or history)")
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path / 'state.json'}: its optimizer state does not fit this VAE ({exc})") from None
    vae.load_state_dict(state["vae"])
    generator.set_state(state["generator"])
    return state["step"], state["history"]


def _check_stage_config(stage: Path, settings: dict) -> None:
    path = stage / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        differ = sorted(k for k in set(saved) | set(settings) if k != "steps" and saved.get(k) != settings.get(k))
        if differ:
            raise ValueError(f"{path}: the autoencoder stage was started with other settings for {differ}; use a new --output")
    stage.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def fit_autoencoder(vae: AutoencoderKL, shards: Path, stage: Path, config: AutoencoderConfig, resolution: int,
                    background: float) -> AutoencoderKL:
    """Fit ``vae`` (random weights, trained in place) on the frames of ``shards``; returns it fitted,
    with its ``scaling_factor`` set, and writes the stage folder ``stage`` (see the module
    docstring). A stage already finished is loaded instead; an interrupted one resumes."""
    stage = Path(stage)
    _check_stage_config(stage, {**dataclasses.asdict(config), "resolution": resolution, "background": background})
    if (stage / "metrics.json").exists() and (stage / "vae").is_dir():
        logger.info("autoencoder stage: %s is finished; loading it", stage)
        return AutoencoderKL.from_pretrained(stage / "vae")
    frames = load_frames(shards, resolution, background, config)
    logger.info("autoencoder stage: %d training frames, %d held out, %dx%d px, %d steps",
                len(frames.train), len(frames.heldout), resolution, resolution, config.steps)
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.learning_rate, weight_decay=0.0)
    warmup = max(1, config.steps // 20)
    generator = torch.Generator().manual_seed(config.seed)
    step, history = 0, []
    if (stage / "checkpoint").is_dir():
        step, history = _load_state(stage / "checkpoint", vae, optimizer, generator)
        logger.info("autoencoder stage: resumed at step %d", step)
    started = time.perf_counter()
    progress = bar(config.steps, "autoencoder stage", initial=step)
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / warmup)
        batch = frames.train[torch.randint(len(frames.train), (config.batch_frames,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        mse = F.mse_loss(vae.decode(latents).sample, batch)
        loss = mse + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        progress.update(1)
        if step % config.log_every == 0 or step == config.steps:
            psnr_db = 10 * math.log10(4.0 / max(mse.item(), 1e-12))  # pixels in [-1, 1]: peak-to-peak 2
            history.append({"step": step, "loss": loss.item(), "train_psnr": psnr_db})
            progress.set_postfix_str(f"loss {loss.item():.5f}, batch PSNR {psnr_db:.1f} dB", refresh=False)
        if step % config.checkpointing_steps == 0 and step < config.steps:
            _save_state(stage / "checkpoint", vae, optimizer, generator, step, history)
    progress.close()
    vae.register_to_config(scaling_factor=latent_scaling_factor(vae, frames.train))
    metrics = {
        "heldout_psnr": reconstruction_psnr(vae, frames.heldout),
        "train_psnr": reconstruction_psnr(vae, frames.train[:512]),
        "heldout_frames": len(frames.heldout), "train_frames": len(frames.train),
        "scaling_factor": vae.config.scaling_factor, "steps": step, "resolution": resolution,
        "seconds": time.perf_counter() - started, "history": history,
    }
    staged = staging_dir(stage / "vae")
    vae.save_pretrained(staged, safe_serialization=True)
    publish_dir(staged, stage / "vae")
    write_json_atomic(stage / "metrics.json", metrics)
    logger.info("autoencoder stage: held-out PSNR %.2f dB (training frames %.2f dB), scaling factor %.4f",
                metrics["heldout_psnr"] or float("nan"), metrics["train_psnr"], metrics["scaling_factor"])
    return vae.eval().requires_grad_(False)


__all__ = ["FrameSet", "fit_autoencoder", "load_frames", "latent_scaling_factor", "reconstruction_psnr"]
