"""Image losses and metrics over [B, H, W, 3] float images in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM [B] of images [B, H, W, C] in [0, 1] (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid region)."""
    C = a.shape[-1]
    x = a.permute(0, 3, 1, 2)
    y = b.permute(0, 3, 1, 2)
    g = _gaussian_window(window, sigma, a.device, a.dtype)
    kx = g.reshape(1, 1, 1, -1).repeat(C, 1, 1, 1)
    ky = g.reshape(1, 1, -1, 1).repeat(C, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=C), ky, groups=C)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR [B] in dB of images [B, H, W, C] in [0, 1] (peak 1); identical images give +inf."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def photometric_loss(render: torch.Tensor, target: torch.Tensor, lambda_dssim: float) -> torch.Tensor:
    """(1 - lambda) * L1 + lambda * D-SSIM with D-SSIM = 1 - SSIM (INRIA 3DGS), scalar."""
    l1 = (render - target).abs().mean()
    if lambda_dssim == 0:
        return l1
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * (1.0 - ssim(render, target).mean())

