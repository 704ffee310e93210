"""Hyperparameters of d4d-reconstruct: three dataclasses, validated up front, and named presets.

Every field has a docstring (the string after it, PEP 257): d4d-reconstruct's flags are
generated from them (d4d/options.py; ``densify.prune_opa`` becomes ``--densify-prune-opa``).
The dataclass defaults are the ``paper`` preset: hustvl 4DGaussians (HexPlane deformation with
its D-NeRF model settings; learning rates and their schedules as its ``arguments/__init__.py``:
scaled by the scene's extent, decayed over 20000 steps per stage, the deformation 10x) and
gsplat's ``DefaultStrategy`` where those exist, at the paper's iteration budget (5K coarse + 2K
fine, PAPER.md). ``cpu`` is the CPU default and ``fast`` a quick
preview (the CPU default before ``cpu`` existed); benchmarks/RECONSTRUCT_RESULTS.md measures
both. ``auto`` picks ``paper`` on CUDA and ``cpu`` elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

VIDEOS = ("dynamic", "static")
Video = Literal["dynamic", "static"]
#: Rasterizers (``--backend``; reconstruction/rasterize.py picks and imports one).
BACKENDS = ("auto", "torch", "gsplat")
#: The resumable checkpoint in the output directory (reconstruction/checkpoint.py).
CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass(frozen=True)
class DensifyConfig:
    """Adaptive density control with gsplat ``DefaultStrategy`` semantics (thresholds as there)."""

    prune_opa: float = 0.005
    """Gaussians below this opacity are pruned; opacity resets clamp to twice it."""
    grow_grad2d: float = 0.0002
    """Mean image-plane gradient norm (in [-1, 1] screen units, as gsplat normalises it) above
    which a Gaussian is cloned (small) or split (large)."""
    grow_scale3d: float = 0.01
    """Largest axis, as a fraction of the scene scale, up to which a high-gradient Gaussian is
    cloned rather than split."""
    prune_scale3d: float = 0.1
    """After the first opacity reset, Gaussians larger than this fraction of the scene scale are pruned."""
    refine_start_iter: int = 500
    """First step (counted over both stages) at which to refine."""
    refine_stop_iter: int = 5_000
    """No refinement from this step on."""
    refine_every: int = 100
    """Refine every this many steps."""
    reset_every: int = 3_000
    """Reset opacities every this many steps (0 disables)."""
    max_gaussians: int = 200_000
    """Growth stops at this count (d4d's guard for small machines)."""

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
    """The HexPlane deformation field (hustvl 4DGaussians) and its regularisers."""

    bounds: float = 0.75
    """Half-side of the cube, centred at the origin, that the planes cover (world units; d4d
    scenes fit the unit cube, so 0.75 leaves a margin for motion)."""
    feature_dim: int = 32
    """Channels per plane."""
    resolution: tuple[int, int, int, int] = (64, 64, 64, 25)
    """(x, y, z, t) cells of the coarsest planes."""
    multires: tuple[int, ...] = (1, 2)
    """Spatial resolution multipliers; each level has its own 6 planes and the level features are concatenated."""
    hidden_width: int = 64
    """Width of the MLP trunk and heads."""
    depth: int = 0
    """Hidden layers of the trunk (hustvl ``defor_depth``; 0 = one linear layer)."""
    deform_scales: bool = True
    """Learn offsets of the log-scales over time (hustvl's ``no_ds`` off); without them a
    Gaussian keeps its size and shape and can only move and turn."""
    deform_rotations: bool = True
    """Learn offsets of the rotations over time (hustvl's ``no_dr`` off)."""
    plane_tv_weight: float = 1e-4
    """Total-variation (plane smoothness) weight over all planes."""
    time_smoothness_weight: float = 1e-2
    """Second-difference smoothness along t of the time planes."""
    l1_time_planes_weight: float = 1e-4
    """L1 pull of the time planes towards 1 (no motion)."""
    zero_init_heads: bool = True
    """Start the last layer of every head at zero, so the fine stage starts exactly from the
    coarse result (d4d's choice); off: Xavier-uniform weights as hustvl initialises every layer."""
    lr_grid: float = 1.6e-3
    """Adam learning rate of the planes (hustvl ``grid_lr_init``; times the scene scale with ``lr_scene_scale``)."""
    lr_mlp: float = 1.6e-4
    """Adam learning rate of the MLPs (hustvl ``deformation_lr_init``; times the scene scale with ``lr_scene_scale``)."""
    lr_decay: float = 0.1
    """Both rates decay exponentially to this fraction of their start over ``lr_decay_steps``
    (hustvl's defaults: ``grid_lr_final`` / ``grid_lr_init`` = ``deformation_lr_final`` / ``deformation_lr_init`` = 0.1)."""
    lr_decay_steps: int = 20_000
    """Fine steps over which the rates reach ``lr_decay`` times their start, after which they
    stay there (hustvl: ``position_lr_max_steps`` = 20000, so over the paper's 2000 fine steps
    they fall only to 0.1^0.1 = 0.79 of their start); 0: over the fine stage, however long."""

    def __post_init__(self) -> None:
        if self.bounds <= 0 or self.feature_dim < 1 or self.hidden_width < 1 or self.depth < 0:
            raise ValueError(f"bounds, feature_dim and hidden_width must be positive and depth >= 0, got {self}")
        if len(self.resolution) != 4 or min(self.resolution) < 2:
            raise ValueError(f"resolution must be 4 values >= 2 (x, y, z, t), got {self.resolution}")
        if not self.multires or min(self.multires) < 1:
            raise ValueError(f"multires must be a non-empty tuple of integers >= 1, got {self.multires}")
        if not 0.0 < self.lr_decay <= 1.0 or self.lr_decay_steps < 0:
            raise ValueError(f"lr_decay must be in (0, 1] and lr_decay_steps >= 0, got {self.lr_decay}, {self.lr_decay_steps}")


@dataclass(frozen=True)
class ReconstructConfig:
    """One reconstruction run (the defaults are the ``paper`` preset)."""

    coarse_iterations: int = 5_000
    """Coarse stage steps (static Gaussians, no deformation)."""
    iterations: int = 2_000
    """Fine stage steps (deformation field learnt jointly with the Gaussians)."""
    coarse_videos: tuple[Video, ...] = ("static", "dynamic")
    """Videos the coarse stage fits. The paper fits the static orbit (at time 0) together with
    the dynamic orbit; absent videos are skipped."""
    fine_videos: tuple[Video, ...] = ("dynamic",)
    """Videos the fine stage fits (the paper: the dynamic orbit alone; adding the static orbit
    keeps the shape at time 0 seen from every training azimuth)."""
    init: Literal["hull", "random"] = "hull"
    """Initial points: "hull" (sampled inside the alpha-mask visual hull) or "random" (uniform in the unit cube)."""
    n_init: int = 10_000
    """Initial Gaussian count."""
    hull_resolution: int = 64
    """Voxels per side of the carving grid over [-0.5, 0.5]^3 (plus a margin)."""
    hull_min_fraction: float = 1.0
    """A voxel stays when it projects inside the mask (alpha > 0.5) in at least this fraction of
    the carving views (1.0 = strict intersection). Carving uses the static orbit when present,
    else the dynamic one (then at most 0.75, to keep parts that move)."""
    lambda_dssim: float = 0.2
    """Weight of D-SSIM = 1 - SSIM in the photometric loss, L1 having 1 - lambda_dssim (INRIA's 0.2)."""
    lambda_lpips: float = 0.1
    """Weight of the LPIPS term (the paper's L1 + LPIPS + depth smoothness; the weight is d4d's
    choice). Needs ``lpips_weights``: without them the term is off, with a warning, and
    metrics.json says so."""
    lpips_weights: str | None = None
    """Folder with the LPIPS weights, as d4d-eval's --lpips: ``alexnet.pth`` (torchvision
    AlexNet) and ``alex.pth`` (LPIPS v0.1 linear layers), or the same as .safetensors; read
    without pickle code. Also gives metrics.json held-out LPIPS."""
    lambda_depth_smoothness: float = 0.05
    """Weight of the edge-aware smoothness of the rendered depth inside the object (the paper's
    depth smoothness; losses.depth_smoothness; the weight is d4d's choice). 0 renders no depth."""
    lr_means: float = 1.6e-4
    """Adam learning rate of the Gaussian centres (world units; times the scene scale with ``lr_scene_scale``)."""
    lr_means_decay: float = 0.01
    """``lr_means`` decays exponentially to this fraction of its start over ``lr_means_decay_steps`` (INRIA and hustvl: 0.01)."""
    lr_means_decay_steps: int = 20_000
    """Steps over which ``lr_means`` reaches ``lr_means_decay`` times its start, counted from the
    start of each stage as hustvl counts them (``position_lr_max_steps`` = 20000); 0: once over
    the whole run (both stages)."""
    lr_scene_scale: bool = True
    """Multiply ``lr_means`` and the deformation field's rates by the scene scale, 1.1 x the
    largest camera distance from the origin (hustvl's and INRIA's ``spatial_lr_scale``, the
    cameras' extent), so the rates follow the scene's size."""
    lr_scales: float = 5e-3
    """Adam learning rate of the log-scales."""
    lr_quats: float = 1e-3
    """Adam learning rate of the rotations."""
    lr_opacities: float = 5e-2
    """Adam learning rate of the opacity logits."""
    lr_colors: float = 2.5e-3
    """Adam learning rate of the degree-0 SH colours (INRIA ``feature_lr``)."""
    lr_sh_rest: float = 1.25e-4
    """Adam learning rate of the higher SH bands (INRIA: ``feature_lr`` / 20)."""
    sh_degree: int = 3
    """Spherical-harmonic degree of the colours, 0 (one colour per Gaussian) to 3 (view-dependent,
    INRIA's and hustvl's default)."""
    sh_degree_interval: int = 1_000
    """The degree in use rises by one every this many steps (counted over both stages) up to
    ``sh_degree`` (INRIA's ``oneupSHdegree`` every 1000 iterations)."""
    random_background: bool = True
    """Composite targets and renders over a random colour each step, so transparency is learnt
    (gsplat's ``random_bkgd``)."""
    eval_background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """RGB in [0, 1] behind evaluations, the videos and the metrics."""
    holdout_every: int = 8
    """Views with frame index % holdout_every == holdout_offset are held out for evaluation, in
    every video, so no held-out camera pose is ever trained on. 0 holds out nothing: every
    view trains and the metrics are taken on training views."""
    holdout_offset: int = 4
    """See holdout_every (the default holds out frames 4, 12 and 20 of 24; unused when holdout_every is 0)."""
    turntable_frames: int = 48
    """Frames of the novel-view turntable video (times sweep 0 -> 1 over one turn)."""
    turntable_elevation_deg: float = 20.0
    """Camera elevation of the turntable, degrees."""
    seed: int = 0
    """Seeds initialisation, view order, backgrounds and densification."""
    history_points: int = 20
    """Evaluate on the held-out views this many times, evenly over the run, into metrics.json's
    ``history`` (step, stage, training seconds, PSNR, SSIM); 0: no history."""
    progress_every_s: float = 10.0
    """A progress line (step, loss, PSNR, time left) at least this often, seconds of training (0: none)."""
    checkpoint_every: int = 500
    """Save a resumable checkpoint every this many steps (0: never); a rerun of the same
    command with the same output directory resumes from it."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    """Adaptive density control."""
    deformation: DeformationConfig = field(default_factory=DeformationConfig)
    """The deformation field."""

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
        if min(self.lambda_dssim, self.lambda_lpips, self.lambda_depth_smoothness) < 0 or self.lambda_dssim > 1:
            raise ValueError(f"lambda_dssim must be in [0, 1] and lambda_lpips, lambda_depth_smoothness >= 0, got {self.lambda_dssim}, {self.lambda_lpips}, {self.lambda_depth_smoothness}")
        if not 0.0 < self.lr_means_decay <= 1.0 or self.lr_means_decay_steps < 0:
            raise ValueError(f"lr_means_decay must be in (0, 1] and lr_means_decay_steps >= 0, got {self.lr_means_decay}, {self.lr_means_decay_steps}")
        if not 0 <= self.sh_degree <= 3 or self.sh_degree_interval < 1:
            raise ValueError(f"sh_degree must be in [0, 3] and sh_degree_interval >= 1, got {self.sh_degree}, {self.sh_degree_interval}")
        if self.holdout_every == 1 or self.holdout_every < 0 or (self.holdout_every and not 0 <= self.holdout_offset < self.holdout_every):
            raise ValueError(f"holdout_every must be 0 (none) or >= 2 with 0 <= holdout_offset < holdout_every, got {self.holdout_every}, {self.holdout_offset}")
        if len(self.eval_background) != 3 or not all(0.0 <= c <= 1.0 for c in self.eval_background):
            raise ValueError(f"eval_background must be 3 values in [0, 1], got {self.eval_background}")
        if self.progress_every_s < 0 or self.checkpoint_every < 0 or self.history_points < 0:
            raise ValueError(f"progress_every_s, checkpoint_every and history_points must be >= 0, got {self.progress_every_s}, {self.checkpoint_every}, {self.history_points}")

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
    """Quick preview: 1.5-2 minutes for a 64x64, 24-frame orbit of a real asset on one CPU core
    (35.6-38.4 dB held out on three animated third-party assets, benchmarks/RECONSTRUCT_RESULTS.md),
    longer at 128x128.

    The deformation field's rates (planes 3e-2, MLP 3e-3, not scaled by the scene) are about 19
    times the ``paper`` ones and decay 100x over the fine stage, as does ``lr_means`` (1.6e-3) over
    the whole run: at 1e-2 / 1e-3 (d4d 0.1's setting) the field had not learnt a sphere's
    0.6-unit motion after 700 fine steps (tests/test_reconstruct_pipeline.py). Degree-0 colour.
    """
    return ReconstructConfig(
        coarse_iterations=300,
        iterations=700,
        n_init=2_000,
        hull_resolution=40,
        lr_means=1.6e-3,
        lr_means_decay_steps=0,
        lr_scene_scale=False,
        lr_scales=1e-2,
        lr_colors=1e-2,
        sh_degree=0,
        lambda_lpips=0.0,
        lambda_depth_smoothness=0.0,
        densify=DensifyConfig(refine_start_iter=100, refine_stop_iter=800, refine_every=100, reset_every=0, max_gaussians=8_000),
        deformation=DeformationConfig(feature_dim=16, resolution=(32, 32, 32, 12), multires=(1, 2), lr_grid=3e-2, lr_mlp=3e-3,
                                      lr_decay=0.01, lr_decay_steps=0),
        turntable_frames=24,
    )


def _cpu() -> ReconstructConfig:
    """The CPU default: a few minutes for a 128x128, 24-frame orbit (benchmarks/RECONSTRUCT_RESULTS.md).

    From ``fast``: more steps (500 + 2000), densification until step 1800 at twice the gradient
    threshold (fewer Gaussians, so each step costs less), and the default 48-frame turntable.
    """
    fast = _fast()
    return replace(
        fast,
        coarse_iterations=500,
        iterations=2_000,
        turntable_frames=48,
        densify=replace(fast.densify, grow_grad2d=4e-4, refine_stop_iter=1_800, max_gaussians=15_000),
    )


PRESETS = {"paper": ReconstructConfig, "fast": _fast, "cpu": _cpu}
#: ``--preset auto``: the paper's steps on CUDA, the CPU setting anywhere else.
AUTO = "auto"


def resolve_preset(name: str, device_type: str) -> str:
    """The concrete preset for ``name`` on a device type ("cuda", "cpu", ...): ``auto`` is "paper" on CUDA, else "cpu"."""
    if name == AUTO:
        return "paper" if device_type == "cuda" else "cpu"
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS) + [AUTO]}, got {name!r}")
    return name


def preset(name: str, **overrides) -> ReconstructConfig:
    """A named preset ("paper", "cpu" or "fast") with top-level fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name](), **overrides)
