"""Coarse-to-fine fitting of 4D Gaussians (canonical Gaussians + HexPlane deformation) to orbit views.

Coarse stage: static Gaussians (no deformation) fit ``config.coarse_videos`` (the paper: the
static orbit at time 0 together with the dynamic orbit). Fine stage: the deformation field
is switched on and learnt jointly with the Gaussians on ``config.fine_videos`` (the paper:
the dynamic orbit alone), with the HexPlane regularisers. Densification runs across both
stages, counting steps globally. Held-out views never enter training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from d4d.reconstruction.config import ReconstructConfig
from d4d.reconstruction.deformation import DeformationField
from d4d.reconstruction.gaussians import create_params, sh0_to_rgb
from d4d.reconstruction.initialize import initial_points
from d4d.reconstruction.losses import photometric_loss, psnr, ssim
from d4d.reconstruction.rasterize import get_rasterizer, resolve_backend
from d4d.reconstruction.strategy import DensifyStrategy
from d4d.reconstruction.views import Views, split_views

log = logging.getLogger(__name__)


@dataclass
class GaussianState:
    """Gaussians at one time, raw: means [N, 3], quats [N, 4] (w, x, y, z, unnormalised),
    log_scales [N, 3], opacity_logits [N], sh0 [N, 3]; the properties give the activated
    scales, opacities in [0, 1] and RGB colours that the rasterizers take."""

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh0: torch.Tensor

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> torch.Tensor:
        return sh0_to_rgb(self.sh0)


def gaussians_at(params: torch.nn.ParameterDict, deformation: DeformationField | None, t: float) -> GaussianState:
    """The Gaussians at time ``t`` in [0, 1]; ``deformation`` None gives the canonical (static) ones."""
    means, log_scales, quats = params["means"], params["scales"], params["quats"]
    if deformation is not None:
        times = torch.full((means.shape[0],), float(t), device=means.device, dtype=means.dtype)
        means, log_scales, quats = deformation(means, log_scales, quats, times)
    return GaussianState(means, quats, log_scales, params["opacities"], params["sh0"])


def composite(rgba: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3] of straight-alpha RGBA [..., 4] over a background colour [3]."""
    return rgba[..., :3] * rgba[..., 3:] + background * (1.0 - rgba[..., 3:])


@dataclass
class Reconstruction:
    """A fitted 4D scene and how it was obtained.

    Attributes:
        params: canonical Gaussians (see reconstruction/gaussians.py).
        deformation: the deformation field (None when no fine step ran).
        config: the run's configuration.
        backend: the rasterizer used ("torch" or "gsplat").
        heldout: held-out views (dynamic-orbit frames never trained on).
        history: [{"step", "train_seconds", "psnr", "ssim"}] held-out evaluations during
            training (every ``eval_every`` steps; train_seconds excludes evaluation time).
        timings: seconds per stage ("init", "coarse", "fine").
    """

    params: torch.nn.ParameterDict
    deformation: DeformationField | None
    config: ReconstructConfig
    backend: str
    heldout: Views
    history: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, times: torch.Tensor, width: int, height: int, background) -> torch.Tensor:
        """RGB renders [V, H, W, 3] in [0, 1] of V cameras (viewmats [V, 4, 4], Ks [V, 3, 3]) at times [V]."""
        rasterize = get_rasterizer(self.backend)
        device = self.params["means"].device
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)[None]
        out = []
        with torch.no_grad():
            for viewmat, K, t in zip(viewmats.to(device), Ks.to(device), times.tolist()):
                g = gaussians_at(self.params, self.deformation, t)
                image, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, viewmat[None], K[None], width, height, backgrounds=bg)
                out.append(image[0].clamp(0.0, 1.0))
        return torch.stack(out)

    def evaluate(self, views: Views | None = None) -> dict:
        """PSNR / SSIM per held-out view (over ``config.eval_background``) and their means."""
        views = self.heldout if views is None else views
        H, W = views.rgba.shape[1:3]
        background = torch.tensor(self.config.eval_background, dtype=torch.float32)
        renders = self.render(views.viewmats, views.Ks, views.times, W, H, background).cpu()
        target = composite(views.rgba.cpu(), background)
        p, s = psnr(renders, target), ssim(renders, target)
        per_view = [
            {"video": v, "index": i, "time": round(float(t), 6), "psnr": float(a), "ssim": float(b)}
            for v, i, t, a, b in zip(views.videos, views.indices, views.times.tolist(), p, s)
        ]
        return {"psnr": float(p.mean()), "ssim": float(s.mean()), "views": per_view}


def _adam(params: torch.nn.ParameterDict, config: ReconstructConfig) -> dict[str, torch.optim.Optimizer]:
    rates = {"means": config.lr_means, "scales": config.lr_scales, "quats": config.lr_quats, "opacities": config.lr_opacities, "sh0": config.lr_colors}
    return {name: torch.optim.Adam([params[name]], lr=rates[name], eps=1e-15) for name in params.keys()}


def _deformation_adam(deformation: DeformationField, config: ReconstructConfig) -> torch.optim.Optimizer:
    grid = list(deformation.grid.parameters())
    grid_ids = {id(p) for p in grid}
    mlp = [p for p in deformation.parameters() if id(p) not in grid_ids]
    return torch.optim.Adam([{"params": grid, "lr": config.deformation.lr_grid, "name": "grid"}, {"params": mlp, "lr": config.deformation.lr_mlp, "name": "mlp"}], eps=1e-15)


def _decay(lr0: float, progress: float, final_ratio: float = 0.01) -> float:
    """Exponential decay from lr0 to lr0 * final_ratio as progress goes 0 -> 1."""
    return lr0 * final_ratio ** min(max(progress, 0.0), 1.0)


def reconstruct(
    views: Views,
    config: ReconstructConfig,
    device: str | torch.device = "cpu",
    backend: str = "auto",
    eval_every: int = 0,
) -> Reconstruction:
    """Fit canonical Gaussians and a deformation field to ``views`` (all videos, all frames).

    Args:
        views: every view of the input (see views_from_sample); held-out ones are split off
            here by ``config.holdout_every`` / ``holdout_offset``.
        config: hyperparameters.
        device: torch device.
        backend: "auto", "torch" or "gsplat" (reconstruction/rasterize.py).
        eval_every: evaluate on held-out views every this many steps into ``history``
            (0: never; the final evaluation is the caller's).
    """
    device = torch.device(device)
    backend = resolve_backend(backend, device)
    rasterize = get_rasterizer(backend)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    t_start = time.perf_counter()

    train_idx, held_idx = split_views(views, config.holdout_every, config.holdout_offset)
    train, heldout = views.subset(train_idx), views.subset(held_idx)
    heldout = heldout.subset([i for i, v in enumerate(heldout.videos) if v == "dynamic"]) if "dynamic" in heldout.videos else heldout
    coarse_ids = [i for i, v in enumerate(train.videos) if v in config.coarse_videos] or list(range(len(train)))
    fine_ids = [i for i, v in enumerate(train.videos) if v in config.fine_videos] or list(range(len(train)))
    H, W = train.rgba.shape[1:3]
    log.info("%d training views (%d coarse, %d fine), %d held out, %dx%d, backend %s on %s", len(train), len(coarse_ids), len(fine_ids), len(heldout), W, H, backend, device)

    carve = train.subset([i for i, v in enumerate(train.videos) if v == "static"] or list(range(len(train))))
    min_fraction = config.hull_min_fraction if "static" in carve.videos else min(config.hull_min_fraction, 0.75)
    points, rgb = initial_points(config.init, config.n_init, carve.rgba, carve.viewmats, carve.Ks, config.hull_resolution, min_fraction, generator)
    params = create_params(points, rgb).to(device)
    optimizers = _adam(params, config)
    deformation = DeformationField(config.deformation).to(device) if config.iterations > 0 else None
    deformation_opt = _deformation_adam(deformation, config) if deformation is not None else None
    camera_centres = torch.linalg.inv(train.viewmats)[:, :3, 3]
    strategy = DensifyStrategy(config.densify)
    state = strategy.initialize_state(len(points), scene_scale=1.1 * float(camera_centres.norm(dim=-1).max()), device=device)
    train = train.to(device)
    eval_background = torch.tensor(config.eval_background, dtype=torch.float32, device=device)
    timings = {"init": time.perf_counter() - t_start}
    result = Reconstruction(params, deformation, config, backend, heldout, timings=timings)

    total = config.coarse_iterations + config.iterations
    train_seconds = 0.0
    for stage, steps, ids in (("coarse", config.coarse_iterations, coarse_ids), ("fine", config.iterations, fine_ids)):
        stage_start = time.perf_counter()
        order = []
        for k in range(steps):
            step = (0 if stage == "coarse" else config.coarse_iterations) + k + 1
            tick = time.perf_counter()
            if not order:
                order = list(rng.permutation(ids))
            v = int(order.pop())
            background = torch.rand(3, device=device) if config.random_background else eval_background
            target = composite(train.rgba[v], background)[None]
            g = gaussians_at(params, deformation if stage == "fine" else None, float(train.times[v]))
            render, _, info = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, train.viewmats[v : v + 1], train.Ks[v : v + 1], W, H, backgrounds=background[None])
            strategy.step_pre_backward(info)
            loss = photometric_loss(render, target, config.lambda_dssim)
            if stage == "fine":
                regs = deformation.grid.regularisers()
                dcfg = config.deformation
                loss = loss + dcfg.plane_tv_weight * regs["plane_tv"] + dcfg.time_smoothness_weight * regs["time_smoothness"] + dcfg.l1_time_planes_weight * regs["l1_time_planes"]
            loss.backward()
            strategy.step_post_backward(params, optimizers, state, step, info, generator)
            optimizers["means"].param_groups[0]["lr"] = _decay(config.lr_means, step / total)
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            if stage == "fine":
                for group in deformation_opt.param_groups:
                    base = config.deformation.lr_grid if group["name"] == "grid" else config.deformation.lr_mlp
                    group["lr"] = _decay(base, k / max(steps, 1))
                deformation_opt.step()
                deformation_opt.zero_grad(set_to_none=True)
            train_seconds += time.perf_counter() - tick
            if config.log_every and step % config.log_every == 0:
                log.info("%s step %d/%d: loss %.4f, %d Gaussians, %.1f s", stage, step, total, loss.item(), len(params["means"]), train_seconds)
            if eval_every and step % eval_every == 0:
                if stage == "coarse":
                    result.deformation = None
                metrics = result.evaluate()
                result.deformation = deformation
                result.history.append({"step": step, "stage": stage, "train_seconds": train_seconds, "psnr": metrics["psnr"], "ssim": metrics["ssim"]})
                log.info("step %d: held-out PSNR %.2f dB, SSIM %.4f", step, metrics["psnr"], metrics["ssim"])
        timings[stage] = time.perf_counter() - stage_start
    return result
