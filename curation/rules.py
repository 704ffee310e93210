"""The curation rules, each a pure function over asset.json fields or frames.

Every rule returns a ``RuleResult``: the measures it took (JSON-safe numbers), the reject
reason it fired (or None), and a one-line detail. A rule that cannot be evaluated (its input
is absent) returns ``skipped`` with why. ``curation.decision.decide`` runs them in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from d4d.curation.alpha import border_fraction, coverage, empty_frames
from d4d.curation.config import CurationConfig
from d4d.curation.ssim import WINDOW_SIZE as SSIM_WINDOW
from d4d.curation.ssim import frame_ssim
from d4d.measures import motion_magnitude
from d4d.rendering.contract import AssetInfo

Frames = dict[str, np.ndarray]


@dataclass
class RuleResult:
    """What one rule found.

    Attributes:
        measures: name -> JSON-safe value (float, int, bool, str, list).
        reason: the reject reason it fired, or None when the asset passes it.
        detail: one line saying what was compared (set when it fired or was skipped).
        skipped: True when the rule could not be evaluated (``detail`` says why).
    """

    measures: dict = field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    skipped: bool = False


def _skip(why: str) -> RuleResult:
    return RuleResult(detail=why, skipped=True)


#: Renderer failure kinds (rendering.errors.FAILURE_KINDS) that mean the asset could not be
#: imported; every other kind (render_failed, timeout, crashed, ...) is a render failure.
IMPORT_FAILURE_KINDS = ("missing_file", "empty_file", "unsupported_format", "too_large", "import_failed", "missing_linked_files",
                        "linked_file_outside_asset", "unreadable_texture", "no_geometry")


def failure_reason(kind: str | None) -> str:
    """"import_failed" for an import-side renderer failure kind, else "render_failed"."""
    return "import_failed" if kind in IMPORT_FAILURE_KINDS else "render_failed"


def failure(asset: AssetInfo) -> RuleResult:
    """``import_failed`` / ``render_failed`` from asset.json's ``error``: the renderer's
    ``AssetError.to_dict()`` ({"kind", "reason", "asset"}) or a plain string (a render failure)."""
    error = asset.error
    if not error:
        return RuleResult()
    kind = error.get("kind") if isinstance(error, dict) else None
    message = error.get("reason", "") if isinstance(error, dict) else str(error)
    return RuleResult({"error_kind": kind or "render_failed"}, failure_reason(kind), f"{kind or 'render_failed'}: {message}")


def animation(asset: AssetInfo, config: CurationConfig) -> RuleResult:
    """Rule 1 (the paper's): the asset must be animated (``animation.has_animation``)."""
    anim = asset.animation
    if anim.has_animation is None:
        return _skip("asset.json has no animation.has_animation")
    result = RuleResult({"has_animation": anim.has_animation})
    if config.require_animation and not anim.has_animation:
        result.reason = "no_animation"
        result.detail = f"no animation ({anim.reason or 'no reason given'})"
    return result


def duration(asset: AssetInfo, config: CurationConfig) -> RuleResult:
    """d4d's rule: the animated range must cover at least ``min_animation_frames`` Blender
    frames, counted ``end - start + 1`` over ``animation.frame_range``."""
    anim = asset.animation
    frame_range = anim.frame_range
    if not anim.has_animation or not frame_range:
        return _skip("no animated frame range")
    start, end = float(frame_range[0]), float(frame_range[1])
    n = end - start + 1.0
    result = RuleResult({"animation_frames": n})
    if n < config.min_animation_frames:
        result.reason = "too_short"
        result.detail = f"animation covers {n:g} frames ({start:g}..{end:g}) < {config.min_animation_frames:g}"
    return result


def geometric_motion(asset: AssetInfo, config: CurationConfig) -> RuleResult:
    """Render-free motion test over ``animation.geometric_motion`` (normalised scene units,
    largest side 1): too static when max_displacement < min_geometric_max_displacement or
    mean_displacement < min_geometric_mean_displacement (each when set). A missing or
    non-finite number is recorded as None and tests nothing."""
    gm = asset.animation.geometric_motion
    if gm is None:
        return _skip("asset.json has no animation.geometric_motion")

    def finite(value: float | None) -> float | None:
        return float(value) if value is not None and math.isfinite(value) else None

    max_d, mean_d = finite(gm.max_displacement), finite(gm.mean_displacement)
    rms = [float(r) for r in gm.per_frame_rms or []]
    result = RuleResult(
        {
            "geometric_max_displacement": max_d,
            "geometric_mean_displacement": mean_d,
            "geometric_max_rms": max(rms) if rms else None,
        }
    )
    for value, threshold, name in (
        (max_d, config.min_geometric_max_displacement, "max_displacement"),
        (mean_d, config.min_geometric_mean_displacement, "mean_displacement"),
    ):
        if threshold is not None and value is not None and value < threshold:
            result.reason = "too_static"
            result.detail = f"geometric {name} {value:.4g} < {threshold:g} (scene units)"
            break
    return result


def empty_render(frames: Frames) -> RuleResult:
    """Reject when no frame of any video has any alpha (nothing was drawn)."""
    empties = {name: empty_frames(v) for name, v in frames.items()}
    n_empty = int(sum(e.sum() for e in empties.values()))
    n_total = int(sum(e.size for e in empties.values()))
    result = RuleResult({"empty_frames": n_empty, "frames_total": n_total})
    if n_total and n_empty == n_total:
        result.reason = "empty_render"
        result.detail = f"all {n_total} frames of {sorted(frames)} are fully transparent"
    return result


def ssim_frame_indices(n_frames: int, config: CurationConfig) -> list[tuple[int, int]]:
    """Frame index pairs for ``config.ssim_pairs`` in a video of ``n_frames``: floor(f * T)."""
    return [(int(math.floor(a * n_frames)), int(math.floor(b * n_frames))) for a, b in config.ssim_pairs]


def front_ssim(frames: Frames, config: CurationConfig, geometric_max_displacement: float | None = None) -> RuleResult:
    """The paper's rule 2: SSIM between front-view frames at t0, T/4, T/2.

    Uses the ``front`` video. Without it, when every pair starts at frame 0, it compares
    ``static[j]`` (time 0) with ``dynamic[j]`` (time t_j): the same camera, so again only
    the animation differs. Fires "too_static" when ``too_static_when`` of the SSIMs exceed
    ``ssim_too_static``, else "distorted" when ``distorted_when`` of them fall below
    ``ssim_distorted``.
    """
    if "front" in frames:
        video = frames["front"]
        pairs = ssim_frame_indices(len(video), config)
        images = [(video[i], video[j]) for i, j in pairs]
        source = "front"
    elif "dynamic" in frames and "static" in frames and all(a == 0.0 for a, _ in config.ssim_pairs):
        dynamic, static = frames["dynamic"], frames["static"]
        pairs = ssim_frame_indices(len(dynamic), config)
        images = [(static[j], dynamic[j]) for _, j in pairs]
        source = "dynamic_vs_static"
    else:
        return _skip("no front video (nor dynamic+static with pairs from frame 0)")
    if any(i == j for i, j in pairs):
        return _skip(f"{len(video) if source == 'front' else len(dynamic)} frames are too few for distinct SSIM pairs {pairs}")
    if min(images[0][0].shape[:2]) < SSIM_WINDOW:
        return _skip(f"frames of {images[0][0].shape[:2]} pixels are smaller than the {SSIM_WINDOW}px SSIM window")
    values = [frame_ssim(a, b, config.ssim_channels, config.ssim_background) for a, b in images]
    result = RuleResult({"ssim_source": source, "ssim_frame_pairs": [list(p) for p in pairs], "ssim": values})
    quantifier = {"all": all, "any": any}
    shown = ", ".join(f"{i}-{j}: {v:.3f}" for (i, j), v in zip(pairs, values))
    overrule = config.ssim_static_unless_geometric
    if quantifier[config.too_static_when](v > config.ssim_too_static for v in values):
        if overrule is not None and geometric_max_displacement is not None and geometric_max_displacement >= overrule:
            result.measures["ssim_too_static_overruled"] = f"geometric max displacement {geometric_max_displacement:.3g} >= {overrule:g}"
            return result
        result.reason = "too_static"
        result.detail = f"{source} SSIM {shown}; {config.too_static_when} > {config.ssim_too_static:g}"
    elif quantifier[config.distorted_when](v < config.ssim_distorted for v in values):
        result.reason = "distorted"
        result.detail = f"{source} SSIM {shown}; {config.distorted_when} < {config.ssim_distorted:g}"
    return result


def framing(frames: Frames, config: CurationConfig) -> RuleResult:
    """The paper's rule 3 (leaving the frame) and d4d's "too_small", from alpha of the
    ``frame_videos``: "leaves_frame" when any frame covers more than ``border_tolerance`` of
    the ``border_px`` edge band; "too_small" when ``coverage_statistic`` of per-frame
    coverage is below ``min_coverage``."""
    videos = [frames[v] for v in config.frame_videos if v in frames]
    if not videos:
        return _skip(f"none of the framing videos {list(config.frame_videos)} is present")
    stacked = np.concatenate(videos)
    border = border_fraction(stacked, config.border_px, config.alpha_threshold)
    cov = coverage(stacked, config.alpha_threshold)
    stat = float(getattr(np, config.coverage_statistic)(cov))
    leaving = int((border > config.border_tolerance).sum())
    result = RuleResult(
        {
            "border_max_fraction": float(border.max()),
            "frames_touching_border": leaving,
            "coverage_min": float(cov.min()),
            "coverage_median": float(np.median(cov)),
            "coverage_max": float(cov.max()),
        }
    )
    if leaving:
        result.reason = "leaves_frame"
        result.detail = (
            f"{leaving}/{len(border)} frames cover up to {border.max():.3f} of the {config.border_px}px border "
            f"(tolerance {config.border_tolerance:g})"
        )
    elif stat < config.min_coverage:
        result.reason = "too_small"
        result.detail = f"{config.coverage_statistic} coverage {stat:.4f} < {config.min_coverage:g}"
    return result


def motion(frames: Frames, asset: AssetInfo, config: CurationConfig) -> RuleResult:
    """The paper's motion magnitude m (version 1 scale): taken from asset.json when recorded,
    else computed from the dynamic and static orbits. "too_static" when below
    ``min_motion_magnitude`` (if set)."""
    m = asset.motion_magnitude
    if m is None:
        if "dynamic" not in frames or "static" not in frames:
            return _skip("no motion magnitude in asset.json and no dynamic+static orbits")
        m = motion_magnitude(frames["dynamic"], frames["static"])
    result = RuleResult({"motion_magnitude": float(m)})
    if config.min_motion_magnitude is not None and float(m) < config.min_motion_magnitude:
        result.reason = "too_static"
        result.detail = f"motion magnitude {float(m):.4g} < {config.min_motion_magnitude:g}"
    return result
