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
class Window:
    """A stretch of an action's timeline that one clip shows.

    Attributes:
        start, end: Blender frames (fractional allowed) of its first and last sample.
        motion: summed probe-to-probe vertex motion inside it (fractions of the scene's largest
            side), the measure windows are chosen by.
        rank: 0 for the window with the most motion, 1 for the next, ...
        candidates: how many candidate windows the action's timeline offered.
    """

    start: float
    end: float
    motion: float = 0.0
    rank: int = 0
    candidates: int = 1


def window_length(n_frames: int, fps: float, max_sample_step_s: float | None) -> float | None:
    """Blender frames a T-frame window may span so that consecutive samples are at most
    ``max_sample_step_s`` seconds of animation apart; None when there is no bound."""
    if max_sample_step_s is None:
        return None
    return (n_frames - 1) * max_sample_step_s * fps


def probe_frames(span: Span, step_frames: float, max_probes: int = 241) -> np.ndarray:
    """Increasing frames covering ``span`` about ``step_frames`` apart (at most ``max_probes``, at least 2)."""
    start, end = span
    count = int(np.clip(np.ceil((end - start) / max(step_frames, 1e-9)) + 1, 2, max_probes))
    return np.linspace(start, end, count)


def choose_windows(span: Span, length: float, probes: np.ndarray, step_motion: np.ndarray, max_windows: int) -> list[Window]:
    """Up to ``max_windows`` non-overlapping windows of ``length`` frames inside ``span``, most motion first.

    Candidates start at every probe frame that leaves room for the window, plus one ending at
    the span's end; each scores the probe-to-probe motion (``step_motion`` [P-1] between
    ``probes`` [P]) whose interval midpoint falls inside it. The highest-scoring candidate is
    taken first, then the best one that overlaps none taken, and so on (ties: the earlier).
    A span no longer than ``length`` is one window covering it.
    """
    start, end = span
    if end - start <= length + 1e-9:
        return [Window(start, end, float(np.sum(step_motion)), 0, 1)]
    starts = [float(p) for p in probes if p <= end - length + 1e-9]
    if not starts or end - length - starts[-1] > 1e-6:
        starts.append(end - length)
    mids = (probes[:-1] + probes[1:]) / 2.0
    motion = [float(step_motion[(mids >= s) & (mids <= s + length)].sum()) for s in starts]
    order = sorted(range(len(starts)), key=lambda i: (-motion[i], starts[i]))
    chosen: list[int] = []
    for i in order:
        if len(chosen) == max_windows:
            break
        if all(abs(starts[i] - starts[j]) >= length - 1e-6 for j in chosen):
            chosen.append(i)
    return [Window(float(starts[i]), float(starts[i] + length), motion[i], rank, len(starts)) for rank, i in enumerate(chosen)]


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


def first_frames_sampling(n_frames: int) -> TimeSampling:
    """The released script's sampling: Blender frames 0 .. T-1, whatever the animation's range."""
    frames = np.arange(n_frames, dtype=np.float64)
    return TimeSampling(0.0, float(n_frames - 1), frames, np.linspace(0.0, 1.0, n_frames), True,
                        f"the released script's frames 0..{n_frames - 1}, whatever the animated range")


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


def trim_still_ends(probes: np.ndarray, step_motion: list[float], tolerance: float = 1e-6) -> Span | None:
    """Cut the still head and tail off a span probed at ``probes`` [P].

    Args:
        probes: increasing Blender frames covering the span.
        step_motion: [P-1] vertex motion between consecutive probes (any unit; a change of
            topology should count as motion).
        tolerance: a probe-to-probe motion at or below this counts as still.

    Returns:
        (first frame before motion starts, first frame after it stops), or None when nothing moves.
    """
    moving = [m > tolerance for m in step_motion]
    if not any(moving):
        return None
    first = moving.index(True)
    last = len(moving) - 1 - moving[::-1].index(True)
    return (float(probes[first]), float(probes[last + 1]))
