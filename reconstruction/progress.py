"""Progress lines during training: stage, per-stage and whole-run steps, loss, training PSNR,
Gaussian count and a stable estimate of the time left.

A line is logged when at least ``every_s`` seconds of training have passed since the last
one (and at the last step of each stage). The time left is the remaining steps times the
seconds per step measured over the current stage so far (its mean, not the pace since the last
line, so a busy moment on a shared machine does not swing it); steps of a later stage are
counted at the current stage's pace until that stage has its own.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger("d4d.reconstruction")


def format_seconds(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``42 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class Progress:
    """Accumulates per-step losses and logs a line at least every ``every_s`` training seconds.

    Args:
        stages: (name, steps) of each stage in order, e.g. [("coarse", 300), ("fine", 700)].
        every_s: minimum training seconds between lines (0: never log).
        start_step: steps already done over all stages (a resumed run).
        start_seconds: training seconds already spent (a resumed run).
    """

    def __init__(self, stages: list[tuple[str, int]], every_s: float, start_step: int = 0, start_seconds: float = 0.0):
        self.stages, self.every_s = [(name, steps) for name, steps in stages if steps > 0], every_s
        self.total = sum(steps for _, steps in self.stages)
        self.last_seconds = self.previous_seconds = start_seconds  # at the last line; at the last step
        self.stage_start = (start_step, start_seconds)  # (step, seconds) where this process began the current stage
        self.current: str | None = None
        self.loss_sum = self.mse_sum = 0.0
        self.count = 0

    def stage_of(self, step: int) -> tuple[str, int, int]:
        """(stage name, step within it (1-based), its steps) of global step ``step`` (1-based)."""
        first = 0
        for name, steps in self.stages:
            if step <= first + steps:
                return name, step - first, steps
            first += steps
        raise ValueError(f"step {step} is past the run's {self.total} steps")

    def update(self, step: int, loss: torch.Tensor, mse: torch.Tensor, n_gaussians: int, train_seconds: float) -> str | None:
        """Record global step ``step`` (1-based) with its loss and photometric MSE (scalar tensors,
        summed on their device so nothing waits for the device between lines); returns the logged line, if any."""
        stage, within, steps = self.stage_of(step)
        if stage != self.current:
            self.current, self.stage_start = stage, (step - 1, self.previous_seconds)
        self.previous_seconds = train_seconds
        self.loss_sum += loss
        self.mse_sum += mse
        self.count += 1
        due = self.every_s > 0 and (train_seconds - self.last_seconds >= self.every_s or within == steps)
        if not due:
            return None
        start_step, start_seconds = self.stage_start
        per_step = (train_seconds - start_seconds) / max(step - start_step, 1)
        mse_mean = float(self.mse_sum) / self.count
        psnr = 10.0 * math.log10(1.0 / mse_mean) if mse_mean > 0 else math.inf
        left = per_step * (self.total - step)
        line = (
            f"{stage} step {within}/{steps} ({100.0 * within / steps:.0f}%; run {step}/{self.total}): "
            f"loss {float(self.loss_sum) / self.count:.4f}, training PSNR {psnr:.2f} dB, {n_gaussians} Gaussians, "
            f"{format_seconds(train_seconds)} elapsed, about {format_seconds(left)} left"
        )
        log.info(line)
        self.last_seconds = train_seconds
        self.loss_sum = self.mse_sum = 0.0
        self.count = 0
        return line
