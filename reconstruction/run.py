"""Reconstruct one input into an output directory: d4d-reconstruct as a Python function.

    from d4d.reconstruction.run import reconstruct_input
    metrics = reconstruct_input("renders/fox", "recon/fox")   # the preset for this device

The input is a render directory, a d4d-sample output directory or ``SHARD.parquet#ROW``
(reconstruction.inputs); the outputs are those of reconstruction.outputs. Training writes
``OUT/checkpoint.safetensors`` as it goes (safetensors + JSON, never a pickle; a d4d 0.1
``checkpoint.pt`` is refused), and a call with the same OUT resumes from it (``restart``
discards it); it is removed once the outputs are written.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from d4d.reconstruction.checkpoint import CHECKPOINT_NAME, discard_checkpoints
from d4d.reconstruction.config import AUTO, ReconstructConfig, preset, resolve_preset
from d4d.reconstruction.inputs import load_input
from d4d.reconstruction.outputs import write_outputs
from d4d.reconstruction.trainer import reconstruct
from d4d.reconstruction.views import views_from_sample


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: cuda when available, else cpu; any other torch device name as given."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def reconstruct_input(input: str | Path, out: str | Path, config: ReconstructConfig | None = None, device: str = "auto",
                      backend: str = "auto", restart: bool = False, log=None, preset_name: str = "custom") -> dict:
    """Fit 4D Gaussians to ``input`` and write them to ``out``; returns metrics.json's dict.

    Args:
        config: the settings; None takes the preset for the device (``auto``: paper on CUDA,
            cpu elsewhere).
        device, backend: torch device name ("auto" picks cuda when available) and rasterizer.
        restart: discard a checkpoint in ``out`` instead of resuming from it.
        log: optional ``logging.Logger`` for the run's summary line.
        preset_name: recorded in metrics.json: the preset ``config`` came from.
    Raises ValueError / OSError naming the problem with the input; KeyboardInterrupt leaves
    the last checkpoint in ``out``.
    """
    out = Path(out)
    torch_device = pick_device(device)
    if config is None:
        preset_name = resolve_preset(AUTO, torch_device.type)
        config = preset(preset_name)
    sample = load_input(str(input))
    views = views_from_sample(sample)
    if log is not None:
        log.info("%s: %s, %dx%d; preset %s (%d coarse + %d fine steps) on %s", input,
                 ", ".join(f"{k} ({len(v.times)} frames)" for k, v in sample.videos.items()),
                 sample.width, sample.height, preset_name, config.coarse_iterations, config.iterations, torch_device)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_NAME
    if restart:
        discard_checkpoints(out)
    start = time.perf_counter()
    result = reconstruct(views, config, device=torch_device, backend=backend, checkpoint=checkpoint)
    video = sample.videos["dynamic"] if "dynamic" in sample.videos else next(iter(sample.videos.values()))
    distance = float(np.linalg.norm(video.c2w[:, :3, 3], axis=-1).mean())
    metrics = write_outputs(result, video.times, sample.K, sample.width, sample.height, distance, out,
                            {"input": str(input), "device": str(torch_device), "preset": preset_name,
                             "total_seconds": round(time.perf_counter() - start, 3)})
    checkpoint.unlink(missing_ok=True)
    return metrics
