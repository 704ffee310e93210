"""PSNR and SSIM of generated frames against ground-truth frames, in torch.

SSIM is the standard form (Wang et al. 2004): an 11 x 11 Gaussian window (sigma 1.5),
C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1 (frames in [0, 1]), evaluated where the window fits
inside the frame ("valid", as the authors' reference code) on each RGB channel, and averaged over
the positions and the three channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"frames must be equal [N, C, H, W], got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB of frames [N, C, H, W] in [0, 1]: 10 log10(1 / MSE); float64 [N] (inf if equal)."""
    _check(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """1-D Gaussian weights [size], float64, summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    w = torch.exp(-(x**2) / (2.0 * sigma**2))
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mean SSIM of frames [N, C, H, W] in [0, 1] (H, W >= 11); float64 [N]."""
    _check(a, b)
    if min(a.shape[-2:]) < WINDOW:
        raise ValueError(f"ssim: frames must be at least {WINDOW} x {WINDOW}, got {tuple(a.shape[-2:])}")
    channels = a.shape[1]
    w = gaussian_window().to(a.device)
    kernel = (w[:, None] * w[None, :]).expand(channels, 1, WINDOW, WINDOW).contiguous()
    x, y = a.double(), b.double()
    blur = lambda t: F.conv2d(t, kernel, groups=channels)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = K1**2, K2**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.flatten(1).mean(dim=1)
