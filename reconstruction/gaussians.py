"""Per-Gaussian parameters (INRIA 3DGS parameterisation) and their activations.

Parameters live in a ``torch.nn.ParameterDict`` (gsplat's convention, so densification can
replace rows and the matching Adam state):

- ``means`` [N, 3] float32, world units;
- ``scales`` [N, 3] log standard deviations;
- ``quats`` [N, 4] (w, x, y, z), unnormalised;
- ``opacities`` [N] logits;
- ``sh0`` [N, 3] degree-0 spherical-harmonic coefficients: RGB = 0.5 + SH_C0 * sh0;
- ``shN`` [N, (d + 1)^2 - 1, 3] the higher SH bands up to degree d (only when d > 0; zeros at
  first), in gsplat's (and INRIA's) basis order.

The deformation field is a separate module (reconstruction/deformation.py) with its own
optimiser; nothing per-Gaussian lives in it.
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
#: The parameters every run has; ``shN`` is added for SH degree > 0.
PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0")


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """Degree-0 SH coefficients [..., 3] for colours [..., 3] in [0, 1]."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Colours [..., 3] (clamped at 0, as gsplat clamps SH colours) from SH coefficients [..., 3]."""
    return torch.clamp_min(sh0 * SH_C0 + 0.5, 0.0)


def nearest_neighbour_distance(points: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Mean distance [N] from each point [N, 3] to its k nearest other points (INRIA's initial scale)."""
    n = points.shape[0]
    if n <= 1:
        return torch.ones(n, dtype=points.dtype, device=points.device)
    k = min(k, n - 1)
    out = []
    for start in range(0, n, chunk):
        d = torch.cdist(points[start : start + chunk], points)
        out.append(d.topk(k + 1, largest=False).values[:, 1:].mean(-1))
    return torch.cat(out)


def n_sh_rest(sh_degree: int) -> int:
    """Coefficients per colour channel above degree 0 up to ``sh_degree``: (d + 1)^2 - 1."""
    return (sh_degree + 1) ** 2 - 1


def create_params(points: torch.Tensor, rgb: torch.Tensor, opacity: float = 0.1, sh_degree: int = 0) -> torch.nn.ParameterDict:
    """Gaussians at ``points`` [N, 3] with colours ``rgb`` [N, 3] in [0, 1].

    Isotropic scales start at the mean distance to the 3 nearest neighbours, rotations at
    identity, opacities at ``opacity`` and the higher SH bands (``sh_degree`` > 0) at zero, as
    in INRIA 3DGS.
    """
    n = points.shape[0]
    scale = nearest_neighbour_distance(points).clamp_min(1e-4)
    quats = torch.zeros(n, 4, dtype=points.dtype, device=points.device)
    quats[:, 0] = 1.0
    params = torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(points.clone()),
            "scales": torch.nn.Parameter(torch.log(scale)[:, None].repeat(1, 3)),
            "quats": torch.nn.Parameter(quats),
            "opacities": torch.nn.Parameter(torch.logit(torch.full((n,), opacity, dtype=points.dtype, device=points.device))),
            "sh0": torch.nn.Parameter(rgb_to_sh0(rgb.clamp(0.0, 1.0))),
        }
    )
    if sh_degree > 0:
        params["shN"] = torch.nn.Parameter(torch.zeros(n, n_sh_rest(sh_degree), 3, dtype=points.dtype, device=points.device))
    return params
