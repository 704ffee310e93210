"""Every setting of a curation run in one dataclass (``d4d-curate``'s flags are its fields)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from d4d.curation.procedure import DecisionConfig
from d4d.curation.sources.download import DownloadLimits
from d4d.rendering.api import Limits


@dataclass(frozen=True)
class PipelineConfig:
    """How a curation run judges, retries and writes."""

    decision: DecisionConfig = field(default_factory=DecisionConfig)
    """How each clip is judged: the renders of each stage and the rules (curation.procedure)."""
    limits: Limits = field(default_factory=Limits)
    """Resource bounds of each Blender worker and of the files it takes."""
    download: DownloadLimits = field(default_factory=DownloadLimits)
    """Bounds of every download (objaverse sources with --online)."""
    max_attempts: int = 2
    """Tries per asset for retryable failures (Blender crash or timeout, lost worker, network);
    after that it is recorded as failed. Failures that are properties of the file (bad format,
    missing from the cache) are not retried."""
    workers: int = 1
    """Blender worker actors (each holds one warm Blender process)."""
    cpus_per_worker: float = 1.0
    """Ray CPUs each worker actor reserves."""
    gpus_per_worker: float = 0.0
    """Ray GPUs each worker actor reserves; above 0 the quality render runs Cycles on the GPU and
    Ray places workers on GPU nodes."""
    shard_batch: int = 8
    """Kept renders collected before one shard write (a larger batch makes fewer, larger row
    groups; the last batch is written at the end of the run)."""
    shard_writers: int = 1
    """Shard writer actors (1 Ray CPU each), each encoding a batch at a time, batches going to
    whichever is free. Lossy encoding takes about 1-2.2 s per kept 256 px clip on one CPU, so
    one writer keeps up with 1,600 kept clips an hour or more; add one per 1,600 kept clips/h
    the workers make (docs/pipeline.md, "Shard writers"). Fewer are started when the cluster
    cannot place them beside one worker (the run says so)."""
    codec: Literal["lossy", "lossless"] = "lossy"
    """Shard video codec: "lossy" (VP9 with alpha) or "lossless" (FFV1), docs/shards.md."""
    max_shard_mb: float = 512.0
    """Shard size bound, MB."""
    keep_renders: bool = False
    """Keep each kept clip's quality render (renders/<clip id>) once its row is in a published
    shard; by default it is removed then (the shard holds its videos, cameras and measures; at
    300K assets the renders would double OUT). The run's scratch folder is removed at its end
    either way."""
    min_free_gb: float = 1.0
    """Free space (GB) OUT must keep: checked before the run and before each asset, and when an
    asset fails; below it the run stops with one line, recording nothing for the assets in
    flight (a rerun after freeing space finishes them). 0 checks only for write errors."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0:
            raise ValueError(f"cpus/gpus per worker must be >= 0, got {self.cpus_per_worker} / {self.gpus_per_worker}")
        if not self.min_free_gb >= 0:
            raise ValueError(f"min_free_gb must be >= 0, got {self.min_free_gb}")
        if self.shard_writers < 1:
            raise ValueError(f"shard_writers must be >= 1, got {self.shard_writers}")
        if self.shard_batch < 1:
            raise ValueError(f"shard_batch must be >= 1, got {self.shard_batch}")
        if self.render_timeout_s <= 0:
            raise ValueError(f"the quality render timeout must be > 0 seconds, got {self.render_timeout_s}")

    @property
    def render_timeout_s(self) -> float:
        return self.decision.render.timeout_s

    def worker_decision(self) -> DecisionConfig:
        """The decision settings a worker uses: the quality render on the GPU when workers reserve one."""
        if self.gpus_per_worker > 0:
            return replace(self.decision, render=replace(self.decision.render, device="gpu"))
        return self.decision

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def asset_budget_s(self) -> float:
        """Wall-clock seconds after which the driver gives up on a worker's asset: its import and
        every render of its largest allowed number of clips timing out, plus its download, start-ups
        and file checks. (Each Blender job has its own, much shorter timeout; this catches a stuck
        worker.)"""
        per_clip = 2 * self.decision.prepass_timeout_s + self.render_timeout_s
        return self.download.download_timeout_s + self.decision.prepass_timeout_s + self.decision.max_clips_per_asset * per_clip + 300.0
