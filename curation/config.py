"""Every curation threshold in one dataclass, with the paper's numbers where it states them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from d4d.rendering.contract import VIDEO_NAMES

QUANTIFIERS = ("all", "any")
STATISTICS = ("min", "median", "mean", "max")


@dataclass(frozen=True)
class CurationConfig:
    """Thresholds of ``curation.decision.decide``; docs/curation.md explains each rule."""

    require_animation: bool = True
    """Reject with "no_animation" when asset.json says the asset has no animation (the paper's rule 1:
    keep assets labelled as animated)."""
    min_animation_frames: float = 10.0
    """Reject with "too_short" when the animated range covers fewer Blender frames than this (``end -
    start + 1``). The paper has no such rule; other 4D datasets skip clips shorter than about 10 frames.
    0 disables."""
    min_geometric_max_displacement: float | None = 0.01
    """Render-free motion test: reject with "too_static" when
    ``animation.geometric_motion.max_displacement`` (the largest distance any sampled vertex moves from
    its time-0 position, in normalised scene units: the scene's largest side is 1) is below this. 0.01
    is 1% of the scene, about 1.4 pixels at 256x256 with the default camera. None disables."""
    min_geometric_mean_displacement: float | None = None
    """As above for ``mean_displacement`` (mean over vertices and frames); None (default) disables."""
    ssim_too_static: float = 0.95
    """The paper's rule 2 upper bound: front-view SSIM above it means too little motion (0.95)."""
    ssim_distorted: float = 0.4
    """The paper's lower bound: SSIM below it means distortion, not motion (0.4)."""
    ssim_pairs: tuple[tuple[float, float], ...] = ((0.0, 0.25), (0.0, 0.5))
    """The frame pairs compared, as fractions of T: frame index ``floor(f * T)``. Default (t0, T/4) and
    (t0, T/2): the paper's "t0, T/4 and T/2" read as two SSIMs against the first frame."""
    too_static_when: Literal["all", "any"] = "all"
    """"all": reject when every pair's SSIM > ssim_too_static (the paper's "both exceed"); "any": when
    at least one does."""
    distorted_when: Literal["all", "any"] = "any"
    """"any" (default): reject when at least one pair's SSIM < ssim_distorted; "all": only when every
    pair's does."""
    ssim_static_unless_geometric: float | None = 0.1
    """The whole-frame SSIM rule misses motion of a small part of a small object (a bending limb
    covering a few percent of the image scores SSIM > 0.95 on the empty background). When the
    render-free geometric max displacement is at least this (scene units; 0.1 = 10% of the scene), a
    "too_static" SSIM verdict is overruled and recorded as such. None applies the paper's rule alone."""
    ssim_channels: Literal["luma", "rgb"] = "luma"
    """"luma" (BT.601 luma, default) or "rgb" (mean of per-channel SSIMs)."""
    ssim_background: float = 0.0
    """Grey level in [0, 1] frames are composited over before SSIM (0: black)."""
    frame_videos: tuple[Literal["dynamic", "static", "front"], ...] = ("dynamic", "static")
    """The videos whose alpha the framing rules (leaves_frame, too_small) read; default the two orbits,
    the paper's rule 3 ("the 24-view orbit"). Absent videos are skipped."""
    alpha_threshold: float = 0.5
    """A pixel counts as covered when alpha >= this fraction of opaque."""
    border_px: int = 1
    """Width in pixels of the image-edge band that must stay clear."""
    border_tolerance: float = 0.0
    """A frame "leaves the frame" when more than this fraction of the border band's pixels is covered; 0
    means any covered border pixel."""
    min_coverage: float = 0.01
    """Reject with "too_small" when ``coverage_statistic`` over the framing videos' per-frame covered
    fractions is below this (0.01: 1% of the image)."""
    coverage_statistic: Literal["min", "median", "mean", "max"] = "median"
    """"min", "median" (default), "mean" or "max" over frames."""
    min_motion_magnitude: float | None = None
    """Reject with "too_static" when the paper's motion magnitude m (d4d.measures, version-1 scale)
    is below this; None (default) disables."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ssim_distorted <= self.ssim_too_static <= 1.0:
            raise ValueError(
                f"need 0 <= ssim_distorted <= ssim_too_static <= 1, got {self.ssim_distorted} and {self.ssim_too_static}"
            )
        if not self.ssim_pairs or any(len(p) != 2 or not all(0.0 <= f < 1.0 for f in p) for p in self.ssim_pairs):
            raise ValueError(f"ssim_pairs must be non-empty pairs of fractions in [0, 1), got {self.ssim_pairs}")
        for name in ("too_static_when", "distorted_when"):
            if getattr(self, name) not in QUANTIFIERS:
                raise ValueError(f"{name} must be one of {QUANTIFIERS}, got {getattr(self, name)!r}")
        if self.ssim_channels not in ("luma", "rgb"):
            raise ValueError(f"ssim_channels must be 'luma' or 'rgb', got {self.ssim_channels!r}")
        if self.coverage_statistic not in STATISTICS:
            raise ValueError(f"coverage_statistic must be one of {STATISTICS}, got {self.coverage_statistic!r}")
        bad = [v for v in self.frame_videos if v not in VIDEO_NAMES]
        if bad:
            raise ValueError(f"frame_videos: unknown {bad}, valid: {VIDEO_NAMES}")
        if not 0.0 < self.alpha_threshold <= 1.0:
            raise ValueError(f"alpha_threshold must be in (0, 1], got {self.alpha_threshold}")
        if self.border_px < 1:
            raise ValueError(f"border_px must be >= 1, got {self.border_px}")
        if not 0.0 <= self.border_tolerance < 1.0:
            raise ValueError(f"border_tolerance must be in [0, 1), got {self.border_tolerance}")
        if not 0.0 <= self.ssim_background <= 1.0:
            raise ValueError(f"ssim_background must be in [0, 1], got {self.ssim_background}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ssim_pairs"] = [list(p) for p in self.ssim_pairs]
        d["frame_videos"] = list(self.frame_videos)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CurationConfig:
        """Inverse of ``to_dict``; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"CurationConfig: unknown keys {unknown}")
        d = dict(d)
        if "ssim_pairs" in d:
            d["ssim_pairs"] = tuple(tuple(p) for p in d["ssim_pairs"])
        if "frame_videos" in d:
            d["frame_videos"] = tuple(d["frame_videos"])
        return cls(**d)
