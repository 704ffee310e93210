"""Every setting of a curation run in one dataclass (``d4d-curate`` flags map onto its fields)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from d4d.curation.config import CurationConfig
from d4d.rendering.options import ENGINES


@dataclass(frozen=True)
class PipelineConfig:
    """How a curation run renders, judges, retries and writes.

    Attributes:
        frames: frames per video T for every render (the paper: 24).
        precheck_resolution: side in pixels of the geometric pre-check's render (workbench,
            front video only): only its asset.json (animation range, vertex motion) is used.
        reject_previews: keep a rejected asset's cheap render (the pre-check's front video, or
            the pre-pass's three videos) under ``OUT/previews/<uid>`` so reports can show what
            was rejected; its ``render_dir`` points there. About 0.1-0.3 MB per reject at the
            default sizes: turn off for very large runs.
        prepass_resolution: side in pixels of the fast pre-pass (workbench, all three videos)
            whose frames the curation rules read (SSIM, framing).
        resolution: side in pixels of the quality render of kept assets (the paper: 256).
        engine: quality render engine: "cycles" (default, RenderOptions' fast Cycles
            settings), "workbench" (tests, smoke runs) or "eevee".
        samples: Cycles samples per pixel of the quality render; None keeps RenderOptions'
            default.
        prepass_timeout_s: a pre-check or pre-pass render that takes longer is killed and
            counts as a failed attempt (timeout).
        render_timeout_s: the same for the quality render.
        max_attempts: tries per asset for retryable failures (Blender crash or timeout, lost
            worker, network); after that the asset is recorded as failed. Failures that are
            properties of the file (bad format, missing from the cache) are not retried.
        workers: Blender worker actors (each holds one warm Blender process).
        cpus_per_worker: Ray CPUs each worker actor reserves.
        gpus_per_worker: Ray GPUs each worker actor reserves; above 0 the quality render also
            runs Cycles on the GPU (RenderOptions.device = "gpu") and Ray places workers on
            GPU nodes.
        shard_batch: kept renders collected before one shard write (a larger batch makes
            fewer, larger row groups; the last batch is written at the end of the run).
        codec: shard video codec, "lossy" (VP9) or "lossless" (FFV1), see docs/shards.md.
        max_shard_mb: shard size bound, MB.
        curation: the curation rules' thresholds (docs/curation.md).
    """

    frames: int = 24
    precheck_resolution: int = 16
    reject_previews: bool = True
    prepass_resolution: int = 64
    resolution: int = 256
    engine: str = "cycles"
    samples: int | None = None
    prepass_timeout_s: float = 120.0
    render_timeout_s: float = 900.0
    max_attempts: int = 2
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    shard_batch: int = 8
    codec: str = "lossy"
    max_shard_mb: float = 512.0
    curation: CurationConfig = field(default_factory=CurationConfig)

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        for name in ("precheck_resolution", "prepass_resolution", "resolution"):
            if not 16 <= getattr(self, name) <= 4096:
                raise ValueError(f"{name} must be in [16, 4096] pixels, got {getattr(self, name)}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0:
            raise ValueError(f"cpus/gpus per worker must be >= 0, got {self.cpus_per_worker} / {self.gpus_per_worker}")
        if self.shard_batch < 1:
            raise ValueError(f"shard_batch must be >= 1, got {self.shard_batch}")
        if min(self.prepass_timeout_s, self.render_timeout_s) <= 0:
            raise ValueError("timeouts must be > 0 seconds")

    def to_json(self) -> dict:
        d = asdict(self)
        d["curation"] = self.curation.to_dict()
        return d

    def asset_budget_s(self) -> float:
        """Wall-clock seconds after which the driver gives up on a worker's asset (every render
        timing out, plus Blender start-ups and file checks)."""
        return 2 * self.prepass_timeout_s + self.render_timeout_s + 300.0

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
