"""d4d-curate: the curation job, from an asset source to shards, on Ray (docs/pipeline.md).

    d4d-curate --source SOURCE --out DIR|URI [--work-dir DIR] [--address ADDR] [--frames 24] [--resolution 256]
               [--engine cycles] [--workers N] [--limit N] [--max-attempts 2] ... (--help lists all)

SOURCE: ``local:PATH``, ``builtin``, ``objaverse[:CACHE_DIR]`` or ``objaverse-xl[:CACHE_DIR]``
(offline by default). Without ``--address`` (or RAY_ADDRESS, which ``ray job submit`` sets) it
starts an embedded local Ray. Rerunning the same command resumes: finished assets are skipped.
Exit status: 0 when every asset has an outcome (keep, reject or failed), 2 for bad arguments,
a source that cannot be listed, or an output directory another run is using, 3 when the run
stopped because OUT could not be written (full disk, I/O error: rerun after fixing it), 1 when
no worker can start on the cluster, 143
after SIGTERM and 130 after SIGINT (Blender and the embedded Ray stopped; rerun to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from d4d.curation.config import CurationConfig
from d4d.curation.decision import FAILURES
from d4d.curation.sources import PROBLEMS
from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.output import local_folder
from d4d.pipelines.work import PIPELINE_FAILURES
from d4d.progress import setup_logging
from d4d.storage import location_arg


def default_workers() -> int:
    """One Blender worker per two cores (Blender renders with several threads), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


#: Reasons a failed row can have (what --retry-failed takes): curation's, the sources' and the pipeline's.
FAILED_REASONS = (*FAILURES, *PROBLEMS, *PIPELINE_FAILURES)

#: Fields d4d-curate does not take: which single clip d4d-render renders.
NOT_CURATE_OPTIONS = ("decision.render.action", "decision.render.window")
#: Flags of d4d-curate 0.1 kept working: field -> old spellings.
CURATE_ALIASES = {"decision.render.timeout_s": ["--timeout"], "decision.prepass_timeout_s": ["--prepass-timeout"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4d-curate", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="local:PATH | builtin | objaverse[:CACHE_DIR] | objaverse-xl[:CACHE_DIR]")
    p.add_argument("--out", required=True, type=location_arg,
                   help="output directory (created; rerun with the same one to resume), or a URI (s3://BUCKET/PREFIX, gs://...): "
                        "shards and tables go there, the journal, logs and renders to --work-dir (docs/pipeline.md, \"Object storage\")")
    p.add_argument("--work-dir", type=Path,
                   help="with an --out URI: the local folder for the journal, logs, scratch and renders "
                        "(default ~/.cache/d4d/curate/SCHEME/BUCKET/PREFIX; shared by every node on a cluster)")
    p.add_argument("--address", help="join this Ray cluster (e.g. 10.0.0.1:6379 or auto); default: RAY_ADDRESS or an embedded local Ray")
    p.add_argument("--limit", type=int, help="only the first N assets of the source")
    p.add_argument("--config", help="JSON file of CurationConfig fields to override (docs/curation.md)")
    p.add_argument("--captions", help="Cap3D caption CSV (no header: identifier, caption); kept clips' captions go into the shards")
    p.add_argument("--online", action="store_true", help="objaverse sources: download what the cache lacks")
    p.add_argument("--id-list", help="objaverse sources: keep only the ids listed in this .txt/.csv")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the libraries' own log lines (errors only by default)")
    p.add_argument("--retry-failed", nargs="*", metavar="REASON",
                   help="redo the failed rows of earlier runs (of these reasons, e.g. render_failed worker_lost; all when none is given), "
                        "keeping their assets' decided clips; each gets --max-attempts tries again")
    add_options(p.add_argument_group("settings (PipelineConfig; the render settings are the quality render's)"), PipelineConfig,
                exclude=NOT_CURATE_OPTIONS, aliases=CURATE_ALIASES, flatten=True,
                defaults=replace(PipelineConfig(), workers=default_workers()))
    return p


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The run's settings: defaults, then ``--config``'s curation rules, then the flags given.
    Raises ValueError naming the bad flag value."""
    config = replace(PipelineConfig(), workers=default_workers())
    if args.config:
        try:
            rules = CurationConfig.from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"--config {args.config}: {exc}") from None
        config = replace(config, decision=replace(config.decision, rules=rules))
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    unknown = sorted(set(args.retry_failed or ()) - set(FAILED_REASONS))
    if unknown:
        raise ValueError(f"--retry-failed: unknown reason {', '.join(unknown)}; one of {', '.join(sorted(FAILED_REASONS))}")
    return apply_overrides(config, overrides_from_args(args, PipelineConfig))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from d4d.pipelines.sources import parse_source

    try:
        config = config_from_args(args)
        spec = parse_source(args.source, local_folder(args.out, args.work_dir), online=args.online, id_list=args.id_list, limits=config.download,
                            max_file_mb=config.limits.max_file_mb)
    except ValueError as exc:
        parser.error(str(exc))
    from d4d.pipelines.manifest import RunLocked
    from d4d.pipelines.runner import ClusterError, OutputRefused, SourceError, Stopped, run_curation
    from d4d.pipelines.space import OutOfSpace

    try:
        retry = frozenset(args.retry_failed) if args.retry_failed is not None else None
        run_curation(spec, config, args.out, limit=args.limit, address=args.address, captions_csv=args.captions, retry_failed=retry,
                     work_dir=args.work_dir)
    except (SourceError, RunLocked, OutputRefused) as exc:
        print(f"d4d-curate: {exc}", file=sys.stderr)
        return 2
    except OutOfSpace as exc:
        print(f"d4d-curate: {exc}", file=sys.stderr)
        return 3
    except ClusterError as exc:
        print(f"d4d-curate: {exc}", file=sys.stderr)
        return 1
    except Stopped as exc:
        print(f"d4d-curate: {exc}", file=sys.stderr)
        return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
