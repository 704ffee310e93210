"""Pick a rasterization backend. Both have the same signature (``rasterize_torch.rasterization``).

- ``torch``: the pure-PyTorch reference (any device, CPU included).
- ``gsplat``: gsplat's CUDA kernels (needs CUDA and ``pip install gsplat``); imported only
  when selected.
- ``auto``: gsplat when the device is CUDA and gsplat imports, otherwise torch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from d4d.reconstruction.config import BACKENDS


def gsplat_available() -> bool:
    """True when gsplat imports (it is an optional dependency: ``pip install d4d[cuda]``)."""
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The concrete backend ("torch" or "gsplat") for a request and a device; raises ValueError with the reason."""
    device = torch.device(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    if backend == "gsplat":
        if device.type != "cuda":
            raise ValueError(f"backend 'gsplat' needs a CUDA device, got device {str(device)!r}; use --backend torch")
        if not gsplat_available():
            raise ValueError("backend 'gsplat' selected but gsplat is not installed: pip install 'd4d[cuda]' (gsplat==1.5.3)")
    return backend


def get_rasterizer(backend: str) -> Callable:
    """The ``rasterization`` function of a concrete backend ("torch" or "gsplat")."""
    if backend == "torch":
        from d4d.reconstruction.rasterize_torch import rasterization

        return rasterization
    if backend == "gsplat":
        from d4d.reconstruction.rasterize_gsplat import rasterization

        return rasterization
    raise ValueError(f"backend must be 'torch' or 'gsplat' here, got {backend!r}")
