"""Coarse-to-fine fitting of 4D Gaussians (canonical Gaussians + HexPlane deformation) to orbit views.

Coarse stage: static Gaussians (no deformation) fit ``config.coarse_videos`` (the paper: the
static orbit at time 0 together with the dynamic orbit). Fine stage: the deformation field
is switched on and learnt jointly with the Gaussians on ``config.fine_videos`` (the paper:
the dynamic orbit alone), with the HexPlane regularisers. Densification runs across both
stages, counting steps globally. Held-out views never enter training.

Every random draw (initial points, view order, backgrounds, split samples) comes from one
``torch.Generator`` whose state is checkpointed with the parameters, the optimisers and the
densification statistics (``TrainState``), so a run resumed from a checkpoint takes exactly
the steps an uninterrupted run would.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from d4d.reconstruction.checkpoint import load_checkpoint, run_identity, save_checkpoint
from d4d.reconstruction.config import ReconstructConfig
from d4d.reconstruction.deformation import DeformationField
from d4d.reconstruction.gaussians import create_params, sh0_to_rgb
from d4d.reconstruction.initialize import initial_points
from d4d.reconstruction.losses import depth_smoothness, loss_description, lpips_loss, lpips_network, photometric_loss, psnr, ssim
from d4d.reconstruction.progress import Progress
from d4d.reconstruction.rasterize import get_rasterizer, resolve_backend
from d4d.reconstruction.strategy import DensifyStrategy
from d4d.reconstruction.views import Views, split_views

log = logging.getLogger("d4d.reconstruction")


@dataclass
class GaussianState:
    """Gaussians at one time, raw: means [N, 3], quats [N, 4] (w, x, y, z, unnormalised),
    log_scales [N, 3], opacity_logits [N], sh0 [N, 3], shN [N, K - 1, 3] or None (degree 0);
    the properties give the activated scales, opacities in [0, 1] and the degree-0 RGB colours."""

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh0: torch.Tensor
    shN: torch.Tensor | None = None

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> torch.Tensor:
        return sh0_to_rgb(self.sh0)

    def colour_args(self, sh_degree: int) -> dict:
        """The rasterizer's ``colors`` and ``sh_degree`` arguments: RGB [N, 3] at degree 0, else
        the SH coefficients [N, K, 3] evaluated up to ``sh_degree``."""
        if sh_degree == 0 or self.shN is None:
            return {"colors": self.colors, "sh_degree": None}
        return {"colors": torch.cat([self.sh0[:, None], self.shN], 1), "sh_degree": sh_degree}


def gaussians_at(params: torch.nn.ParameterDict, deformation: DeformationField | None, t: float) -> GaussianState:
    """The Gaussians at time ``t`` in [0, 1]; ``deformation`` None gives the canonical (static) ones."""
    means, log_scales, quats = params["means"], params["scales"], params["quats"]
    if deformation is not None:
        times = torch.full((means.shape[0],), float(t), device=means.device, dtype=means.dtype)
        means, log_scales, quats = deformation(means, log_scales, quats, times)
    return GaussianState(means, quats, log_scales, params["opacities"], params["sh0"], params["shN"] if "shN" in params else None)


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
        heldout: held-out views (dynamic-orbit frames never trained on; empty with ``holdout_every`` 0).
        eval_views: the views metrics are taken on: ``heldout``, or with nothing held out the
            dynamic orbit's (training) views.
        eval_split: "heldout" or "training", which of the two ``eval_views`` are.
        history: [{"step", "stage", "train_seconds", "psnr", "ssim", "lpips"}] evaluations on
            ``eval_views`` during training (every ``eval_every`` steps; train_seconds excludes
            evaluation time).
        timings: seconds per stage ("init", "coarse", "fine"; a resumed run adds its time) and
            of the evaluations inside the stages ("eval", with ``eval_every``).
        resumed_from: the step a checkpoint restored (0 for a fresh run).
        lpips: the LPIPS network of ``config.lpips_weights`` (None without), for the loss and the metrics.
        losses: the loss trained with (``losses.loss_description``).
    """

    params: torch.nn.ParameterDict
    deformation: DeformationField | None
    config: ReconstructConfig
    backend: str
    heldout: Views
    eval_views: Views
    eval_split: str
    history: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    resumed_from: int = 0
    lpips: torch.nn.Module | None = None
    losses: dict = field(default_factory=dict)

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, times: torch.Tensor, width: int, height: int, background) -> torch.Tensor:
        """RGB renders [V, H, W, 3] in [0, 1] of V cameras (viewmats [V, 4, 4], Ks [V, 3, 3]) at times [V]."""
        rasterize = get_rasterizer(self.backend)
        device = self.params["means"].device
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)[None]
        out = []
        with torch.no_grad():
            for viewmat, K, t in zip(viewmats.to(device), Ks.to(device), times.tolist()):
                g = gaussians_at(self.params, self.deformation, t)
                image, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, viewmats=viewmat[None], Ks=K[None], width=width, height=height,
                                        backgrounds=bg, **g.colour_args(self.config.sh_degree))
                out.append(image[0].clamp(0.0, 1.0))
        return torch.stack(out)

    def evaluate(self, views: Views | None = None) -> dict:
        """PSNR / SSIM (and LPIPS with ``lpips``; else None) per view of ``views`` (default
        ``eval_views``) over ``config.eval_background``, and their means."""
        views = self.eval_views if views is None else views
        H, W = views.rgba.shape[1:3]
        background = torch.tensor(self.config.eval_background, dtype=torch.float32)
        renders = self.render(views.viewmats, views.Ks, views.times, W, H, background).cpu()
        target = composite(views.rgba.cpu(), background)
        p, s = psnr(renders, target), ssim(renders, target)
        lp = [None] * len(p)
        if self.lpips is not None:
            device = next(self.lpips.parameters()).device
            with torch.no_grad():
                lp = [float(lpips_loss(self.lpips, a[None].to(device), b[None].to(device))) for a, b in zip(renders, target)]
        per_view = [
            {"video": v, "index": i, "time": round(float(t), 6), "psnr": float(a), "ssim": float(b), "lpips": c}
            for v, i, t, a, b, c in zip(views.videos, views.indices, views.times.tolist(), p, s, lp)
        ]
        mean_lpips = sum(lp) / len(lp) if self.lpips is not None and lp else None
        return {"psnr": float(p.mean()), "ssim": float(s.mean()), "lpips": mean_lpips, "views": per_view}


def _decay(lr0: float, progress: float, final_ratio: float) -> float:
    """Exponential decay from lr0 to lr0 * final_ratio as progress goes 0 -> 1 (held there after 1)."""
    return lr0 * final_ratio ** min(max(progress, 0.0), 1.0)


def lr_scale(config: ReconstructConfig, scene_scale: float) -> float:
    """The factor on the rates of the centres and of the deformation field: the scene scale with ``lr_scene_scale``, else 1."""
    return scene_scale if config.lr_scene_scale else 1.0


def means_lr(config: ReconstructConfig, step: int, stage_first: int, scale: float) -> float:
    """Rate of the centres at global step ``step`` (1-based) of a stage that began after step ``stage_first``."""
    if config.lr_means_decay_steps:
        progress = (step - stage_first) / config.lr_means_decay_steps
    else:
        progress = step / (config.coarse_iterations + config.iterations)
    return _decay(config.lr_means * scale, progress, config.lr_means_decay)


def deformation_lrs(config: ReconstructConfig, k: int, scale: float) -> dict[str, float]:
    """Rates {"grid", "mlp"} of the deformation field at fine step ``k`` (0-based)."""
    dcfg = config.deformation
    progress = k / (dcfg.lr_decay_steps or max(config.iterations, 1))
    return {"grid": _decay(dcfg.lr_grid * scale, progress, dcfg.lr_decay), "mlp": _decay(dcfg.lr_mlp * scale, progress, dcfg.lr_decay)}


def active_sh_degree(config: ReconstructConfig, step: int) -> int:
    """SH degree trained at global step ``step`` (1-based): one more every ``sh_degree_interval`` steps, up to ``sh_degree``."""
    return min(config.sh_degree, (step - 1) // config.sh_degree_interval)


@dataclass
class TrainState:
    """Everything that changes while training; ``state_dict`` / ``load_state_dict`` make it resumable.

    Attributes:
        params: per-Gaussian parameters (reconstruction/gaussians.py), rows change with densification.
        optimizers: one Adam per entry of ``params``.
        deformation, deformation_opt: the field and its Adam (None without a fine stage).
        densify: the densification statistics (``DensifyStrategy.initialize_state``).
        generator: the run's only source of randomness (CPU).
        step: steps done, counted over both stages.
        order: view positions still to visit in the current pass over the stage's views.
        train_seconds: training time so far (evaluations excluded).
        history, timings: see Reconstruction.
    """

    params: torch.nn.ParameterDict
    optimizers: dict[str, torch.optim.Optimizer]
    deformation: DeformationField | None
    deformation_opt: torch.optim.Optimizer | None
    densify: dict
    generator: torch.Generator
    step: int = 0
    order: list[int] = field(default_factory=list)
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @classmethod
    def create(cls, params: torch.nn.ParameterDict, config: ReconstructConfig, densify: dict, generator: torch.Generator, scale: float = 1.0) -> TrainState:
        """A fresh state; ``scale`` multiplies the rates of the centres and the deformation field (``lr_scale``)."""
        rates = {"means": config.lr_means * scale, "scales": config.lr_scales, "quats": config.lr_quats, "opacities": config.lr_opacities,
                 "sh0": config.lr_colors, "shN": config.lr_sh_rest}
        optimizers = {name: torch.optim.Adam([params[name]], lr=rates[name], eps=1e-15) for name in params}
        deformation = deformation_opt = None
        if config.iterations > 0:
            with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
                torch.manual_seed(config.seed)
                deformation = DeformationField(config.deformation).to(params["means"].device)
            grid = list(deformation.grid.parameters())
            grid_ids = {id(p) for p in grid}
            mlp = [p for p in deformation.parameters() if id(p) not in grid_ids]
            deformation_opt = torch.optim.Adam(
                [{"params": grid, "lr": config.deformation.lr_grid * scale, "name": "grid"}, {"params": mlp, "lr": config.deformation.lr_mlp * scale, "name": "mlp"}],
                eps=1e-15,
            )
        return cls(params, optimizers, deformation, deformation_opt, densify, generator)

    def state_dict(self) -> dict:
        return {
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "deformation": None if self.deformation is None else self.deformation.state_dict(),
            "deformation_opt": None if self.deformation_opt is None else self.deformation_opt.state_dict(),
            "densify": self.densify,
            "generator": self.generator.get_state(),
            "step": self.step,
            "order": list(self.order),
            "train_seconds": self.train_seconds,
            "history": self.history,
            "timings": self.timings,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` into this state (built by ``create`` with the same config)."""
        device = self.params["means"].device
        for name in list(self.params):
            self.params[name] = torch.nn.Parameter(state["params"][name].to(device))
            self.optimizers[name].param_groups[0]["params"] = [self.params[name]]
            self.optimizers[name].load_state_dict(state["optimizers"][name])
        if self.deformation is not None:
            self.deformation.load_state_dict(state["deformation"])
            self.deformation_opt.load_state_dict(state["deformation_opt"])
        self.densify = {k: v.to(device) if torch.is_tensor(v) else v for k, v in state["densify"].items()}
        self.generator.set_state(state["generator"])
        self.step, self.order, self.train_seconds = state["step"], list(state["order"]), state["train_seconds"]
        self.history, self.timings = list(state["history"]), dict(state["timings"])


def _stages(config: ReconstructConfig, coarse_ids: list[int], fine_ids: list[int]) -> list[tuple[str, int, int, list[int]]]:
    """(name, first global step, steps, view positions) of the coarse and the fine stage."""
    return [("coarse", 0, config.coarse_iterations, coarse_ids), ("fine", config.coarse_iterations, config.iterations, fine_ids)]


def reconstruct(
    views: Views,
    config: ReconstructConfig,
    device: str | torch.device = "cpu",
    backend: str = "auto",
    eval_every: int | None = None,
    checkpoint: Path | None = None,
) -> Reconstruction:
    """Fit canonical Gaussians and a deformation field to ``views`` (all videos, all frames).

    Args:
        views: every view of the input (see views_from_sample); held-out ones are split off
            here by ``config.holdout_every`` / ``holdout_offset``.
        config: hyperparameters.
        device: torch device.
        backend: "auto", "torch" or "gsplat" (reconstruction/rasterize.py).
        eval_every: evaluate on the evaluation views every this many steps into ``history``
            (0: never; None: ``config.history_points`` times, evenly over the run; the final
            evaluation is the caller's).
        checkpoint: file to save the training state to every ``config.checkpoint_every``
            steps; when it exists, training resumes from it (ValueError if it was written by
            a run with other settings or input).
    """
    device = torch.device(device)
    backend = resolve_backend(backend, device)
    total = config.coarse_iterations + config.iterations
    if eval_every is None:
        eval_every = -(-total // config.history_points) if config.history_points else 0
    rasterize = get_rasterizer(backend)
    generator = torch.Generator().manual_seed(config.seed)
    t_start = time.perf_counter()

    train_idx, held_idx = split_views(views, config.holdout_every, config.holdout_offset)
    train, heldout = views.subset(train_idx), views.subset(held_idx)
    heldout = heldout.subset([i for i, v in enumerate(heldout.videos) if v == "dynamic"]) if "dynamic" in heldout.videos else heldout
    if len(heldout):
        eval_views, eval_split = heldout, "heldout"
    else:
        eval_views, eval_split = train.subset([i for i, v in enumerate(train.videos) if v == "dynamic"] or list(range(len(train)))), "training"
    coarse_ids = [i for i, v in enumerate(train.videos) if v in config.coarse_videos] or list(range(len(train)))
    fine_ids = [i for i, v in enumerate(train.videos) if v in config.fine_videos] or list(range(len(train)))
    H, W = train.rgba.shape[1:3]
    log.info("%d training views (%d coarse, %d fine), %d held out, %dx%d, backend %s on %s", len(train), len(coarse_ids), len(fine_ids), len(heldout), W, H, backend, device)

    carve = train.subset([i for i, v in enumerate(train.videos) if v == "static"] or list(range(len(train))))
    min_fraction = config.hull_min_fraction if "static" in carve.videos else min(config.hull_min_fraction, 0.75)
    points, rgb = initial_points(config.init, config.n_init, carve.rgba, carve.viewmats, carve.Ks, config.hull_resolution, min_fraction, generator)
    camera_centres = torch.linalg.inv(train.viewmats)[:, :3, 3]
    strategy = DensifyStrategy(config.densify)
    scene_scale = 1.1 * float(camera_centres.norm(dim=-1).max())
    densify_state = strategy.initialize_state(len(points), scene_scale=scene_scale, device=device)
    scale = lr_scale(config, scene_scale)
    state = TrainState.create(create_params(points, rgb, sh_degree=config.sh_degree).to(device), config, densify_state, generator, scale)
    state.timings["init"] = time.perf_counter() - t_start

    identity = run_identity(config, views) if checkpoint is not None else None
    saved = load_checkpoint(checkpoint, identity) if checkpoint is not None else None
    resumed_from = 0
    if saved is not None:
        state.load_state_dict(saved)
        resumed_from = state.step
        log.info("resuming from %s at step %d of %d (%.0f s of training done)", checkpoint, state.step, config.coarse_iterations + config.iterations, state.train_seconds)

    train = train.to(device)
    eval_background = torch.tensor(config.eval_background, dtype=torch.float32, device=device)
    lpips_net = lpips_network(config.lpips_weights, device)
    losses = loss_description(config, lpips_net is not None)
    for why in losses["off"].values():
        log.warning("loss term off: %s", why)
    lpips_term = lpips_net if config.lambda_lpips and lpips_net is not None else None
    render_mode = "RGB+ED" if config.lambda_depth_smoothness else "RGB"
    result = Reconstruction(state.params, state.deformation, config, backend, heldout, eval_views, eval_split, resumed_from=resumed_from,
                            lpips=lpips_net, losses=losses)
    progress = Progress([(stage, steps) for stage, _, steps, _ in _stages(config, coarse_ids, fine_ids)], config.progress_every_s,
                        start_step=state.step, start_seconds=state.train_seconds)
    dcfg = config.deformation
    for stage, first, steps, ids in _stages(config, coarse_ids, fine_ids):
        if state.step >= first + steps:
            continue
        stage_start = time.perf_counter()
        deformation = state.deformation if stage == "fine" else None
        for k in range(state.step - first, steps):
            tick = time.perf_counter()
            step = first + k + 1
            if k == 0:
                state.order = []
            if not state.order:
                state.order = [ids[i] for i in torch.randperm(len(ids), generator=generator).tolist()]
            v = state.order.pop()
            background = torch.rand(3, generator=generator).to(device) if config.random_background else eval_background
            target = composite(train.rgba[v], background)[None]
            g = gaussians_at(state.params, deformation, float(train.times[v]))
            out, _, info = rasterize(g.means, g.quats, g.scales, g.opacities, viewmats=train.viewmats[v : v + 1], Ks=train.Ks[v : v + 1], width=W, height=H,
                                     backgrounds=background[None], render_mode=render_mode, **g.colour_args(active_sh_degree(config, step)))
            render = out[..., :3]
            strategy.step_pre_backward(info)
            loss = photometric_loss(render, target, config.lambda_dssim)
            if lpips_term is not None:
                loss = loss + config.lambda_lpips * lpips_loss(lpips_term, render, target)
            if config.lambda_depth_smoothness:
                loss = loss + config.lambda_depth_smoothness * depth_smoothness(out[..., 3], target, train.rgba[v : v + 1, ..., 3] > 0.5)
            if deformation is not None:
                regs = deformation.grid.regularisers()
                loss = loss + dcfg.plane_tv_weight * regs["plane_tv"] + dcfg.time_smoothness_weight * regs["time_smoothness"] + dcfg.l1_time_planes_weight * regs["l1_time_planes"]
            loss.backward()
            strategy.step_post_backward(state.params, state.optimizers, state.densify, step, info, generator)
            state.optimizers["means"].param_groups[0]["lr"] = means_lr(config, step, first, scale)
            for opt in state.optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            if deformation is not None:
                rates = deformation_lrs(config, k, scale)
                for group in state.deformation_opt.param_groups:
                    group["lr"] = rates[group["name"]]
                state.deformation_opt.step()
                state.deformation_opt.zero_grad(set_to_none=True)
            state.step = step
            state.train_seconds += time.perf_counter() - tick
            progress.update(step, loss.detach(), (render.detach() - target).square().mean(), len(state.params["means"]), state.train_seconds)
            if eval_every and step % eval_every == 0:
                eval_start = time.perf_counter()
                result.params, result.deformation = state.params, deformation
                metrics = result.evaluate()
                state.history.append({"step": step, "stage": stage, "train_seconds": state.train_seconds, "psnr": metrics["psnr"], "ssim": metrics["ssim"],
                                      "lpips": metrics["lpips"]})
                log.info("step %d: %s PSNR %.2f dB, SSIM %.4f", step, eval_split, metrics["psnr"], metrics["ssim"])
                state.timings["eval"] = state.timings.get("eval", 0.0) + time.perf_counter() - eval_start
            if checkpoint is not None and config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                state.timings[stage] = state.timings.get(stage, 0.0) + time.perf_counter() - stage_start
                stage_start = time.perf_counter()
                save_checkpoint(checkpoint, identity, state.state_dict())
        state.timings[stage] = state.timings.get(stage, 0.0) + time.perf_counter() - stage_start
    result.params, result.deformation = state.params, state.deformation
    result.history, result.timings = state.history, state.timings
    return result
