"""The curation steps: fetch, geometric pre-check, fast pre-pass, quality render, motion magnitude.

Each step knows nothing about Ray. ``setup(context)`` takes what is expensive once per worker
(the source, the shared warm Blender ``Renderer`` in ``context``); ``process(item)`` handles
one ``WorkItem`` and either leaves it open for the next step or closes it with a recorded
rejection or failure. ``resources`` says what one worker running the step reserves.
``pipelines.ray_adapter`` maps the steps onto Ray; the tests call them directly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from d4d.curation.decision import Decision, decide
from d4d.curation.rules import failure_reason
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.sources import SourceSpec, open_source
from d4d.pipelines.work import WorkItem

#: Renderer failure kinds worth another try (the same file may well succeed next time).
RETRYABLE_RENDER_KINDS = ("crashed", "timeout", "render_failed")


@dataclass(frozen=True)
class Resources:
    """What a worker running a step reserves: Ray logical CPUs and GPUs."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


class WorkerContext:
    """Per-worker state shared by the steps: one warm Blender ``Renderer`` and a scratch folder.

    Args:
        log_dir: where the Blender worker logs go (one file per Blender process).
        scratch_dir: parent of the temporary pre-check / pre-pass renders.
    """

    def __init__(self, log_dir: Path, scratch_dir: Path | None = None):
        self.log_dir = Path(log_dir)
        self.scratch_dir = Path(tempfile.mkdtemp(prefix="d4d-curate-", dir=scratch_dir))
        self._renderer = None

    @property
    def renderer(self):
        if self._renderer is None:
            from d4d.rendering.api import Renderer

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._renderer = Renderer(log_dir=self.log_dir)
        return self._renderer

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        shutil.rmtree(self.scratch_dir, ignore_errors=True)


def _render_failure(item: WorkItem, stage: str, exc) -> WorkItem:
    """A renderer AssetError as a failed item (curation's import_failed / render_failed)."""
    return item.fail(stage, failure_reason(exc.kind), exc.kind, f"{exc.kind}: {exc.reason}", exc.kind in RETRYABLE_RENDER_KINDS)


def _apply_decision(item: WorkItem, stage: str, decision: Decision) -> WorkItem:
    """Merge a curation decision's measures; close the item unless it was kept."""
    item.measures.update(decision.measures)
    if decision.decision == "failed":  # asset.json carried an error
        return item.fail(stage, decision.reason, item.measures.get("error_kind") or decision.reason, decision.detail, retryable=False)
    if decision.decision == "reject":
        return item.close(stage, "reject", decision.reason, decision.detail)
    return item


def _settle_preview(out: Path, item: WorkItem, previews_dir: Path | None) -> None:
    """A rejected item's preview render moves to ``previews_dir/<uid>`` (so reports can show
    why it was rejected, and ``render_dir`` points there); any other is deleted."""
    if previews_dir is not None and item.decision == "reject" and (out / "transforms.json").exists():
        target = previews_dir / item.uid
        previews_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(out, target)
        item.render_dir = str(target)
    else:
        shutil.rmtree(out, ignore_errors=True)


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
        from d4d.curation.sources import ChecksumMismatch, FetchError, InvalidAsset, MissingFromCache

        try:
            item.record = self.source.fetch(item.record)
        except FetchError as exc:
            permanent = isinstance(exc, (MissingFromCache, InvalidAsset, ChecksumMismatch))
            return item.fail(self.name, "fetch_failed", type(exc).__name__, str(exc), retryable=not permanent)
        item.measures["size_bytes"] = Path(item.record.local_path).stat().st_size
        return item


class GeometricPrecheck:
    """Render-free rules from a tiny render's asset.json: animation found, its length, vertex motion.

    The renderer has no analyse-only mode, so this renders the front video at
    ``precheck_resolution`` with workbench (cheap) and reads only its asset.json: the
    animation range and the geometric motion of the evaluated vertices
    (docs/conventions.md). Rejects no_animation / too_short / too_static before any real render.
    """

    name = "precheck"
    resources = Resources(num_cpus=1.0)

    def __init__(self, config: PipelineConfig, previews_dir: Path | None = None):
        self.config = config
        self.previews_dir = previews_dir
        self.context: WorkerContext | None = None

    def setup(self, context: WorkerContext) -> None:
        self.context = context

    def process(self, item: WorkItem) -> WorkItem:
        from d4d.rendering.errors import AssetError
        from d4d.rendering.options import PREVIEW_PRESET, RenderOptions

        options = RenderOptions(
            **PREVIEW_PRESET, resolution=self.config.precheck_resolution, frames=self.config.frames, videos=("front",), timeout_s=self.config.prepass_timeout_s
        )
        out = self.context.scratch_dir / f"{item.uid}-precheck"
        try:
            asset_json = self.context.renderer.render(item.record.local_path, out, options, overwrite=True)
        except AssetError as exc:
            shutil.rmtree(out, ignore_errors=True)
            return _render_failure(item, self.name, exc)
        _apply_decision(item, self.name, decide(asset_json, None, self.config.curation))
        _settle_preview(out, item, self.previews_dir)
        return item


#: Rules whose verdict depends on image fidelity (front-view SSIM). A low-resolution Workbench
#: render can cross their thresholds where the quality render does not (benchmarks/RESULTS.md:
#: a morphing cube read as "distorted" at 64 px), so the pre-pass never rejects on them alone:
#: the quality render decides.
IMAGE_FIDELITY_RULES = frozenset({"front_ssim"})


class Prepass:
    """Fast pre-pass: all three videos at ``prepass_resolution`` with workbench, then every rule.

    It rejects only on verdicts a preview can be trusted with; one that rests on image-fidelity
    rules alone is left to the quality render's final decision (``QualityRender``)."""

    name = "prepass"
    resources = Resources(num_cpus=1.0)

    def __init__(self, config: PipelineConfig, previews_dir: Path | None = None):
        self.config = config
        self.previews_dir = previews_dir
        self.context: WorkerContext | None = None

    def setup(self, context: WorkerContext) -> None:
        self.context = context

    def process(self, item: WorkItem) -> WorkItem:
        from d4d.rendering.contract import RenderContractError, load_render
        from d4d.rendering.errors import AssetError
        from d4d.rendering.options import PREVIEW_PRESET, RenderOptions

        options = RenderOptions(**PREVIEW_PRESET, resolution=self.config.prepass_resolution, frames=self.config.frames, timeout_s=self.config.prepass_timeout_s)
        out = self.context.scratch_dir / f"{item.uid}-prepass"
        try:
            self.context.renderer.render(item.record.local_path, out, options, overwrite=True)
            sample = load_render(out)
        except AssetError as exc:
            shutil.rmtree(out, ignore_errors=True)
            return _render_failure(item, self.name, exc)
        except (RenderContractError, OSError, ValueError) as exc:
            shutil.rmtree(out, ignore_errors=True)
            return item.fail(self.name, "render_failed", "unreadable_render", f"pre-pass render unreadable: {exc}", retryable=True)
        frames = {name: video.rgba for name, video in sample.videos.items()}
        decision = decide(sample.asset, frames, self.config.curation)
        if decision.decision == "reject" and set(decision.measures["rules_fired_by"]) <= IMAGE_FIDELITY_RULES:
            item.measures.update(decision.measures)
            item.measures["prepass_deferred"] = f"{decision.reason}: {decision.detail}"
        else:
            _apply_decision(item, self.name, decision)
        _settle_preview(out, item, self.previews_dir)
        return item


def annotate_asset_json(render_dir: Path, item: WorkItem) -> dict:
    """Add the record's identity to asset.json (``uid``, ``license``, ``caption`` when known,
    ``source.url``, ``source.record``) so shards key rows by the source's uid; written atomically."""
    path = Path(render_dir) / "asset.json"
    asset = json.loads(path.read_text())
    record = item.record
    asset["uid"] = record.uid
    asset["license"] = record.license
    if item.caption is not None:
        asset["caption"] = item.caption
    asset["source"] = {**asset.get("source", {}), "url": record.file_identifier, "record": record.source}
    temp = path.with_name(f".asset.json.{os.getpid()}.tmp")
    temp.write_text(json.dumps(asset, indent=2))
    os.replace(temp, path)
    return asset


class QualityRender:
    """Render a kept asset with the quality settings into ``renders_dir/<uid>`` (replacing it),
    then decide again on the quality frames: that decision is final (a reject's render is removed)."""

    name = "quality"

    def __init__(self, config: PipelineConfig, renders_dir: Path):
        self.config = config
        self.renders_dir = Path(renders_dir)
        self.context: WorkerContext | None = None
        self.resources = Resources(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker)

    def setup(self, context: WorkerContext) -> None:
        self.context = context

    def options(self):
        from d4d.rendering.options import RenderOptions

        extra = {} if self.config.samples is None else {"samples": self.config.samples}
        if self.config.engine == "workbench":
            extra["denoise"] = False
        if self.config.gpus_per_worker > 0:
            extra["device"] = "gpu"
        return RenderOptions(frames=self.config.frames, resolution=self.config.resolution, engine=self.config.engine, timeout_s=self.config.render_timeout_s, **extra)

    def process(self, item: WorkItem) -> WorkItem:
        from d4d.rendering.contract import RenderContractError, load_render
        from d4d.rendering.errors import AssetError

        out = self.renders_dir / item.uid
        try:
            self.context.renderer.render(item.record.local_path, out, self.options(), overwrite=True)
            sample = load_render(out)
        except AssetError as exc:
            return _render_failure(item, self.name, exc)
        except (RenderContractError, OSError, ValueError) as exc:
            return item.fail(self.name, "render_failed", "unreadable_render", f"quality render unreadable: {exc}", retryable=True)
        decision = decide(sample.asset, {name: video.rgba for name, video in sample.videos.items()}, self.config.curation)
        if not _apply_decision(item, self.name, decision).open:
            shutil.rmtree(out, ignore_errors=True)
            return item
        annotate_asset_json(out, item)
        item.render_dir = str(out)
        return item


class MotionMagnitude:
    """Record the quality render's motion magnitude (the paper's Eq. 1, computed by the renderer
    at the quality resolution; it replaces the pre-pass's value) and close the item as kept."""

    name = "motion"
    resources = Resources(num_cpus=0.0)

    def setup(self, context: WorkerContext) -> None:
        pass

    def process(self, item: WorkItem) -> WorkItem:
        asset = json.loads((Path(item.render_dir) / "asset.json").read_text())
        item.measures["motion_magnitude"] = asset.get("motion_magnitude")
        item.measures["motion_magnitude_version"] = asset.get("motion_magnitude_version")
        item.measures["render_s"] = (asset.get("timings") or {}).get("total_s")
        return item.close(self.name, "keep")


class WriteShards:
    """Write a batch of quality render directories into the run's shards (shards.write_shards).

    One writer per shard directory (shards holds a lock), so the runner keeps exactly one.
    A uid already in a shard is skipped by write_shards, so a batch written again after an
    interruption adds no duplicate rows. ``process`` returns ``{"written": [uid],
    "skipped": [uid], "failed": {uid: reason}, "shards": [path]}`` (the uid of
    ``renders_dir/<uid>`` is its directory name).
    """

    name = "shards"
    resources = Resources(num_cpus=1.0)

    def __init__(self, shard_dir: Path, codec: str, max_shard_mb: float):
        self.shard_dir, self.codec, self.max_shard_mb = Path(shard_dir), codec, max_shard_mb

    def setup(self, context: WorkerContext | None = None) -> None:
        self.shard_dir.mkdir(parents=True, exist_ok=True)

    def process(self, render_dirs: list[str]) -> dict:
        from d4d.shards import write_shards

        report = write_shards(render_dirs, self.shard_dir, codec=self.codec, max_shard_mb=self.max_shard_mb)
        uid = lambda path: Path(path).name  # noqa: E731
        return {
            "written": [uid(p) for p in report.written],
            "skipped": [uid(p) for p in report.skipped],
            "failed": {uid(p): reason for p, reason in report.failed.items()},
            "shards": [str(p) for p in report.shards],
        }


def default_steps(spec: SourceSpec, config: PipelineConfig, renders_dir: Path) -> list:
    """The curation chain, in order. Rejects' preview renders go to ``previews/`` beside
    ``renders_dir`` when ``config.reject_previews`` is on."""
    previews = Path(renders_dir).parent / "previews" if config.reject_previews else None
    return [Fetch(spec), GeometricPrecheck(config, previews), Prepass(config, previews), QualityRender(config, renders_dir), MotionMagnitude()]


def chain_resources(steps: list) -> Resources:
    """A worker runs the steps one after another, so it reserves the largest need of any step."""
    return Resources(max(s.resources.num_cpus for s in steps), max(s.resources.num_gpus for s in steps))

