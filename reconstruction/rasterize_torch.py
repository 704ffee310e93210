"""Pure-PyTorch 3D Gaussian rasterizer: the slow, readable twin of ``gsplat.rasterization``.

Runs on any device (CPU included) and is differentiable through autograd. It follows
gsplat 1.5's "classic" 3DGS semantics so the two backends agree:

1. Projection (EWA splatting): each Gaussian's 3D covariance ``R S S^T R^T`` is carried
   into the camera and through the Jacobian of the pinhole projection at its centre,
   giving a 2D covariance; ``eps2d`` is added to its diagonal (gsplat's low-pass filter).
   Gaussians whose depth lies outside ``(near_plane, far_plane)`` are culled.
2. Footprint: a box of ``ceil(3.33 * sigma)`` pixels around the projected centre along each
   image axis (gsplat's per-axis ``radii``), clipped to the image.
3. Compositing: every pixel blends the Gaussians that cover it front to back,
   ``C = sum_i c_i a_i T_i`` with ``T_i = prod_{j<i} (1 - a_j)``,
   ``a_i = min(0.999, o_i exp(-0.5 d^T Sigma'^-1 d))``; fragments with ``a_i < 1/255`` are
   skipped and a pixel stops once its transmittance would fall to ``1e-4``.

It is tile-free and memory-conscious: instead of a dense pixels x Gaussians table it
enumerates only the (pixel, Gaussian) pairs inside each footprint, so memory and time grow
with the total footprint area, not with ``H * W * N``. Pairs are sorted by (camera, pixel,
depth) and the per-pixel transmittance is a segmented cumulative sum of ``log(1 - a)``
(in float64, so long pixel lists stay exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Footprint radius in standard deviations (gsplat's value).
SIGMA_EXTENT = 3.33
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
#: Highest spherical-harmonic degree ``spherical_harmonics`` evaluates (INRIA's and gsplat's usual 3).
MAX_SH_DEGREE = 3


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH basis [..., (degree + 1)^2] at unit directions [..., 3], in gsplat's (and INRIA's) order and signs."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in [0, {MAX_SH_DEGREE}], got {degree}")
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, 0.2820947917738781)]
    if degree >= 1:
        bases += [-0.48860251190292 * y, 0.48860251190292 * z, -0.48860251190292 * x]
    if degree >= 2:
        z2, fc1, fs1 = z * z, x * x - y * y, 2 * x * y
        bases += [0.5462742152960395 * fs1, -1.092548430592079 * z * y, 0.9461746957575601 * z2 - 0.3153915652525201,
                  -1.092548430592079 * z * x, 0.5462742152960395 * fc1]
    if degree >= 3:
        fc2, fs2 = x * fc1 - y * fs1, x * fs1 + y * fc1
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        bases += [-0.5900435899266435 * fs2, 1.445305721320277 * z * fs1, tmp_c * y, z * (1.865881662950577 * z2 - 1.119528997770346),
                  tmp_c * x, 1.445305721320277 * z * fc1, -0.5900435899266435 * fc2]
    return torch.stack(bases, -1)


def spherical_harmonics(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Colours [..., 3] = sum_k basis_k(dirs / |dirs|) coeffs[..., k, :] over the first (degree + 1)^2 of coeffs [..., K, 3].

    The same as ``gsplat.spherical_harmonics``; callers add 0.5 and clamp at 0 (INRIA's convention).
    """
    n = (degree + 1) ** 2
    if coeffs.shape[-2] < n:
        raise ValueError(f"sh_degree {degree} needs {n} coefficients per colour, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))
    return (basis[..., None] * coeffs[..., :n, :]).sum(-2)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] from quaternions [..., 4] in (w, x, y, z) order (normalised here)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of N Gaussians into C cameras.

    Args:
        means: [N, 3] world positions. quats: [N, 4] (w, x, y, z), any norm. scales: [N, 3]
            standard deviations along the Gaussian's axes (world units, not log).
        viewmats: [C, 4, 4] world-to-camera (OpenCV camera frame: +X right, +Y down, +Z forward).
        Ks: [C, 3, 3] pinhole intrinsics in pixels.

    Returns:
        means2d [C, N, 2] pixel coordinates (x right, y down; pixel (i, j) has its centre at
        (i + 0.5, j + 0.5)); conics [C, N, 3] the upper triangle (a, b, c) of the inverse 2D
        covariance; depths [C, N] camera-space z; radii [C, N, 2] int32 footprint half-sizes
        in pixels along x and y, 0 for culled Gaussians.
    """
    R = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    t_cam = (R @ means[None, :, :, None]).squeeze(-1) + viewmats[:, None, :3, 3]  # [C, N, 3]
    rot = quat_to_rotmat(quats)  # [N, 3, 3]
    M = rot * scales[:, None, :]  # R diag(s)
    cov_world = M @ M.transpose(-1, -2)  # [N, 3, 3]
    cov_cam = R @ cov_world[None] @ R.transpose(-1, -2)  # [C, N, 3, 3]

    fx, fy = Ks[:, 0, 0][:, None], Ks[:, 1, 1][:, None]
    cx, cy = Ks[:, 0, 2][:, None], Ks[:, 1, 2][:, None]
    x, y, z = t_cam.unbind(-1)
    valid = (z > near_plane) & (z < far_plane)
    z_safe = torch.where(valid, z, torch.ones_like(z))
    # Clamp the view-space slope 30% beyond the field of view, as gsplat does, so the
    # Jacobian stays sane for Gaussians far off-screen.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z_safe * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x / z_safe))
    ty = z_safe * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y / z_safe))
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx / z_safe, zeros, -fx * tx / z_safe**2, zeros, fy / z_safe, -fy * ty / z_safe**2], dim=-1
    ).reshape(*z.shape, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(-1, -2)  # [C, N, 2, 2]
    a = cov2d[..., 0, 0] + eps2d
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    valid = valid & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)

    with torch.no_grad():
        radii = torch.stack([torch.ceil(SIGMA_EXTENT * a.clamp_min(0).sqrt()), torch.ceil(SIGMA_EXTENT * c.clamp_min(0).sqrt())], -1)
        valid = valid & (radii.amax(-1) > radius_clip)
        off = (
            (means2d[..., 0] + radii[..., 0] <= 0)
            | (means2d[..., 0] - radii[..., 0] >= width)
            | (means2d[..., 1] + radii[..., 1] <= 0)
            | (means2d[..., 1] - radii[..., 1] >= height)
        )
        valid = valid & ~off
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return means2d, conics, z, radii


def _footprint_pairs(means2d: torch.Tensor, radii: torch.Tensor, opacities: torch.Tensor, width: int, height: int):
    """Enumerate (camera, Gaussian, pixel) triples inside every clipped footprint box.

    The box is the smaller of gsplat's ``radii`` and the ellipse beyond which
    ``o * exp(-sigma) < 1/255`` (those fragments are skipped anyway), so faint Gaussians
    cost fewer fragments. Returns int64 tensors owner [P] (camera * N + Gaussian), px [P], py [P].
    """
    C, N = radii.shape[:2]
    with torch.no_grad():
        centre = means2d.detach()
        # Extent where o * exp(-0.5 k^2) >= 1/255, as a fraction of the 3.33-sigma radius.
        k = torch.sqrt(2.0 * torch.log((opacities.detach() / ALPHA_MIN).clamp_min(1.0)))
        shrink = (k / SIGMA_EXTENT).clamp_max(1.0)[None, :, None]
        half = radii * shrink
        x0 = torch.clamp(torch.floor(centre[..., 0] - half[..., 0]), 0, width).long()
        x1 = torch.clamp(torch.ceil(centre[..., 0] + half[..., 0]), 0, width).long()
        y0 = torch.clamp(torch.floor(centre[..., 1] - half[..., 1]), 0, height).long()
        y1 = torch.clamp(torch.ceil(centre[..., 1] + half[..., 1]), 0, height).long()
        nx = (x1 - x0).clamp_min(0)
        ny = (y1 - y0).clamp_min(0)
        counts = torch.where(radii.amax(-1) > 0, nx * ny, torch.zeros_like(nx)).reshape(-1)
        total = int(counts.sum())
        owner = torch.repeat_interleave(torch.arange(C * N, device=counts.device), counts, output_size=total)
        starts = torch.cumsum(counts, 0) - counts
        per_owner = torch.stack([starts, nx.reshape(-1), x0.reshape(-1), y0.reshape(-1)], -1).index_select(0, owner)
        local = torch.arange(total, device=counts.device) - per_owner[:, 0]
        px = per_owner[:, 2] + local % per_owner[:, 1]
        py = per_owner[:, 3] + local // per_owner[:, 1]
        return owner, px, py


def rasterization(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    backgrounds: torch.Tensor | None = None,
    render_mode: str = "RGB",
    sh_degree: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Rasterize N 3D Gaussians into C images (the argument subset of ``gsplat.rasterization``).

    Args:
        means: [N, 3] centres, world units.
        quats: [N, 4] rotations as (w, x, y, z) quaternions; normalised internally.
        scales: [N, 3] standard deviations (world units; exponentiate log-scales first).
        opacities: [N] in [0, 1] (apply the sigmoid first).
        colors: [N, D] or [C, N, D] per-Gaussian features (e.g. RGB in [0, 1]); with
            ``sh_degree`` set, SH coefficients [N, K, 3] or [C, N, K, 3] with
            (sh_degree + 1)^2 <= K, evaluated towards each camera (direction from the camera
            centre to the Gaussian) and turned into colours as ``max(sh + 0.5, 0)`` (gsplat).
        viewmats: [C, 4, 4] world-to-camera matrices, OpenCV camera frame.
        Ks: [C, 3, 3] pinhole intrinsics, pixels.
        width, height: image size, pixels.
        near_plane, far_plane: depth culling range (camera z, world units).
        radius_clip: skip Gaussians whose footprint radius is at most this many pixels.
        eps2d: added to the 2D covariance diagonal (anti-aliasing low-pass filter), pixels^2.
        backgrounds: [C, D] colour composited behind, D the colour channels (3 with SH), as
            gsplat takes it: a depth channel gets background 0 ("RGB+D", "RGB+ED"), and the
            depth-only modes ignore it; None leaves the background black / zero.
        render_mode: "RGB" (the features), "D" (accumulated depth), "ED" (expected depth,
            accumulated depth / alpha), "RGB+D" or "RGB+ED" (features then one depth channel).
        sh_degree: None (``colors`` are the features) or the SH degree to evaluate (0..3).

    Returns:
        render_colors [C, H, W, D'] float, render_alphas [C, H, W, 1] float, and ``meta``
        with means2d [C, N, 2] (a graph tensor: call ``retain_grad`` for densification),
        radii [C, N, 2] int32, depths [C, N], conics [C, N, 3], width, height, n_cameras,
        gaussian_ids None (unpacked layout, as gsplat with ``packed=False``) and
        n_pairs (how many pixel-Gaussian fragments were evaluated).
    """
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    N = means.shape[0]
    C = viewmats.shape[0]
    if sh_degree is not None:
        if colors.dim() == 3:
            colors = colors[None].expand(C, -1, -1, -1)
        if colors.dim() != 4 or colors.shape[:2] != (C, N) or colors.shape[-1] != 3:
            raise ValueError(f"with sh_degree, colors must be [N, K, 3] or [C, N, K, 3] with C={C}, N={N}; got {tuple(colors.shape)}")
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3] camera centres
        colors = torch.clamp_min(spherical_harmonics(sh_degree, means[None] - campos[:, None], colors) + 0.5, 0.0)
    if colors.dim() == 2:
        colors = colors[None].expand(C, -1, -1)
    if colors.shape[:2] != (C, N):
        raise ValueError(f"colors must be [N, D] or [C, N, D] with C={C}, N={N}; got {tuple(colors.shape)}")

    means2d, conics, depths, radii = project_gaussians(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d, radius_clip
    )
    flat, px, py = _footprint_pairs(means2d, radii, opacities, width, height)
    centres = torch.stack([px, py], -1).to(means2d.dtype) + 0.5

    def falloff(flat: torch.Tensor, centres: torch.Tensor, m2: torch.Tensor, con: torch.Tensor, opa: torch.Tensor):
        """Gaussian exponent sigma [P] and alpha [P] of fragments (flat = camera * N + Gaussian, pixel centres [P, 2])."""
        per = torch.cat([m2.reshape(-1, 2), con.reshape(-1, 3), opa.expand(C, N).reshape(-1, 1)], -1).index_select(0, flat)
        dx, dy = centres[:, 0] - per[:, 0], centres[:, 1] - per[:, 1]
        sigma = 0.5 * (per[:, 2] * dx * dx + per[:, 4] * dy * dy) + per[:, 3] * dx * dy
        return sigma, torch.clamp_max(per[:, 5] * torch.exp(-sigma), ALPHA_MAX)

    with torch.no_grad():
        # Which fragments count, and their order: sorted by (camera, pixel, depth rank).
        cam = flat // N
        sigma, alpha = falloff(flat, centres, means2d.detach(), conics.detach(), opacities.detach())
        kept = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_MIN)).squeeze(-1)
        rank = torch.empty_like(depths, dtype=torch.long)
        order = torch.argsort(depths.detach(), dim=1)
        rank.scatter_(1, order, torch.arange(N, device=depths.device).expand(C, N).contiguous())
        pixel = (cam * height + py) * width + px
        key = pixel.index_select(0, kept) * N + rank.reshape(-1).index_select(0, flat.index_select(0, kept))
        perm = kept.index_select(0, torch.argsort(key))
        pixel, flat, centres = pixel.index_select(0, perm), flat.index_select(0, perm), centres.index_select(0, perm)
    # The same falloff, now differentiable, for the kept fragments in compositing order.
    _, alpha = falloff(flat, centres, means2d, conics, opacities)

    # Front-to-back transmittance per pixel: T_i = exp(sum of log(1 - a_j) over earlier j).
    log_one_minus = torch.log1p(-alpha.to(torch.float64))
    inclusive = torch.cumsum(log_one_minus, 0)
    exclusive = inclusive - log_one_minus
    with torch.no_grad():
        seg_start = torch.ones_like(pixel, dtype=torch.bool)
        seg_start[1:] = pixel[1:] != pixel[:-1]
        seg_id = torch.cumsum(seg_start.long(), 0) - 1
        start_index = torch.nonzero(seg_start).squeeze(-1)
    log_T = exclusive - exclusive.index_select(0, start_index).index_select(0, seg_id)
    with torch.no_grad():
        alive = (log_T + log_one_minus) > math.log(TRANSMITTANCE_MIN)
    weight = (torch.exp(log_T).to(alpha.dtype) * alpha) * alive

    n_pix = C * height * width
    alphas = torch.zeros(n_pix, dtype=means.dtype, device=means.device).index_add(0, pixel, weight)
    channels = []
    if render_mode in ("RGB", "RGB+D", "RGB+ED"):
        feats = colors.reshape(C * N, -1).index_select(0, flat)
        channels.append(torch.zeros(n_pix, feats.shape[-1], dtype=feats.dtype, device=feats.device).index_add(0, pixel, weight[:, None] * feats))
    if render_mode != "RGB":
        acc_depth = torch.zeros(n_pix, dtype=means.dtype, device=means.device).index_add(0, pixel, weight * depths.reshape(-1).index_select(0, flat))
        if render_mode.endswith("ED"):
            acc_depth = acc_depth / alphas.clamp_min(1e-10)
        channels.append(acc_depth[:, None])
    render = torch.cat(channels, -1).reshape(C, height, width, -1)
    alphas = alphas.reshape(C, height, width, 1)
    if backgrounds is not None and render_mode in ("RGB", "RGB+D", "RGB+ED"):
        D = colors.shape[-1]
        if backgrounds.shape != (C, D):
            raise ValueError(f"backgrounds must be [C, {D}] = [{C}, {D}] (the colour channels, as gsplat), got {tuple(backgrounds.shape)}")
        padded = F.pad(backgrounds, (0, render.shape[-1] - D))  # depth's background is 0, as in gsplat
        render = render + (1.0 - alphas) * padded[:, None, None, :]
    meta = {
        "means2d": means2d,
        "radii": radii,
        "depths": depths,
        "conics": conics,
        "width": width,
        "height": height,
        "n_cameras": C,
        "gaussian_ids": None,
        "n_pairs": int(alpha.shape[0]),
    }
    return render, alphas, meta
