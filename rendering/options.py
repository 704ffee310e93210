"""Render settings: one dataclass, validated up front, with named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from d4d.rendering.cameras import DEFAULT_FOV_DEG
from d4d.rendering.contract import FOV_RANGE_DEG
from d4d.rendering.orbits import OrbitLayout

ENGINES = ("cycles", "workbench", "eevee")
TIME_SAMPLINGS = ("span", "first_frames")
#: The videos of the first orbit and the front camera (``RenderOptions.videos``).
FIRST_ORBIT_VIDEOS = ("dynamic", "static", "front")
#: Frames per video a render may ask for (memory and time grow with it).
MAX_FRAMES = 1024
DENOISE_QUALITIES = ("high", "balanced", "fast")
DEVICES = ("cpu", "gpu")
VIEW_TRANSFORMS = ("AgX", "Filmic", "Standard")


@dataclass(frozen=True)
class RenderOptions:
    """How to render one asset. Defaults are d4d's fast Cycles settings (benchmarks/RESULTS.md)."""

    frames: int = 24
    """Frames per video (T); the paper uses 24."""
    resolution: int = 256
    """Square image side, pixels; the paper uses 256."""
    engine: Literal["cycles", "workbench", "eevee"] = "cycles"
    """"cycles" (path tracing), "workbench" (fast preview, no lighting fidelity) or "eevee"
    (rasteriser; needs a GPU to be fast)."""
    samples: int = 8
    """Cycles samples per pixel (ignored by workbench; eevee TAA samples)."""
    denoise: bool = True
    """Run OpenImageDenoise on Cycles renders."""
    denoise_quality: Literal["high", "balanced", "fast"] = "fast"
    """OpenImageDenoise quality: "high" (Blender's default, with accurate prefiltering of albedo
    and normal), "balanced" or "fast". On a CPU "high" costs about 0.5 s per 256x256 frame, most
    of a fast render."""
    max_bounces: int = 4
    """Cycles light-path bounces (the released script keeps Blender's 12)."""
    seed: int = 0
    """Seeds the lights' random energies and Cycles' sampling pattern."""
    view_transform: Literal["AgX", "Filmic", "Standard"] = "AgX"
    """Blender's view transform from scene light to 8-bit colour. "AgX" (Blender 4's default)
    rolls highlights off instead of clipping them: with "Standard", 18-36% of the pixels of the
    white-ish built-in assets clip to pure white under the four suns, losing their shading and
    their contrast with a white training background (docs/rendering.md)."""
    device: Literal["cpu", "gpu"] = "cpu"
    """"cpu", or "gpu" for Cycles on the first GPU backend Blender finds (OptiX, CUDA, HIP,
    oneAPI, Metal); a render fails with a clear reason when there is none."""
    distance: float = 2.0
    """Camera distance from the origin (the normalised asset's largest side is 1)."""
    elevation_deg: float = 0.0
    """Orbit elevation above the XY plane, degrees."""
    fov_deg: float = DEFAULT_FOV_DEG
    """Horizontal field of view, degrees."""
    azimuth_start_deg: float = 0.0
    """Azimuth of the first orbit frame and of the front camera, degrees."""
    closed_orbit: bool = False
    """True puts the first and last orbit frames at the same pose (0 and 360 degrees), as the
    released script does; False spaces all T poses 360/T apart."""
    videos: tuple[Literal["dynamic", "static", "front"], ...] = ("dynamic", "static", "front")
    """Which of "dynamic", "static", "front" to render."""
    orbits: Literal[1, 2] = 1
    """2 also renders a second dynamic and static orbit from a random start azimuth, drawn per
    asset from the seed and the asset's sha256 (the paper's view augmentation): videos
    "dynamic2" and "static2"."""
    action: str | None = None
    """Render this animation (glTF animation, FBX take or action, by name) as the clip, with
    every other one stopped; None plays what the file plays. asset.json lists the asset's
    actions under ``animation.actions``."""
    time_sampling: Literal["span", "first_frames"] = "span"
    """"span": sample the animation's real animated span, in windows (rendering/clips.py);
    "first_frames": the released script's Blender frames 0..T-1, whatever the animation does."""
    max_sample_step_s: float | None = 0.125
    """Consecutive samples are at most this many seconds of animation apart (1/8 s: a video
    model trained at 8 fps sees neighbouring frames); a longer animation becomes several
    windows. None: squeeze the whole animated span into T frames (d4d 0.1's behaviour)."""
    max_windows_per_action: int = 4
    """At most this many windows per animation, the most moving first."""
    window: int = 0
    """Which window of the animation d4d-render renders: 0 is the one with the most motion."""
    timeout_s: float = 600.0
    """A render that takes longer is killed and reported as failed, seconds."""

    def __post_init__(self) -> None:
        if not 2 <= self.frames <= MAX_FRAMES:
            raise ValueError(f"frames must be in [2, {MAX_FRAMES}], got {self.frames}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, got {self.time_sampling!r}")
        if self.max_sample_step_s is not None and not self.max_sample_step_s > 0:
            raise ValueError(f"max_sample_step_s must be > 0 seconds (or None), got {self.max_sample_step_s}")
        if self.max_windows_per_action < 1 or self.window < 0:
            raise ValueError(f"max_windows_per_action must be >= 1 and window >= 0, got {self.max_windows_per_action}, {self.window}")
        if not 16 <= self.resolution <= 4096:
            raise ValueError(f"resolution must be in [16, 4096] pixels, got {self.resolution}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.denoise_quality not in DENOISE_QUALITIES:
            raise ValueError(f"denoise_quality must be one of {DENOISE_QUALITIES}, got {self.denoise_quality!r}")
        if self.view_transform not in VIEW_TRANSFORMS:
            raise ValueError(f"view_transform must be one of {VIEW_TRANSFORMS}, got {self.view_transform!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.distance <= 0:
            raise ValueError(f"distance must be > 0, got {self.distance}")
        if not -89.0 <= self.elevation_deg <= 89.0:
            raise ValueError(f"elevation must be in [-89, 89] degrees, got {self.elevation_deg}")
        if not FOV_RANGE_DEG[0] <= self.fov_deg <= FOV_RANGE_DEG[1]:
            raise ValueError(f"field of view must be in [{FOV_RANGE_DEG[0]:g}, {FOV_RANGE_DEG[1]:g}] degrees, got {self.fov_deg}")
        bad = [v for v in self.videos if v not in FIRST_ORBIT_VIDEOS]
        if bad or not self.videos:
            raise ValueError(f"videos must be a non-empty subset of {FIRST_ORBIT_VIDEOS}, got {self.videos}")
        if self.orbits not in (1, 2):
            raise ValueError(f"orbits must be 1 or 2, got {self.orbits}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout_s}")

    def layout(self, second_start_deg: float | None = None) -> OrbitLayout:
        """The cameras these options place (with the second orbit's start when ``orbits`` is 2)."""
        return OrbitLayout(frames=self.frames, distance=self.distance, elevation_deg=self.elevation_deg, fov_deg=self.fov_deg,
                           azimuth_start_deg=self.azimuth_start_deg, closed=self.closed_orbit,
                           second_start_deg=second_start_deg if self.orbits == 2 else None)

    def all_videos(self) -> tuple[str, ...]:
        """The videos rendered: ``videos``, plus the second orbit's for each orbit video when ``orbits`` is 2."""
        second = tuple(f"{v}2" for v in self.videos if v in ("dynamic", "static")) if self.orbits == 2 else ()
        return tuple(self.videos) + second

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


#: The released Diffusion4D settings: Cycles, 128 samples, denoising, Blender's default bounces,
#: a closed orbit, Blender frames 0..T-1, and the second orbit from a random azimuth.
PAPER_PRESET = dict(engine="cycles", samples=128, denoise=True, denoise_quality="high", max_bounces=12, closed_orbit=True,
                    time_sampling="first_frames", orbits=2)
#: Cheap settings for the curation pre-pass and tests.
PREVIEW_PRESET = dict(engine="workbench", samples=1, denoise=False)
PRESETS = {"paper": PAPER_PRESET, "preview": PREVIEW_PRESET, "default": {}}
