"""Progress lines during training: step, loss, training PSNR, Gaussian count and the time left.

A line is logged when at least ``every_s`` seconds of training have passed since the last
one (and at the last step). The time left is the remaining steps times the seconds per step
measured since the previous line, so it follows the run as Gaussians grow or shrink.
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
        total: steps of the whole run (both stages).
        every_s: minimum training seconds between lines (0: never log).
        start_step: steps already done (a resumed run).
        start_seconds: training seconds already spent (a resumed run).
    """

    def __init__(self, total: int, every_s: float, start_step: int = 0, start_seconds: float = 0.0):
        self.total, self.every_s = total, every_s
        self.last_step, self.last_seconds = start_step, start_seconds
        self.loss_sum = self.mse_sum = 0.0
        self.count = 0

    def update(self, step: int, stage: str, loss: torch.Tensor, mse: torch.Tensor, n_gaussians: int, train_seconds: float) -> str | None:
        """Record step ``step`` (1-based, global) with its loss and photometric MSE (scalar tensors,
        summed on their device so nothing waits for the device between lines); returns the logged line, if any."""
        self.loss_sum += loss
        self.mse_sum += mse
        self.count += 1
        due = self.every_s > 0 and (train_seconds - self.last_seconds >= self.every_s or step == self.total)
        if not due:
            return None
        per_step = (train_seconds - self.last_seconds) / max(step - self.last_step, 1)
        mse_mean = float(self.mse_sum) / self.count
        psnr = 10.0 * math.log10(1.0 / mse_mean) if mse_mean > 0 else math.inf
        left = per_step * (self.total - step)
        line = (
            f"{stage} step {step}/{self.total} ({100.0 * step / self.total:.0f}%): loss {float(self.loss_sum) / self.count:.4f}, "
            f"training PSNR {psnr:.2f} dB, {n_gaussians} Gaussians, {format_seconds(train_seconds)} elapsed, "
            f"about {format_seconds(left)} left"
        )
        log.info(line)
        self.last_step, self.last_seconds = step, train_seconds
        self.loss_sum = self.mse_sum = 0.0
        self.count = 0
        return line
