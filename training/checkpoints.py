"""Resumable checkpoints of a run, and the exported model folder.

Layout of a run directory (``d4d-train --output RUN``)::

    RUN/train_config.json        the TrainConfig (a resumed run must match it, max_steps aside)
    RUN/checkpoints/step-000500/  accelerate.save_state: model, optimizer, LR scheduler, RNG of every
                                  process, and the registered objects (EMA weights, TrainState)
    RUN/model/                    the exported Diffusion4DPipeline (EMA weights when EMA is on)
    RUN/validation/step-*.mp4     validation samples
    RUN/logs/                     TensorBoard

A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves
a half-written ``step-*`` folder; the oldest are deleted beyond ``checkpoints_total_limit``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

CHECKPOINT_PREFIX = "step-"


class TrainState:
    """Counters and random state that make a resumed run repeat an uninterrupted one.

    Attributes:
        step: optimizer steps done.
        epoch: current epoch of the data order.
        batch_in_epoch: micro-batches of ``epoch`` consumed on each process.
        generator: the torch.Generator drawing timesteps, noise and dropout on this process.
        motion_sum, motion_count: running sum / count of the training clips' motion magnitudes
            (their mean becomes the exported model's default motion magnitude).
    """

    def __init__(self, generator: torch.Generator):
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.generator = generator
        self.motion_sum = 0.0
        self.motion_count = 0

    @property
    def mean_motion(self) -> float:
        return self.motion_sum / self.motion_count if self.motion_count else 0.0

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "generator": self.generator.get_state(), "motion_sum": self.motion_sum,
                "motion_count": self.motion_count}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        self.generator.set_state(state["generator"].cpu())
        self.motion_sum, self.motion_count = float(state["motion_sum"]), int(state["motion_count"])


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:06d}"


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of ``run``, oldest first."""
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
             and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def resolve_resume(run: Path, resume: str) -> Path:
    """``resume`` "latest" -> the newest checkpoint of ``run``; otherwise a checkpoint folder path."""
    if resume == "latest":
        found = list_checkpoints(run)
        if not found:
            raise ValueError(f"--resume latest: {run / 'checkpoints'} holds no checkpoint")
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise ValueError(f"--resume {resume}: not a checkpoint folder")
    return path


def prune_checkpoints(run: Path, keep: int) -> list[Path]:
    """Delete the oldest checkpoints beyond ``keep`` (0 keeps all); returns the deleted paths."""
    found = list_checkpoints(run)
    doomed = found[:-keep] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed
