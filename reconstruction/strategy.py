"""Adaptive density control with gsplat ``DefaultStrategy`` semantics, in plain PyTorch (CPU or CUDA).

Hooks around each step, as in gsplat: ``step_pre_backward`` keeps the gradient of the
rasterizer's ``means2d``; ``step_post_backward`` accumulates its norm per Gaussian (in
[-1, 1] screen units) and, every ``refine_every`` steps inside
[refine_start_iter, refine_stop_iter): clones small high-gradient Gaussians, splits large
ones into two samples of themselves with scales / 1.6, prunes those under ``prune_opa``
(and, after the first opacity reset, the oversized), then clears the statistics; every
``reset_every`` steps it clamps opacities to ``2 * prune_opa``. Running statistics live in a
state dict; parameters and their Adam moments are edited row-wise together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from d4d.reconstruction.config import DensifyConfig
from d4d.reconstruction.rasterize_torch import quat_to_rotmat

log = logging.getLogger(__name__)


def _edit_rows(params: torch.nn.ParameterDict, optimizers: dict, fn_param, fn_state) -> None:
    """Replace every parameter by ``fn_param(name, p)`` and each Adam moment by ``fn_state(name, m)``."""
    for name in list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(fn_param(name, old.data))
        optimizer = optimizers[name]
        state = optimizer.state.pop(old, None)
        if state is not None:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = fn_state(name, state[key])
            optimizer.state[new] = state
        optimizer.param_groups[0]["params"] = [new]
        params[name] = new


def duplicate(params, optimizers, mask: torch.Tensor) -> None:
    """Append a copy of the Gaussians selected by ``mask`` [N] (new Adam moments are zero)."""
    idx = torch.nonzero(mask).squeeze(-1)
    _edit_rows(params, optimizers, lambda n, p: torch.cat([p, p[idx]]), lambda n, m: torch.cat([m, torch.zeros_like(m[idx])]))


def split(params, optimizers, mask: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Replace each Gaussian selected by ``mask`` [N] with two drawn from it, scales divided by 1.6."""
    idx = torch.nonzero(mask).squeeze(-1)
    keep = torch.nonzero(~mask).squeeze(-1)
    scales = torch.exp(params["scales"].data[idx])
    rot = quat_to_rotmat(params["quats"].data[idx])
    noise = torch.randn(2, len(idx), 3, generator=generator, device=scales.device, dtype=scales.dtype)
    offsets = torch.einsum("nij,bnj->bni", rot, scales[None] * noise).reshape(-1, 3)

    def new_param(name: str, p: torch.Tensor) -> torch.Tensor:
        if name == "means":
            fresh = p[idx].repeat(2, 1) + offsets
        elif name == "scales":
            fresh = torch.log(scales / 1.6).repeat(2, 1)
        else:
            fresh = p[idx].repeat(2, *[1] * (p.dim() - 1))
        return torch.cat([p[keep], fresh])

    _edit_rows(params, optimizers, new_param, lambda n, m: torch.cat([m[keep], torch.zeros_like(m[idx]).repeat(2, *[1] * (m.dim() - 1))]))


def remove(params, optimizers, mask: torch.Tensor) -> None:
    """Drop the Gaussians selected by ``mask`` [N] with their Adam moments."""
    keep = torch.nonzero(~mask).squeeze(-1)
    _edit_rows(params, optimizers, lambda n, p: p[keep], lambda n, m: m[keep])


def reset_opacity(params, optimizers, value: float) -> None:
    """Clamp every opacity to at most ``value`` and zero the opacity Adam moments."""
    limit = torch.logit(torch.tensor(value)).item()

    def new_param(name: str, p: torch.Tensor) -> torch.Tensor:
        return p.clamp_max(limit) if name == "opacities" else p

    def new_state(name: str, m: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(m) if name == "opacities" else m

    _edit_rows(params, optimizers, new_param, new_state)


@dataclass
class DensifyStrategy:
    """gsplat-style strategy object; ``config`` holds the thresholds (see DensifyConfig)."""

    config: DensifyConfig

    def initialize_state(self, n: int, scene_scale: float = 1.0, device: torch.device | str = "cpu") -> dict:
        """Running statistics: grad2d [N] (summed gradient norms), count [N] (visible steps)."""
        return {"grad2d": torch.zeros(n, device=device), "count": torch.zeros(n, device=device), "scene_scale": scene_scale}

    def step_pre_backward(self, info: dict) -> None:
        info["means2d"].retain_grad()

    def step_post_backward(self, params, optimizers, state: dict, step: int, info: dict, generator: torch.Generator | None = None) -> None:
        cfg = self.config
        if step >= cfg.refine_stop_iter:
            return
        grads = info["means2d"].grad.detach().clone()  # [C, N, 2]
        grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
        grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        visible = (info["radii"] > 0).all(-1)  # [C, N]
        gs_ids = torch.nonzero(visible)[:, 1]
        state["grad2d"].index_add_(0, gs_ids, grads[visible].norm(dim=-1))
        state["count"].index_add_(0, gs_ids, torch.ones_like(gs_ids, dtype=state["count"].dtype))

        if step > cfg.refine_start_iter and step % cfg.refine_every == 0:
            with torch.no_grad():
                n_dupli, n_split = self._grow(params, optimizers, state, generator)
                n_prune = self._prune(params, optimizers, state, step)
            log.debug("step %d: %d cloned, %d split, %d pruned, %d Gaussians", step, n_dupli, n_split, n_prune, len(params["means"]))
            n = len(params["means"])
            state["grad2d"] = torch.zeros(n, device=state["grad2d"].device)
            state["count"] = torch.zeros(n, device=state["count"].device)
        if cfg.reset_every > 0 and step > 0 and step % cfg.reset_every == 0:
            with torch.no_grad():
                reset_opacity(params, optimizers, cfg.prune_opa * 2.0)

    def _grow(self, params, optimizers, state: dict, generator) -> tuple[int, int]:
        cfg = self.config
        grads = state["grad2d"] / state["count"].clamp_min(1)
        high = grads > cfg.grow_grad2d
        room = cfg.max_gaussians - len(params["means"])
        if room <= 0:
            return 0, 0
        if int(high.sum()) > room:  # keep the highest gradients that fit (a split adds one net Gaussian)
            threshold = grads.topk(room).values[-1]
            high = high & (grads >= threshold)
        small = torch.exp(params["scales"]).amax(-1) <= cfg.grow_scale3d * state["scene_scale"]
        is_dupli = high & small
        is_split = high & ~small
        n_dupli, n_split = int(is_dupli.sum()), int(is_split.sum())
        if n_dupli:
            duplicate(params, optimizers, is_dupli)
        if n_split:
            is_split = torch.cat([is_split, torch.zeros(n_dupli, dtype=torch.bool, device=is_split.device)])
            split(params, optimizers, is_split, generator)
        return n_dupli, n_split

    def _prune(self, params, optimizers, state: dict, step: int) -> int:
        cfg = self.config
        prune = torch.sigmoid(params["opacities"]) < cfg.prune_opa
        if cfg.reset_every > 0 and step > cfg.reset_every:
            prune |= torch.exp(params["scales"]).amax(-1) > cfg.prune_scale3d * state["scene_scale"]
        n = int(prune.sum())
        if n:
            remove(params, optimizers, prune)
        return n
