"""Which part of an asset's timeline to render, pure Python (no Blender).

An animation channel (an F-curve) can hold still for a long time before it moves: its
*active span* runs from the last key before the value first changes to the first key after
it last changes. The asset's animated range is the union of the active spans of everything
that drives it (actions, NLA strips, caches); d4d samples that range, not frames 0..23.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Span = tuple[float, float]


def fcurve_active_span(keys: list[tuple[float, float]], tolerance: float = 1e-6) -> Span | None:
    """Active span of one channel from its keyframes [(frame, value), ...]; None if it never changes.

    Assumes the curve holds its value between two equal keys (true for constant, linear and
    Blender's default auto-clamped Bezier interpolation).
    """
    keys = sorted(keys)
    changing = [i for i in range(len(keys) - 1) if abs(keys[i + 1][1] - keys[i][1]) > tolerance]
    if not changing:
        return None
    # Importers leave float noise on key times (0.999999 for 1): keep 1e-4 frame precision.
    return (round(float(keys[changing[0]][0]), 4), round(float(keys[changing[-1] + 1][0]), 4))


def union_span(spans: list[Span | None]) -> Span | None:
    """Smallest span covering every non-None span; None if there are none."""
    real = [s for s in spans if s is not None]
    if not real:
        return None
    return (min(s[0] for s in real), max(s[1] for s in real))


@dataclass(frozen=True)
class TimeSampling:
    """The frames a clip shows.

    Attributes:
        start, end: Blender frames (fractional allowed) of the first and last sample.
        frames: [T] Blender frame of each sample, evenly spaced from start to end.
        times: [T] normalised time of each sample, i / (T - 1), in [0, 1].
        has_animation: False when nothing drives the asset (all samples show ``start``).
        reason: one line saying why this range was chosen.
    """

    start: float
    end: float
    frames: np.ndarray
    times: np.ndarray
    has_animation: bool
    reason: str


def sample_timeline(span: Span | None, n_frames: int, fallback_frame: float, min_span_frames: float = 1.0) -> TimeSampling:
    """Sample ``n_frames`` evenly over ``span`` (inclusive); a missing or too short span gives a still clip.

    Args:
        span: the animated range, or None when nothing is animated.
        n_frames: T, at least 2.
        fallback_frame: the frame a still clip shows (the scene's first frame).
        min_span_frames: spans shorter than this count as no animation.
    """
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    times = np.linspace(0.0, 1.0, n_frames)
    if span is None:
        frames = np.full(n_frames, float(fallback_frame))
        return TimeSampling(fallback_frame, fallback_frame, frames, times, False, "no animation: nothing drives the asset")
    start, end = span
    if end - start < min_span_frames:
        frames = np.full(n_frames, float(start))
        return TimeSampling(start, start, frames, times, False, f"no animation: animated span {end - start:g} frames is shorter than {min_span_frames:g}")
    frames = start + (end - start) * times
    return TimeSampling(start, end, frames, times, True, f"animated span of the driving channels: frames {start:g}..{end:g}")


def trim_still_ends(probe_frames: np.ndarray, tracks: list, tolerance: float = 1e-6) -> Span | None:
    """Cut the still head and tail off a span probed at ``probe_frames`` [P].

    Args:
        probe_frames: increasing Blender frames covering the span.
        tracks: [P] vertex arrays [M, 3] evaluated at each probe frame (None where the topology
            changed, which counts as motion).
        tolerance: a probe-to-probe vertex displacement below this counts as still.

    Returns:
        (first frame before motion starts, first frame after it stops), or None when nothing moves.
    """
    moving = []
    for i in range(len(tracks) - 1):
        a, b = tracks[i], tracks[i + 1]
        moving.append(a is None or b is None or a.shape != b.shape or bool(np.any(np.abs(a - b) > tolerance)))
    if not any(moving):
        return None
    first = moving.index(True)
    last = len(moving) - 1 - moving[::-1].index(True)
    return (float(probe_frames[first]), float(probe_frames[last + 1]))
