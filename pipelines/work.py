"""The unit of work that flows through the curation steps: one asset, and the outcome of each of its clips.

A ``WorkItem`` carries one source record through the steps. The ``Curate`` step judges every
clip of the asset (``curation.procedure``) and stores one ``ClipOutcome`` each; an asset that
cannot be judged at all (not fetched, not importable, a lost worker) is failed as a whole
with ``fail``. Nothing here knows about Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d4d.curation.procedure import ClipOutcome
from d4d.curation.sources import SourceRecord

#: Reasons of a whole asset's ``failed`` outcome that come from the pipeline rather than from
#: ``curation.decision`` (whose failure reasons are import_failed and render_failed).
PIPELINE_FAILURES = {
    "fetch_failed": "the source could not make the file available locally (missing, truncated, wrong checksum, network)",
    "bad_identifier": "the source's identifier or file name for the asset is unsafe or malformed",
    "duplicate": "the same bytes and format as another asset of the source (the row names which)",
    "worker_lost": "the worker process running the asset died or exceeded the asset's time budget",
    "step_error": "a pipeline step raised an unexpected exception",
    "shard_failed": "the quality render could not be written into a shard",
}


@dataclass
class AssetFailure:
    """Why a whole asset has no clip outcomes.

    Attributes:
        stage: the step that failed ("fetch", "curate", "worker", ...).
        reason: curation's import_failed / render_failed or one of PIPELINE_FAILURES.
        kind: machine-readable (rendering.errors.FAILURE_KINDS, a FetchError class name, an
            exception class name).
        detail: one human line.
        retryable: whether trying again may help (crash, timeout, lost worker, network) rather
            than being a property of the file (bad format, missing file).
    """

    stage: str
    reason: str
    kind: str
    detail: str
    retryable: bool


@dataclass
class WorkItem:
    """One asset on its way through the steps.

    Attributes:
        record: the source's record (``local_path`` and ``sha256`` set once fetched).
        caption: the asset's Cap3D caption without the training prefix, or None.
        done_clips: ids of clips an earlier run already decided (they are not judged again).
        clips: the outcome of every clip judged now.
        failure: set when the asset as a whole could not be judged.
        finished: True once a step has given the item its outcome (clips or failure).
        measures: asset-level measures (e.g. ``size_bytes``).
        timings: step name -> seconds spent in it (per-clip stages are in each clip's timings).
        stop: set (one line) when the outcome is the run's, not the asset's: OUT could not be
            written (full, failing); the driver stops the run and records nothing for the item.
    """

    record: SourceRecord
    caption: str | None = None
    done_clips: frozenset[str] = frozenset()
    clips: list[ClipOutcome] = field(default_factory=list)
    failure: AssetFailure | None = None
    finished: bool = False
    measures: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    stop: str | None = None

    @property
    def uid(self) -> str:
        return self.record.uid

    @property
    def name(self) -> str:
        """A short human name: the annotated name, else the file name of its identifier."""
        return str(self.record.metadata.get("name") or self.record.file_identifier.rstrip("/").rsplit("/", 1)[-1])

    def fail(self, stage: str, reason: str, kind: str, detail: str, retryable: bool) -> WorkItem:
        """Finish as a failed asset; ``kind`` is machine-readable, ``detail`` one line."""
        self.failure = AssetFailure(stage, reason, kind, detail, retryable)
        self.finished = True
        return self

    @property
    def any_failed(self) -> bool:
        """Whether the asset, or any clip judged now, failed."""
        return self.failure is not None or any(c.decision.decision == "failed" for c in self.clips)

    def judged(self, clips: list[ClipOutcome]) -> WorkItem:
        """Finish with the outcomes of the clips judged now."""
        self.clips = clips
        self.finished = True
        return self
