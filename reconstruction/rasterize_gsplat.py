"""gsplat's CUDA rasterizer behind the signature of ``rasterize_torch.rasterization``.

Imported only when the gsplat backend is selected (gsplat is an optional, CUDA-only
dependency pinned to 1.5.3 in pyproject's ``cuda`` extra). d4d uses only
``gsplat.rasterization``; densification is d4d's own (reconstruction/strategy.py), so the
opacity-reset bug of gsplat 1.5.3's ``DefaultStrategy`` (a bitwise ``&`` in the reset
condition that stops opacity resets, gsplat PR #776 / issue #797) does not affect d4d.
Anyone using gsplat's own strategy with this pin should use gsplat 1.5.2 or apply PR #776.
"""

from __future__ import annotations

import torch

try:
    from gsplat import rasterization as _gsplat_rasterization
except ImportError as exc:  # pragma: no cover - exercised only without gsplat
    raise ImportError("d4d.reconstruction.rasterize_gsplat needs gsplat: pip install 'd4d[cuda]' (gsplat==1.5.3, CUDA)") from exc


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
    """Same arguments and returns as ``reconstruction.rasterize_torch.rasterization``.

    Calls gsplat unpacked (``packed=False``) so ``meta["means2d"]`` is [C, N, 2] and
    ``meta["radii"]`` [C, N, 2], the layout d4d's densification reads.
    """
    render, alphas, meta = _gsplat_rasterization(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        near_plane=near_plane,
        far_plane=far_plane,
        radius_clip=radius_clip,
        eps2d=eps2d,
        backgrounds=backgrounds,
        render_mode=render_mode,
        sh_degree=sh_degree,
        packed=False,
        rasterize_mode="classic",
    )
    meta["n_cameras"] = viewmats.shape[0]
    return render, alphas, meta
