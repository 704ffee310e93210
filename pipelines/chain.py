"""Run the steps on one item, in order, timing each: the whole per-asset job, without Ray."""

from __future__ import annotations

import time
import traceback

from d4d.pipelines.work import WorkItem


class StepChain:
    """The steps of one worker. ``setup()`` once, then ``process(item)`` per asset.

    ``process`` runs each step until one finishes the item (its clips judged, or the asset
    failed); an item not finished after the last step is an error in the chain. An exception escaping a step becomes a
    retryable ``step_error`` failure naming the step, so one bad asset never stops a worker.
    A failure that comes from writing OUT (``context.space``: a write errno in the exception,
    or too little space left after a failure) sets ``item.stop`` instead: it is the run's.
    """

    def __init__(self, steps: list, context):
        self.steps = steps
        self.context = context

    def setup(self) -> None:
        for step in self.steps:
            step.setup(self.context)

    def process(self, item: WorkItem) -> WorkItem:
        for step in self.steps:
            started = time.perf_counter()
            try:
                item = step.process(item)
            except Exception as exc:  # a bug or an environment problem: record it, keep the worker alive
                if self._stops(item, exc):
                    return item
                last = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
                item.fail(step.name, "step_error", type(exc).__name__, f"{step.name}: {type(exc).__name__}: {exc} ({where})", retryable=True)
            finally:
                item.timings[step.name] = item.timings.get(step.name, 0.0) + time.perf_counter() - started
            if item.finished:
                if item.any_failed:
                    self._stops(item)
                return item
        raise RuntimeError(f"{item.uid}: no step finished the item (the last step must judge it)")

    def _stops(self, item: WorkItem, exc: BaseException | None = None) -> bool:
        """Set ``item.stop`` when a failure (``exc``, or the item's own) is a write failure of OUT."""
        space = self.context.space
        if space is None:
            return False
        text = " ".join([item.failure.detail if item.failure else ""] + [c.decision.detail for c in item.clips])
        item.stop = space.stop_line(exc, text)
        if item.stop is not None:
            item.finished = True
        return item.stop is not None

    def close(self) -> None:
        self.context.close()
