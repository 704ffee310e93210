"""The curation steps: fetch the asset, then judge every clip of it (curation.procedure).

Each step knows nothing about Ray. ``setup(context)`` takes what is expensive once per worker
(the source, the shared warm Blender ``Renderer`` in ``context``); ``process(item)`` handles
one ``WorkItem`` and either leaves it open for the next step or finishes it. ``resources``
says what one worker running the step reserves. ``pipelines.ray_adapter`` maps the steps onto
Ray; the tests call them directly.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from d4d import storage
from d4d.curation.procedure import StagedDecision
from d4d.curation.rules import failure_reason
from d4d.curation.sources import FetchError
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.sources import SourceSpec, open_source
from d4d.pipelines.space import SpaceGuard
from d4d.pipelines.work import WorkItem
from d4d.rendering.api import Limits, Renderer
from d4d.rendering.contract import AssetInfo
from d4d.rendering.errors import AssetError
from d4d.shards.files import ShardNames
from d4d.shards.writer import ShardWriteConfig, write_shards


@dataclass(frozen=True)
class Resources:
    """What a worker running a step reserves: Ray logical CPUs and GPUs."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def times(self, n: int) -> Resources:
        """What ``n`` workers of these needs reserve together."""
        return Resources(self.num_cpus * n, self.num_gpus * n)


class WorkerContext:
    """Per-worker state shared by the steps: one warm Blender ``Renderer`` and a scratch folder.

    Args:
        log_dir: where the Blender worker logs go (one file per Blender process).
        scratch_dir: parent of the temporary pre-check / pre-pass renders.
        limits: resource bounds of the Blender worker.
        space: the free space OUT must keep (pipelines.space); a failure while it is short, or
            from a write error, stops the run instead of failing the asset. None: not checked.
    """

    def __init__(self, log_dir: Path, scratch_dir: Path | None = None, limits: Limits = Limits(), space: SpaceGuard | None = None):
        self.log_dir = Path(log_dir)
        self.space = space
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="d4d-curate-", dir=scratch_dir))
        self.limits = limits
        self._renderer = None

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._renderer = Renderer(log_dir=self.log_dir, limits=self.limits)
        return self._renderer

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        shutil.rmtree(self.scratch_dir, ignore_errors=True)


class Fetch:
    """Make the record's file local and check it (exists, non-empty, complete glb, sha256)."""

    name = "fetch"
    resources = Resources(num_cpus=1.0)

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.source = None

    def setup(self, context: WorkerContext) -> None:
        self.source = open_source(self.spec)

    def process(self, item: WorkItem) -> WorkItem:
        try:
            item.record = self.source.fetch(item.record)
        except FetchError as exc:
            return item.fail(self.name, "fetch_failed", exc.kind, str(exc), retryable=exc.retryable)
        item.measures["size_bytes"] = Path(item.record.local_path).stat().st_size
        return item


def identity(item: WorkItem):
    """The annotation a kept clip's asset.json gets: its clip id, the asset's uid, license,
    caption, and where the file came from (shards key rows by the clip id)."""
    record = item.record

    def annotate(asset: AssetInfo, clip_id: str) -> None:
        asset.uid, asset.asset_uid, asset.license = clip_id, record.uid, record.license
        if item.caption is not None:
            asset.caption = item.caption
        asset.source.url, asset.source.record = record.file_identifier, record.source

    return annotate


class Curate:
    """Judge every clip of the fetched asset with one import (curation.procedure.StagedDecision):
    kept clips' quality renders go to ``renders_dir/<clip id>``, rejects' previews to
    ``previews/<clip id>`` beside it."""

    name = "curate"

    def __init__(self, config: PipelineConfig, renders_dir: Path):
        self.config = config
        self.renders_dir = Path(renders_dir)
        self.previews_dir = self.renders_dir.parent / "previews"
        self.resources = Resources(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker)
        self.procedure: StagedDecision | None = None

    def setup(self, context: WorkerContext) -> None:
        self.procedure = StagedDecision(self.config.worker_decision(), context.renderer, context.scratch_dir)

    def process(self, item: WorkItem) -> WorkItem:
        record = item.record
        annotate = identity(item)
        try:
            outcomes = self.procedure.run(
                record.local_path, record.uid, self.renders_dir, self.previews_dir, sha256=record.sha256,
                done=item.done_clips, annotate=annotate,
            )
        except AssetError as exc:
            retryable = exc.kind in ("crashed", "timeout")
            return item.fail(self.name, failure_reason(exc.kind), exc.kind, f"{exc.kind}: {exc.reason}", retryable)
        if outcomes and "fetch" in item.timings:  # per-clip rows carry per-clip stages; the fetch goes with the first
            outcomes[0].timings = {"fetch": item.timings["fetch"], **outcomes[0].timings}
        return item.judged(outcomes)


class WriteShards:
    """Write a batch of quality render directories into the run's shards (shards.write_shards).

    Several writers of one shard directory each take shard names of their own (``names``:
    writer k of n, shards.files.ShardNames) and, with a URI, a staging folder of their own.
    A uid already in a shard is skipped by write_shards, so a batch written again after an
    interruption adds no duplicate rows. ``process`` returns ``{"written": [uid],
    "skipped": [uid], "failed": {uid: reason}, "shards": [path], "stop": line or None}`` (the
    uid of ``renders_dir/<uid>`` is its directory name: the clip id). ``stop`` is set, and
    ``failed`` emptied, when writing failed because OUT could not be written (``space``):
    those renders are not the failures, the run is.
    """

    name = "shards"
    resources = Resources(num_cpus=1.0)

    def __init__(self, shard_dir: Path | str, codec: str, max_shard_mb: float, space: SpaceGuard | None = None, staging: Path | None = None,
                 names: ShardNames = ShardNames()):
        """``shard_dir`` a folder, or a URI whose shards are built in the local ``staging`` folder and uploaded (shards.remote)."""
        self.shard_dir = shard_dir if storage.is_uri(shard_dir) else Path(shard_dir)
        self.codec, self.max_shard_mb, self.space, self.staging, self.names = codec, max_shard_mb, space, staging, names

    def setup(self, context: WorkerContext | None = None) -> None:
        (self.staging if storage.is_uri(self.shard_dir) else self.shard_dir).mkdir(parents=True, exist_ok=True)

    def process(self, render_dirs: list[str]) -> dict:
        try:
            report = write_shards(render_dirs, self.shard_dir, ShardWriteConfig(codec=self.codec, max_shard_mb=self.max_shard_mb), staging=self.staging,
                                  names=self.names)
        except (OSError, ValueError) as exc:  # ValueError: the URI (its bucket) went away
            stop = self.space.stop_line(exc) if self.space is not None and isinstance(exc, OSError) else None
            if stop is None and storage.is_uri(self.shard_dir):
                stop = f"OUT cannot be written: uploading shards to {self.shard_dir} failed ({str(exc).splitlines()[0][:200]}); fix that and rerun the same command to finish"
            if stop is None:
                raise
            return {"written": [], "skipped": [], "failed": {}, "shards": [], "stop": stop}

        def uid(path: str) -> str:
            return Path(path).name

        failed = {uid(p): reason for p, reason in report.failed.items()}
        stop = self.space.stop_line(text=" ".join(failed.values())) if failed and self.space is not None else None
        return {
            "written": [uid(p) for p in report.written],
            "skipped": [uid(p) for p in report.skipped],
            "failed": {} if stop else failed,
            "shards": [str(p) for p in report.shards],
            "stop": stop,
        }


def default_steps(spec: SourceSpec, config: PipelineConfig, renders_dir: Path) -> list:
    """The curation chain, in order."""
    return [Fetch(spec), Curate(config, renders_dir)]


def chain_resources(steps: list) -> Resources:
    """A worker runs the steps one after another, so it reserves the largest need of any step."""
    return Resources(max(s.resources.num_cpus for s in steps), max(s.resources.num_gpus for s in steps))
