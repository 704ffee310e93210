"""The run's recent rates: assets per hour over the last minutes, per node and per stage, and
the time left at that rate (the console's summary lines and stats.json's ``recent``).

A rate over the whole run answers slowly when the run changes pace (a node joins or is lost,
the easy assets come first); a rate over the last ``window_s`` seconds follows it. Until the
run is ``window_s`` old the window is the run so far. Nothing here knows about Ray.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

#: Seconds of finished assets the recent rate looks back over (our choice; the paper says nothing).
WINDOW_S = 600.0


@dataclass
class RecentRate:
    """Finished assets of the last ``window_s`` seconds: when, on which node, seconds per stage.

    Attributes:
        started: when the run's worker pool started (seconds since the epoch).
        window_s: how far back the rate looks.
    """

    started: float
    window_s: float = WINDOW_S
    _done: collections.deque = field(default_factory=collections.deque)

    def add(self, when: float, node: str, stage_seconds: dict[str, float]) -> None:
        """One asset finished at ``when`` on ``node``, having spent ``stage_seconds`` per stage."""
        self._done.append((when, node, stage_seconds))
        self._trim(when)

    def _trim(self, now: float) -> None:
        while self._done and self._done[0][0] < now - self.window_s:
            self._done.popleft()

    def _span(self, now: float) -> float:
        return max(1e-9, now - max(self.started, now - self.window_s))

    def per_hour(self, now: float) -> float:
        """Assets per hour over the window."""
        self._trim(now)
        return 3600.0 * len(self._done) / self._span(now)

    def eta_s(self, remaining: int, now: float) -> float | None:
        """Seconds left for ``remaining`` assets at the recent rate; None before any finished."""
        rate = self.per_hour(now)
        return 3600.0 * remaining / rate if rate > 0 else None

    def by_node(self, now: float) -> dict[str, float]:
        """Assets per hour of each node that finished one in the window."""
        self._trim(now)
        counts = collections.Counter(node for _, node, _ in self._done)
        return {node: 3600.0 * n / self._span(now) for node, n in sorted(counts.items())}

    def by_stage(self, now: float) -> dict[str, float]:
        """Mean seconds per asset in each stage over the window (worker time; an asset that did
        not reach a stage counts 0 there)."""
        self._trim(now)
        total: collections.Counter = collections.Counter()
        for _, _, stages in self._done:
            total.update(stages)
        return {stage: seconds / len(self._done) for stage, seconds in total.items()} if self._done else {}

    def snapshot(self, remaining: int, now: float) -> dict:
        """stats.json's ``recent``: the window, the rate, the ETA at it, per node and per stage."""
        return {"window_s": min(self.window_s, now - self.started), "assets_per_hour": self.per_hour(now), "eta_s": self.eta_s(remaining, now),
                "assets_per_hour_by_node": self.by_node(now), "stage_seconds_per_asset": self.by_stage(now)}


def duration(seconds: float | None) -> str:
    """``ETA``-style text: seconds, minutes or hours."""
    if seconds is None:
        return "unknown"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
