"""d4d-curate: the curation job, from an asset source to shards, on Ray (docs/pipeline.md).

    d4d-curate --source SOURCE --out DIR [--address ADDR] [--frames 24] [--resolution 256]
               [--engine cycles] [--workers N] [--limit N] [--max-attempts 2] ...

SOURCE: ``local:PATH``, ``builtin``, ``objaverse[:CACHE_DIR]`` or ``objaverse-xl[:CACHE_DIR]``
(offline by default). Without ``--address`` (or RAY_ADDRESS, which ``ray job submit`` sets) it
starts an embedded local Ray. Rerunning the same command resumes: finished assets are skipped.
Exit status: 0 when every asset has an outcome (keep, reject or failed), 2 for bad arguments,
a source that cannot be listed, or an output directory another run is using.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from d4d.pipelines.config import PipelineConfig


def default_workers() -> int:
    """One Blender worker per two cores (Blender renders with several threads), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


def build_parser() -> argparse.ArgumentParser:
    defaults = PipelineConfig()
    p = argparse.ArgumentParser(prog="d4d-curate", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="local:PATH | builtin | objaverse[:CACHE_DIR] | objaverse-xl[:CACHE_DIR]")
    p.add_argument("--out", required=True, type=Path, help="output directory (created; rerun with the same one to resume)")
    p.add_argument("--address", help="join this Ray cluster (e.g. 10.0.0.1:6379 or auto); default: RAY_ADDRESS or an embedded local Ray")
    p.add_argument("--frames", type=int, default=defaults.frames, help=f"frames per video T (default {defaults.frames})")
    p.add_argument("--resolution", type=int, default=defaults.resolution, help=f"quality render side, pixels (default {defaults.resolution})")
    p.add_argument("--engine", default=defaults.engine, help=f"quality render engine: cycles, workbench or eevee (default {defaults.engine})")
    p.add_argument("--samples", type=int, help="Cycles samples of the quality render (default: the renderer's)")
    p.add_argument("--prepass-resolution", type=int, default=defaults.prepass_resolution, help=f"fast pre-pass side, pixels (default {defaults.prepass_resolution})")
    p.add_argument("--no-reject-previews", dest="reject_previews", action="store_false", help="do not keep rejected assets' cheap renders under OUT/previews/")
    p.add_argument("--precheck-resolution", type=int, default=defaults.precheck_resolution, help=f"geometric pre-check render side (default {defaults.precheck_resolution})")
    p.add_argument("--workers", type=int, default=default_workers(), help=f"Blender worker actors (default {default_workers()} here: one per two cores)")
    p.add_argument("--cpus-per-worker", type=float, default=defaults.cpus_per_worker, help="Ray CPUs each worker reserves (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=defaults.gpus_per_worker, help="Ray GPUs each worker reserves (default 0)")
    p.add_argument("--limit", type=int, help="only the first N assets of the source")
    p.add_argument("--max-attempts", type=int, default=defaults.max_attempts, help=f"tries per asset for crashes, timeouts and lost workers (default {defaults.max_attempts})")
    p.add_argument("--timeout", type=float, default=defaults.render_timeout_s, help=f"quality render timeout, seconds (default {defaults.render_timeout_s:g})")
    p.add_argument("--prepass-timeout", type=float, default=defaults.prepass_timeout_s, help=f"pre-check and pre-pass render timeout, seconds (default {defaults.prepass_timeout_s:g})")
    p.add_argument("--shard-batch", type=int, default=defaults.shard_batch, help=f"kept renders per shard write (default {defaults.shard_batch})")
    p.add_argument("--codec", choices=("lossy", "lossless"), default=defaults.codec, help="shard video codec (default lossy)")
    p.add_argument("--max-shard-mb", type=float, default=defaults.max_shard_mb, help=f"shard size bound, MB (default {defaults.max_shard_mb:g})")
    p.add_argument("--config", help="JSON file of CurationConfig fields to override (docs/curation.md)")
    p.add_argument("--captions", help="Cap3D caption CSV (no header: identifier, caption); kept assets' captions go into the shards")
    p.add_argument("--online", action="store_true", help="objaverse sources: download what the cache lacks")
    p.add_argument("--id-list", help="objaverse sources: keep only the ids listed in this .txt/.csv")
    return p


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """Raises ValueError naming the bad flag value."""
    from d4d.curation.config import CurationConfig

    curation = CurationConfig()
    if args.config:
        try:
            curation = CurationConfig.from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"--config {args.config}: {exc}") from None
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    return PipelineConfig(
        frames=args.frames,
        precheck_resolution=args.precheck_resolution,
        reject_previews=args.reject_previews,
        prepass_resolution=args.prepass_resolution,
        resolution=args.resolution,
        engine=args.engine,
        samples=args.samples,
        prepass_timeout_s=args.prepass_timeout,
        render_timeout_s=args.timeout,
        max_attempts=args.max_attempts,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        shard_batch=args.shard_batch,
        codec=args.codec,
        max_shard_mb=args.max_shard_mb,
        curation=curation,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from d4d.pipelines.sources import parse_source

    try:
        config = config_from_args(args)
        spec = parse_source(args.source, args.out, online=args.online, id_list=args.id_list)
    except ValueError as exc:
        parser.error(str(exc))
    from d4d.pipelines.manifest import RunLocked
    from d4d.pipelines.runner import SourceError, run_curation

    try:
        run_curation(spec, config, args.out, limit=args.limit, address=args.address, captions_csv=args.captions)
    except (SourceError, RunLocked) as exc:
        print(f"d4d-curate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
