"""Image losses and metrics over [B, H, W, 3] float images in [0, 1]: SSIM, PSNR, L1 + D-SSIM, LPIPS
(with a network from ``d4d.lpips``) and edge-aware depth smoothness."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from d4d.lpips import LPIPS, load_lpips

#: Why the LPIPS term and metric are off when no weights folder is given.
NO_LPIPS_WEIGHTS = "no LPIPS weights given (--lpips-weights DIR with alexnet.pth and alex.pth); there is no download"


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



def lpips_loss(net: torch.nn.Module, render: torch.Tensor, target: torch.Tensor, min_size: int = 32) -> torch.Tensor:
    """Mean LPIPS distance (scalar) of images [B, H, W, 3] in [0, 1] under ``net`` (``d4d.lpips.LPIPS``).

    Images smaller than ``min_size`` on a side are upsampled bilinearly first (AlexNet's five
    stages need about 32 pixels).
    """
    a, b = render.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    if min(a.shape[-2:]) < min_size:
        factor = min_size / min(a.shape[-2:])
        a = F.interpolate(a, scale_factor=factor, mode="bilinear", align_corners=False)
        b = F.interpolate(b, scale_factor=factor, mode="bilinear", align_corners=False)
    return net(a * 2 - 1, b * 2 - 1).mean()


def depth_smoothness(depth: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of rendered depth, scalar: mean over neighbouring pixel pairs inside
    the object of ``|d_i - d_j| * exp(-|I_i - I_j|)`` (Godard et al. 2017's weighting).

    Args:
        depth: [B, H, W] expected depth (world units), divided here by its (detached) mean over
            ``mask`` so the term does not depend on the scene's scale or pull the object closer.
        image: [B, H, W, 3] the target in [0, 1]; its colour edges let depth change there.
        mask: [B, H, W] bool, the target's object pixels (alpha > 0.5); pairs with a pixel
            outside (the silhouette) are left out. Zero when no pair lies inside.
    """
    scale = depth.detach()[mask].mean().clamp_min(1e-6) if mask.any() else depth.new_tensor(1.0)
    d = depth / scale
    total, count = depth.new_zeros(()), 0
    for dim in (1, 2):
        n = d.shape[dim] - 1
        dd = (d.narrow(dim, 1, n) - d.narrow(dim, 0, n)).abs()
        di = (image.narrow(dim, 1, n) - image.narrow(dim, 0, n)).abs().mean(-1)
        both = mask.narrow(dim, 1, n) & mask.narrow(dim, 0, n)
        total = total + (dd * torch.exp(-di))[both].sum()
        count += int(both.sum())
    return total / max(count, 1)


def lpips_network(weights: str | None, device: torch.device | str) -> LPIPS | None:
    """The frozen LPIPS network of the weights folder ``weights`` on ``device``, None without one;
    ValueError naming the folder and the file when they cannot be read."""
    if weights is None:
        return None
    net = load_lpips(weights).to(device)
    net.requires_grad_(False)
    return net


def loss_description(config, lpips_available: bool) -> dict:
    """The loss a run trains with, for metrics.json: weight per term, and why a requested term is off."""
    terms = {"l1": 1.0 - config.lambda_dssim, "dssim": config.lambda_dssim,
             "lpips": config.lambda_lpips if lpips_available else 0.0, "depth_smoothness": config.lambda_depth_smoothness}
    off = {"lpips": f"lambda_lpips {config.lambda_lpips:g} requested but {NO_LPIPS_WEIGHTS}"} if config.lambda_lpips and not lpips_available else {}
    return {"weights": terms, "off": off}
