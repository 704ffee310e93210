"""The curation run's console, through ``d4d.progress``: a bar of finished assets with the
elapsed time and the time left at the recent rate (``pipelines.rates``), the clips this run
kept, rejected and failed; one line per finished asset above it; and every ``every_s``
seconds a line with each node's rate and the seconds per asset in each stage.

On a terminal the bar is redrawn in place on stderr below the lines (stdout); in a log file
it becomes a plain line at most every ``d4d.progress.PLAIN_EVERY_S`` seconds.
"""

from __future__ import annotations

import collections
import time

from d4d.pipelines.rates import RecentRate, duration
from d4d.pipelines.work import WorkItem
from d4d.progress import bar, say

#: Seconds between summary lines (and table refreshes) while the run goes on.
SUMMARY_EVERY_S = 30.0


class RunProgress:
    """Finished assets of a run of ``total`` (``done`` finished before it started at
    ``started``, seconds since the epoch) and the console that shows them."""

    def __init__(self, total: int, done: int, started: float, every_s: float = SUMMARY_EVERY_S):
        self.total, self.done, self.started, self.every_s = total, done, started, every_s
        self.counts: collections.Counter = collections.Counter()
        self.finished_here = 0
        self.last_summary = started
        self.recent = RecentRate(started)
        self.bar = None

    def restart(self, started: float) -> None:
        """The worker pool started at ``started`` (seconds since the epoch): rates count from then."""
        self.started = self.last_summary = started
        self.recent = RecentRate(started)

    def open(self) -> None:
        """Show the bar (when workers start on assets; a rerun with none left shows none)."""
        self.bar = bar(self.total, "curate", unit="assets", initial=self.done, rate=self._per_second)
        self.bar.set_postfix_str(self.clips(), refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _per_second(self) -> float | None:
        return self.recent.per_hour(time.time()) / 3600.0 or None

    def clips(self) -> str:
        c = self.counts
        return f"this run's clips: keep {c['keep']} reject {c['reject']} failed {c['failed']}"

    def asset(self, item: WorkItem, events: list, judged: bool = True, node: str = "?") -> None:
        """Report a finished asset from its results (``Outcome``: one per clip, or its failure),
        finished on ``node``; ``judged`` False for an entry the source could not hand over (not
        counted in the rate)."""
        self.done += 1
        self.finished_here += judged
        if judged:
            stages: collections.Counter = collections.Counter()
            for e in events:
                stages.update(e.timings)
            self.recent.add(time.time(), node, dict(stages))
        self.counts.update(e.decision for e in events)
        seconds = sum(sum(e.timings.values()) for e in events)
        verdicts = collections.Counter(e.decision + (f" {e.reason}" if e.reason else "") for e in events)
        what = ", ".join(f"{n} {v}" if n > 1 else v for v, n in sorted(verdicts.items()))
        failed = [e for e in events if e.decision == "failed"]
        detail = f" ({(failed[0].detail or '')[:100]})" if failed else ""
        clips = f"{len(events)} clips: " if len(events) > 1 else ""
        say(f"[{self.done}/{self.total}] {item.name[:40]} {clips}{what} in {seconds:.1f}s{detail}")
        if self.bar is not None:
            self.bar.set_postfix_str(self.clips(), refresh=False)
            self.bar.update(1)

    def tick(self) -> bool:
        """Say a summary line if it is time; True when it did."""
        now = time.time()
        if now - self.last_summary < self.every_s:
            return False
        self.last_summary = now
        rate = self.recent.per_hour(now)
        nodes = ", ".join(f"{node} {rate:.0f}/h" for node, rate in self.recent.by_node(now).items()) or "none yet"
        stages = " ".join(f"{stage} {seconds:.2f}" for stage, seconds in self.recent.by_stage(now).items())
        say(f"[{self.done}/{self.total} assets] {self.clips()} | {rate:.0f} assets/h, "
            f"ETA {duration(self.recent.eta_s(self.total - self.done, now))} (this run: {self.finished_here} in {now - self.started:.0f}s) | "
            f"last {duration(min(self.recent.window_s, now - self.started))} by node: {nodes}" + (f" | s/asset: {stages}" if stages else ""))
        return True
