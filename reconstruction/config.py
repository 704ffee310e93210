"""Hyperparameters of d4d-reconstruct: three dataclasses, validated up front, and named presets.

Defaults follow hustvl 4DGaussians (HexPlane deformation, D-NeRF settings) and gsplat's
``DefaultStrategy`` where those exist, scaled to the paper's iteration budget (5K coarse +
2K fine, PAPER.md); the ``fast`` preset is a small CPU setting (benchmarks/RECONSTRUCT_RESULTS.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

VIDEOS = ("dynamic", "static")


@dataclass(frozen=True)
class DensifyConfig:
    """Adaptive density control with gsplat ``DefaultStrategy`` semantics (thresholds as there).

    Attributes:
        prune_opa: Gaussians below this opacity are pruned; opacity resets clamp to twice it.
        grow_grad2d: mean image-plane gradient norm (in [-1, 1] screen units, as gsplat
            normalises it) above which a Gaussian is cloned (small) or split (large).
        grow_scale3d: largest axis, as a fraction of the scene scale, up to which a
            high-gradient Gaussian is cloned rather than split.
        prune_scale3d: after the first opacity reset, Gaussians larger than this fraction of
            the scene scale are pruned.
        refine_start_iter: first step (counted over both stages) at which to refine.
        refine_stop_iter: no refinement from this step on.
        refine_every: refine every this many steps.
        reset_every: reset opacities every this many steps (0 disables).
        max_gaussians: growth stops at this count (d4d's guard for small machines).
    """

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    refine_start_iter: int = 500
    refine_stop_iter: int = 5_000
    refine_every: int = 100
    reset_every: int = 3_000
    max_gaussians: int = 200_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_opa < 0.5:
            raise ValueError(f"prune_opa must be in [0, 0.5), got {self.prune_opa}")
        for name in ("grow_grad2d", "grow_scale3d", "prune_scale3d"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.refine_every < 1:
            raise ValueError(f"refine_every must be >= 1, got {self.refine_every}")
        if self.reset_every < 0 or self.max_gaussians < 1:
            raise ValueError(f"reset_every must be >= 0 and max_gaussians >= 1, got {self.reset_every}, {self.max_gaussians}")


@dataclass(frozen=True)
class DeformationConfig:
    """The HexPlane deformation field (hustvl 4DGaussians) and its regularisers.

    Attributes:
        bounds: half-side of the cube, centred at the origin, that the planes cover (world
            units; d4d scenes fit the unit cube, so 0.75 leaves a margin for motion).
        feature_dim: channels per plane.
        resolution: (x, y, z, t) cells of the coarsest planes.
        multires: spatial resolution multipliers; each level has its own 6 planes and the
            level features are concatenated.
        hidden_width: width of the MLP trunk and heads.
        depth: hidden layers of the trunk (hustvl ``defor_depth``; 0 = one linear layer).
        plane_tv_weight: total-variation (plane smoothness) weight over all planes.
        time_smoothness_weight: second-difference smoothness along t of the time planes.
        l1_time_planes_weight: L1 pull of the time planes towards 1 (no motion).
        lr_grid, lr_mlp: Adam learning rates of the planes and of the MLPs (decayed 100x
            over the fine stage, as hustvl).
    """

    bounds: float = 0.75
    feature_dim: int = 32
    resolution: tuple[int, int, int, int] = (64, 64, 64, 25)
    multires: tuple[int, ...] = (1, 2)
    hidden_width: int = 64
    depth: int = 0
    plane_tv_weight: float = 1e-4
    time_smoothness_weight: float = 1e-2
    l1_time_planes_weight: float = 1e-4
    lr_grid: float = 1.6e-3
    lr_mlp: float = 1.6e-4

    def __post_init__(self) -> None:
        if self.bounds <= 0 or self.feature_dim < 1 or self.hidden_width < 1 or self.depth < 0:
            raise ValueError(f"bounds, feature_dim and hidden_width must be positive and depth >= 0, got {self}")
        if len(self.resolution) != 4 or min(self.resolution) < 2:
            raise ValueError(f"resolution must be 4 values >= 2 (x, y, z, t), got {self.resolution}")
        if not self.multires or min(self.multires) < 1:
            raise ValueError(f"multires must be a non-empty tuple of integers >= 1, got {self.multires}")


@dataclass(frozen=True)
class ReconstructConfig:
    """One reconstruction run.

    Attributes:
        coarse_iterations: coarse stage steps (static Gaussians, no deformation).
        iterations: fine stage steps (deformation field learnt jointly with the Gaussians).
        coarse_videos: videos the coarse stage fits. The paper fits the static orbit (at
            time 0) together with the dynamic orbit; absent videos are skipped.
        fine_videos: videos the fine stage fits (the paper: the dynamic orbit alone).
        init: "hull" (points sampled inside the alpha-mask visual hull) or "random"
            (uniform in the unit cube).
        n_init: initial Gaussian count.
        hull_resolution: voxels per side of the carving grid over [-0.5, 0.5]^3 (plus a margin).
        hull_min_fraction: a voxel stays when it projects inside the mask (alpha > 0.5) in at
            least this fraction of the carving views (1.0 = strict intersection). Carving
            uses the static orbit when present, else the dynamic one (then a lower
            fraction keeps parts that move).
        lambda_dssim: weight of D-SSIM = 1 - SSIM against L1 (INRIA's 0.2); the paper's
            LPIPS term is replaced by D-SSIM (no LPIPS weights offline).
        lr_means, lr_scales, lr_quats, lr_opacities, lr_colors: Adam rates of the per-Gaussian
            parameters; ``lr_means`` decays 100x over the whole run (INRIA).
        random_background: composite targets and renders over a random colour each step,
            so transparency is learnt (gsplat's ``random_bkgd``).
        eval_background: RGB in [0, 1] behind held-out evaluations, turntables and metrics.
        holdout_every, holdout_offset: dynamic-orbit views with index % every == offset are
            held out for evaluation; the same camera poses are also left out of the static
            orbit, so no held-out pose is ever seen.
        turntable_frames, turntable_elevation_deg: novel-view turntable (times sweep 0..1).
        seed: seeds initialisation, view order and densification.
        log_every: progress line every this many steps.
        densify, deformation: see those dataclasses.
    """

    coarse_iterations: int = 5_000
    iterations: int = 2_000
    coarse_videos: tuple[str, ...] = ("static", "dynamic")
    fine_videos: tuple[str, ...] = ("dynamic",)
    init: str = "hull"
    n_init: int = 10_000
    hull_resolution: int = 64
    hull_min_fraction: float = 1.0
    lambda_dssim: float = 0.2
    lr_means: float = 1.6e-4
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_colors: float = 2.5e-3
    random_background: bool = True
    eval_background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    holdout_every: int = 8
    holdout_offset: int = 4
    turntable_frames: int = 48
    turntable_elevation_deg: float = 20.0
    seed: int = 0
    log_every: int = 100
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    deformation: DeformationConfig = field(default_factory=DeformationConfig)

    def __post_init__(self) -> None:
        if self.coarse_iterations < 0 or self.iterations < 0 or self.coarse_iterations + self.iterations < 1:
            raise ValueError(f"iterations must be >= 0 with at least one step in all, got coarse {self.coarse_iterations}, fine {self.iterations}")
        for name in ("coarse_videos", "fine_videos"):
            videos = getattr(self, name)
            if not videos or any(v not in VIDEOS for v in videos):
                raise ValueError(f"{name} must be a non-empty subset of {VIDEOS}, got {videos}")
        if self.init not in ("hull", "random"):
            raise ValueError(f"init must be 'hull' or 'random', got {self.init!r}")
        if self.n_init < 1 or self.hull_resolution < 4:
            raise ValueError(f"n_init must be >= 1 and hull_resolution >= 4, got {self.n_init}, {self.hull_resolution}")
        if not 0.0 < self.hull_min_fraction <= 1.0:
            raise ValueError(f"hull_min_fraction must be in (0, 1], got {self.hull_min_fraction}")
        if self.holdout_every < 2 or not 0 <= self.holdout_offset < self.holdout_every:
            raise ValueError(f"holdout_every must be >= 2 and 0 <= holdout_offset < holdout_every, got {self.holdout_every}, {self.holdout_offset}")
        if len(self.eval_background) != 3:
            raise ValueError(f"eval_background must be 3 values in [0, 1], got {self.eval_background}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ReconstructConfig:
        d = dict(d)
        d["densify"] = DensifyConfig(**d.get("densify", {}))
        deformation = dict(d.get("deformation", {}))
        for key in ("resolution", "multires"):
            if key in deformation:
                deformation[key] = tuple(deformation[key])
        d["deformation"] = DeformationConfig(**deformation)
        for key in ("coarse_videos", "fine_videos", "eval_background"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def _fast() -> ReconstructConfig:
    """Small CPU setting: 64x64 renders in minutes (benchmarks/RECONSTRUCT_RESULTS.md)."""
    return ReconstructConfig(
        coarse_iterations=300,
        iterations=700,
        n_init=2_000,
        hull_resolution=40,
        lr_means=1.6e-3,
        lr_scales=1e-2,
        lr_colors=1e-2,
        densify=DensifyConfig(refine_start_iter=100, refine_stop_iter=800, refine_every=100, reset_every=0, max_gaussians=8_000),
        deformation=DeformationConfig(feature_dim=16, resolution=(32, 32, 32, 12), multires=(1, 2), lr_grid=1e-2, lr_mlp=1e-3),
        turntable_frames=24,
    )


PRESETS = {"paper": ReconstructConfig, "fast": _fast}


def preset(name: str, **overrides) -> ReconstructConfig:
    """A named preset ("paper" or "fast") with top-level fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name](), **overrides)
