"""Render settings: one dataclass, validated up front, with named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from d4d.rendering.cameras import DEFAULT_FOV_DEG

ENGINES = ("cycles", "workbench", "eevee")
VIDEOS = ("dynamic", "static", "front")
DENOISE_QUALITIES = ("high", "balanced", "fast")
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class RenderOptions:
    """How to render one asset. Defaults are d4d's fast Cycles settings (benchmarks/RESULTS.md).

    Attributes:
        frames: frames per video (T); the paper uses 24.
        resolution: square image side, pixels; the paper uses 256.
        engine: "cycles" (path tracing), "workbench" (fast preview, no lighting fidelity)
            or "eevee" (rasteriser; needs a GPU to be fast).
        samples: Cycles samples per pixel (ignored by workbench; eevee TAA samples).
        denoise: run OpenImageDenoise on Cycles renders.
        denoise_quality: OpenImageDenoise quality, "high" (Blender's default, with accurate
            prefiltering of albedo and normal), "balanced" or "fast". On a CPU "high" costs
            about 0.5 s per 256x256 frame, most of a fast render.
        max_bounces: Cycles light-path bounces (the released script keeps Blender's 12).
        seed: seeds the lights' random energies and Cycles' sampling pattern.
        device: "cpu", or "gpu" for Cycles on the first GPU backend Blender finds (OptiX,
            CUDA, HIP, oneAPI, Metal); a render fails with a clear reason when there is none.
        distance: camera distance from the origin (the normalised asset's largest side is 1).
        elevation_deg: orbit elevation above the XY plane, degrees.
        fov_deg: horizontal field of view, degrees.
        azimuth_start_deg: azimuth of the first orbit frame and of the front camera.
        closed_orbit: True puts the first and last orbit frames at the same pose (0 and
            360 degrees), as the released script does; False spaces all T poses 360/T apart.
        videos: which of "dynamic", "static", "front" to render.
        action: render this action (by name) as the clip, on every object that carries it, with
            the others' NLA tracks muted; None plays what the file plays. asset.json lists the
            asset's actions under ``animation.actions``, so each can be rendered as its own clip.
        timeout_s: a render that takes longer is killed and reported as failed.
    """

    frames: int = 24
    resolution: int = 256
    engine: str = "cycles"
    samples: int = 8
    denoise: bool = True
    denoise_quality: str = "fast"
    max_bounces: int = 4
    seed: int = 0
    device: str = "cpu"
    distance: float = 2.0
    elevation_deg: float = 0.0
    fov_deg: float = DEFAULT_FOV_DEG
    azimuth_start_deg: float = 0.0
    closed_orbit: bool = False
    videos: tuple[str, ...] = field(default=VIDEOS)
    action: str | None = None
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if not 16 <= self.resolution <= 4096:
            raise ValueError(f"resolution must be in [16, 4096] pixels, got {self.resolution}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.denoise_quality not in DENOISE_QUALITIES:
            raise ValueError(f"denoise_quality must be one of {DENOISE_QUALITIES}, got {self.denoise_quality!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.distance <= 0:
            raise ValueError(f"distance must be > 0, got {self.distance}")
        if not -89.0 <= self.elevation_deg <= 89.0:
            raise ValueError(f"elevation must be in [-89, 89] degrees, got {self.elevation_deg}")
        if not 1.0 <= self.fov_deg <= 170.0:
            raise ValueError(f"field of view must be in [1, 170] degrees, got {self.fov_deg}")
        bad = [v for v in self.videos if v not in VIDEOS]
        if bad or not self.videos:
            raise ValueError(f"videos must be a non-empty subset of {VIDEOS}, got {self.videos}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout_s}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["videos"] = list(self.videos)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RenderOptions:
        d = dict(d)
        if "videos" in d:
            d["videos"] = tuple(d["videos"])
        return cls(**d)


#: The released Diffusion4D settings: Cycles, 128 samples, denoising, Blender's default bounces.
PAPER_PRESET = dict(engine="cycles", samples=128, denoise=True, denoise_quality="high", max_bounces=12, closed_orbit=True)
#: Cheap settings for the curation pre-pass and tests.
PREVIEW_PRESET = dict(engine="workbench", samples=1, denoise=False)
PRESETS = {"paper": PAPER_PRESET, "preview": PREVIEW_PRESET, "default": {}}
