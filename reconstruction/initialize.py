"""Initial Gaussian centres and colours: alpha-mask visual-hull carving, or random in the unit cube."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

#: The carving grid covers [-HULL_HALF_SIDE, HULL_HALF_SIDE]^3: d4d scenes fit the unit cube
#: over all times (docs/conventions.md), plus a small margin.
HULL_HALF_SIDE = 0.55


def project_points(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [V, N, 2] and camera depths [V, N] of world points [N, 3] in V OpenCV cameras."""
    cam = points[None] @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
    z = cam[..., 2]
    uv = cam @ Ks.transpose(1, 2)
    return uv[..., :2] / z.clamp_min(1e-6)[..., None], z


def _lookup(images: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-pixel values [V, N, C] of images [V, H, W, C] at pixel coordinates uv [V, N, 2], and an in-image mask [V, N]."""
    V, H, W, _ = images.shape
    ix = torch.floor(uv[..., 0]).long()
    iy = torch.floor(uv[..., 1]).long()
    inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
    ix, iy = ix.clamp(0, W - 1), iy.clamp(0, H - 1)
    v = torch.arange(V, device=images.device)[:, None].expand_as(ix)
    return images[v, iy, ix], inside


def carve_visual_hull(
    alphas: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, resolution: int, min_fraction: float = 1.0
) -> tuple[torch.Tensor, float]:
    """Voxels inside the alpha-mask visual hull.

    Args:
        alphas: [V, H, W] float in [0, 1], one mask per view; alpha > 0.5 is "object".
        viewmats: [V, 4, 4] world-to-camera (OpenCV). Ks: [V, 3, 3] intrinsics, pixels.
        resolution: voxels per side over the cube of half-side HULL_HALF_SIDE.
        min_fraction: keep a voxel inside the mask in at least this fraction of the views
            (a voxel that projects outside an image counts as outside).

    Returns:
        centres [M, 3] of the kept voxels and the voxel side (world units).
    """
    side = 2 * HULL_HALF_SIDE / resolution
    axis = -HULL_HALF_SIDE + side * (torch.arange(resolution, dtype=torch.float32) + 0.5)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    uv, z = project_points(grid, viewmats.float(), Ks.float())
    values, inside = _lookup(alphas[..., None].float(), uv)
    hits = ((values[..., 0] > 0.5) & inside & (z > 0)).float().mean(0)
    return grid[hits >= min_fraction - 1e-6], side


def mean_colour(points: torch.Tensor, rgba: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """Colour [N, 3] of each point: the mean over views where it lands on the object (alpha > 0.5); grey if none."""
    uv, _ = project_points(points, viewmats.float(), Ks.float())
    values, inside = _lookup(rgba.float(), uv)
    weight = ((values[..., 3] > 0.5) & inside).float()[..., None]
    total = (values[..., :3] * weight).sum(0)
    count = weight.sum(0)
    return torch.where(count > 0, total / count.clamp_min(1.0), torch.full_like(total, 0.5))


def initial_points(
    method: str, n: int, rgba: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, resolution: int, min_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` initial centres [n, 3] and colours [n, 3].

    Args:
        method: "hull" (uniform inside the carved visual hull; falls back to "random" with
            a log line when the hull is empty) or "random" (uniform in [-0.5, 0.5]^3).
        rgba: [V, H, W, 4] float in [0, 1], the views used for carving and colours.
        viewmats, Ks: their cameras (see carve_visual_hull).
    """
    if method == "hull":
        centres, side = carve_visual_hull(rgba[..., 3], viewmats, Ks, resolution, min_fraction)
        if len(centres) == 0:
            log.warning("visual hull is empty (no voxel inside %.0f%% of %d masks); initialising at random", 100 * min_fraction, len(rgba))
        else:
            log.info("visual hull: %d of %d voxels kept", len(centres), resolution**3)
            pick = torch.randint(len(centres), (n,), generator=generator)
            points = centres[pick] + (torch.rand(n, 3, generator=generator) - 0.5) * side
            return points, mean_colour(points, rgba, viewmats, Ks)
    elif method != "random":
        raise ValueError(f"init method must be 'hull' or 'random', got {method!r}")
    points = torch.rand(n, 3, generator=generator) - 0.5
    return points, mean_colour(points, rgba, viewmats, Ks)
