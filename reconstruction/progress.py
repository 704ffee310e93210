"""Progress of a reconstruction, through d4d.progress (tqdm; plain lines off a terminal).

One bar per stage (``reconstruction coarse``, ``reconstruction fine``) counts that stage's steps,
with its elapsed time and its time left at the stage's mean pace (d4d.progress: never the pace of
the last few steps, so a busy moment on a shared machine does not swing it). Its postfix, renewed
when at least ``every_s`` seconds of training have passed (and at the last step of each stage),
holds the mean loss and training PSNR since the last renewal, the Gaussian count, the step of the
whole run and the time left for the whole run: the remaining steps times the seconds of training
per step over the current stage so far (steps of a later stage are counted at the current stage's
pace until that stage has its own; evaluations and checkpoints do not count).
"""

from __future__ import annotations

import math
from typing import TextIO

import torch

from d4d.progress import bar


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
    """Accumulates per-step losses into one bar per stage; the postfix is renewed at least every
    ``every_s`` training seconds.

    Args:
        stages: (name, steps) of each stage in order, e.g. [("coarse", 300), ("fine", 700)].
        every_s: minimum training seconds between postfix renewals (0: no bars at all).
        start_step: steps already done over all stages (a resumed run).
        start_seconds: training seconds already spent (a resumed run).
        stream: where the bars go (stderr when None).
    """

    def __init__(self, stages: list[tuple[str, int]], every_s: float, start_step: int = 0, start_seconds: float = 0.0,
                 stream: TextIO | None = None):
        self.stages, self.every_s, self.stream = [(name, steps) for name, steps in stages if steps > 0], every_s, stream
        self.total = sum(steps for _, steps in self.stages)
        self.last_seconds = self.previous_seconds = start_seconds  # at the last renewal; at the last step
        self.stage_start = (start_step, start_seconds)  # (step, seconds) where this process began the current stage
        self.current: str | None = None
        self.bar = None
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
        summed on their device so nothing waits for the device between renewals); returns the
        renewed postfix, if any."""
        stage, within, steps = self.stage_of(step)
        if stage != self.current:
            self.close()
            self.current, self.stage_start = stage, (step - 1, self.previous_seconds)
            self.bar = bar(steps, f"reconstruction {stage}", initial=within - 1, stream=self.stream, disable=self.every_s <= 0)
        self.previous_seconds = train_seconds
        self.loss_sum += loss
        self.mse_sum += mse
        self.count += 1
        postfix = None
        if self.every_s > 0 and (train_seconds - self.last_seconds >= self.every_s or within == steps):
            start_step, start_seconds = self.stage_start
            per_step = (train_seconds - start_seconds) / max(step - start_step, 1)
            mse_mean = float(self.mse_sum) / self.count
            psnr = 10.0 * math.log10(1.0 / mse_mean) if mse_mean > 0 else math.inf
            postfix = (f"loss {float(self.loss_sum) / self.count:.4f}, training PSNR {psnr:.2f} dB, {n_gaussians} Gaussians, "
                       f"run {step}/{self.total}, about {format_seconds(per_step * (self.total - step))} left in all")
            self.bar.set_postfix_str(postfix, refresh=False)
            self.last_seconds = train_seconds
            self.loss_sum = self.mse_sum = 0.0
            self.count = 0
        self.bar.update(1)
        if within == steps:
            self.close()
        return postfix

    def close(self) -> None:
        """Close the running stage's bar (its last line stays)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
