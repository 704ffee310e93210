"""Which clips an asset gives and which frames each shows. Pure Python: Blender only evaluates.

A clip is (asset, animation, window): every animation of the file (glTF animation, FBX take,
action) is a candidate of its own, and an animation longer than one window becomes several
windows, chosen by vertex motion (docs/rendering.md, "Clips and windows"):

- consecutive samples are at most ``max_sample_step_s`` seconds of animation apart, so a
  T-frame window spans at most (T - 1) * max_sample_step_s seconds;
- a shorter animation is one window over its whole animated span (T frames, closer together);
- a longer one is probed along its span and gives up to ``max_windows_per_action``
  non-overlapping windows, the most moving first (``timeline.choose_windows``);
- ``time_sampling="first_frames"`` is the released script's Blender frames 0..T-1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from d4d.rendering.contract import AnimationInfo, GeometricMotion
from d4d.rendering.options import RenderOptions
from d4d.rendering.timeline import TimeSampling, Window, choose_windows, first_frames_sampling, probe_frames, sample_timeline, trim_still_ends, window_length

#: Largest vertex displacement (normalised-scene units) below which an "animated" clip is still.
STILL_DISPLACEMENT = 1e-5
#: Frames probed to find where a cache (Alembic, USD), which has no keys, really moves.
CACHE_PROBES = 65

#: probe(clip name, frames) -> {"extent", "step_motion": [P-1]} (the Blender session's probe).
Probe = Callable[[str | None, list[float]], dict]


@dataclass(frozen=True)
class ClipPlan:
    """One clip of an asset, ready to analyse and render.

    Attributes:
        name: the animation it plays (None: the file's default, which has no single name).
        suffix: "" when it is the asset's only clip, else the part that makes its id unique
            (``clip_id(uid, plan)``): a slug and hash of the name and the window rank.
        sampling: the Blender frames and normalised times of its T samples, and why.
        window: where on the animation's timeline it sits (None for the paper's sampling or no animation).
        default: whether it is what the file plays as imported.
    """

    name: str | None
    suffix: str
    sampling: TimeSampling
    window: Window | None
    default: bool

    def subsampled(self, n: int) -> ClipPlan:
        """The same clip shown by ``n`` of its samples, evenly spaced (first and last kept): a
        cheaper preview of it."""
        keep = np.unique(np.round(np.linspace(0, len(self.sampling.frames) - 1, n)).astype(int))
        s = self.sampling
        sampling = TimeSampling(s.start, s.end, s.frames[keep], s.times[keep], s.has_animation, s.reason)
        return ClipPlan(self.name, self.suffix, sampling, self.window, self.default)

    def window_info(self, fps: float) -> dict | None:
        """asset.json's ``animation.window``: where the window sits and why it was chosen."""
        if self.window is None:
            return None
        w = self.window
        return {
            "rank": w.rank, "candidates": w.candidates, "start_frame": w.start, "end_frame": w.end,
            "start_s": w.start / fps, "end_s": w.end / fps, "motion": w.motion,
            "rule": "most vertex motion first among non-overlapping windows; samples at most max_sample_step_s apart",
        }


def _slug(name: str | None) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", (name or "default").lower()).strip("-")[:32] or "clip"
    return f"{text}-{hashlib.sha256((name or '').encode()).hexdigest()[:6]}"


def clip_id(uid: str, plan: ClipPlan) -> str:
    """The id of a clip: the asset's uid for its only clip, else ``<uid>--<slug>-<hash>-w<rank>``.
    Stable across reruns with the same settings; safe as a file name whatever the animation is called."""
    return uid if not plan.suffix else f"{uid}--{plan.suffix}"


def _samplings(clip: dict, fps: float, scene_start: float, options: RenderOptions, probe: Probe) -> list[tuple[TimeSampling, Window | None]]:
    """The samplings (one per window) of one clip described by the Blender session."""
    if options.time_sampling == "first_frames":
        return [(first_frames_sampling(options.frames), None)]
    span = tuple(clip["span"]) if clip["span"] else None
    if span is not None and clip["cache"]:
        frames = list(np.linspace(span[0], span[1], CACHE_PROBES))
        span = trim_still_ends(np.asarray(frames), probe(clip["name"], frames)["step_motion"]) or span
    length = window_length(options.frames, fps, options.max_sample_step_s)
    if span is None or length is None or span[1] - span[0] <= length:
        sampling = sample_timeline(span, options.frames, scene_start)
        return [(sampling, Window(sampling.start, sampling.end) if sampling.has_animation else None)]
    probes = probe_frames(span, options.max_sample_step_s * fps)
    motion = np.asarray(probe(clip["name"], [float(f) for f in probes])["step_motion"])
    windows = choose_windows(span, length, probes, motion, options.max_windows_per_action)
    out = []
    for w in windows:
        base = sample_timeline((w.start, w.end), options.frames, scene_start)
        reason = (f"window {w.rank + 1} of {len(windows)} by motion ({w.candidates} candidates) of the animated span "
                  f"{span[0]:g}..{span[1]:g}: frames {w.start:g}..{w.end:g}")
        out.append((TimeSampling(base.start, base.end, base.frames, base.times, True, reason), w))
    return out


def plan_clips(description: dict, options: RenderOptions, probe: Probe, only_requested: bool = False) -> list[ClipPlan]:
    """The clips of a described asset (rendering.blender.session.AssetSession.describe).

    Args:
        options: frames per clip and the time-sampling settings.
        probe: evaluates vertex motion along a clip's timeline (only called for caches and
            animations longer than one window).
        only_requested: just the clip d4d-render renders: the animation ``options.action`` (None:
            the default) and its window of rank ``options.window``.
    """
    clips = description["clips"]
    if only_requested:
        wanted = [c for c in clips if (c["default"] if options.action is None else c["name"] == options.action)]
        if not wanted:
            names = ", ".join(repr(c["name"]) for c in clips if c["name"] is not None) or "none"
            raise ValueError(f"no animation named {options.action!r} (animations: {names})")
        clips = wanted
    plans = []
    for clip in clips:
        for sampling, window in _samplings(clip, description["fps"], description["scene_start"], options, probe):
            plans.append(ClipPlan(clip["name"], "", sampling, window, clip["default"]))
    # Several clips in all (more than one animation, or more than one window of this one): each
    # is named by its suffix, the same whether all of them or just one were planned.
    if len(description["clips"]) > 1 or len(plans) > 1:
        plans = [ClipPlan(p.name, f"{_slug(p.name)}-w{p.window.rank if p.window else 0}", p.sampling, p.window, p.default) for p in plans]
    if only_requested:
        ranked = [p for p in plans if (p.window.rank if p.window else 0) == options.window]
        if not ranked:
            raise ValueError(f"window {options.window}: animation {options.action!r} has {len(plans)} window(s)")
        return ranked
    return plans


def animation_info(plan: ClipPlan, description: dict, analysis: dict) -> AnimationInfo:
    """asset.json's ``animation`` for an analysed clip. A clip whose channels play but whose
    vertices never move is recorded as having no animation."""
    clip = next(c for c in description["clips"] if c["name"] == plan.name and c["default"] == plan.default)
    motion = GeometricMotion.from_dict(analysis["geometric_motion"], "analysis.geometric_motion")
    has, reason = plan.sampling.has_animation, plan.sampling.reason
    if has and motion.comparable and motion.max_displacement < STILL_DISPLACEMENT:
        has, reason = False, f"no animation: channels drive frames {plan.sampling.start:g}..{plan.sampling.end:g} but no vertex moves"
    return AnimationInfo(
        has_animation=has, reason=reason, action=plan.name, actions=description["actions"], sources=clip["sources"],
        frame_range=[plan.sampling.start, plan.sampling.end], sampled_frames=[float(f) for f in plan.sampling.frames],
        fps=description["fps"], geometric_motion=motion, window=plan.window_info(description["fps"]),
    )
