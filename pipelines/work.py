"""The unit of work that flows through the curation steps, and its outcome.

A ``WorkItem`` carries one asset record through the steps; each step reads it, adds what it
measured and either leaves it open for the next step or closes it with an outcome:
``keep`` (after the last step), ``reject`` (a curation rule fired) or ``failed`` (the asset
could not be judged). Nothing here knows about Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d4d.curation.sources import AssetRecord

#: Reasons of a ``failed`` outcome that come from the pipeline rather than from
#: ``curation.decision`` (whose failure reasons are import_failed and render_failed).
PIPELINE_FAILURES = {
    "fetch_failed": "the source could not make the file available locally (missing, truncated, wrong checksum, network)",
    "worker_lost": "the worker process running the asset died or exceeded the asset's time budget",
    "step_error": "a pipeline step raised an unexpected exception",
    "shard_failed": "the quality render could not be written into a shard",
}


@dataclass
class WorkItem:
    """One asset on its way through the steps.

    Attributes:
        record: the source's record (``local_path`` and ``sha256`` set once fetched).
        caption: the asset's Cap3D caption without the training prefix, or None.
        decision: None while open; then "keep", "reject" or "failed".
        reason: why it was rejected or failed (curation.decision.REASONS or PIPELINE_FAILURES).
        detail: one human line about the reason.
        stage: the step that closed it ("keep" items: the last step).
        error_kind: for failures, the machine-readable kind (rendering.errors.FAILURE_KINDS,
            a FetchError class name, an exception class name).
        retryable: for failures, whether trying again may help (crash, timeout, lost worker,
            network) rather than being a property of the file (bad format, missing file).
        measures: every value the steps measured (JSON-safe), e.g. geometric displacement,
            SSIMs, coverage, motion magnitude (docs/curation.md lists them).
        timings: step name -> seconds spent in it.
        render_dir: the quality render directory (kept assets), or the cheap preview render
            (rejects, when PipelineConfig.reject_previews), as a string path.
    """

    record: AssetRecord
    caption: str | None = None
    decision: str | None = None
    reason: str | None = None
    detail: str = ""
    stage: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    measures: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    render_dir: str | None = None

    @property
    def uid(self) -> str:
        return self.record.uid

    @property
    def name(self) -> str:
        """A short human name: the annotated name, else the file name of its identifier."""
        return str(self.record.metadata.get("name") or self.record.file_identifier.rstrip("/").rsplit("/", 1)[-1])

    @property
    def open(self) -> bool:
        return self.decision is None

    def close(self, stage: str, decision: str, reason: str | None = None, detail: str = "") -> WorkItem:
        self.stage, self.decision, self.reason, self.detail = stage, decision, reason, detail
        return self

    def fail(self, stage: str, reason: str, kind: str, detail: str, retryable: bool) -> WorkItem:
        """Close as failed; ``kind`` is machine-readable, ``detail`` one line."""
        self.error_kind, self.retryable = kind, retryable
        return self.close(stage, "failed", reason, detail)
