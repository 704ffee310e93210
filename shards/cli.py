"""d4d-shards: write render directories into Parquet shards, verify shards.

    d4d-shards write RENDER_DIR [RENDER_DIR ...] --out SHARD_DIR [--codec lossy|lossless]
                     [--crf N] [--max-shard-mb N] [--rows-per-group N] [--captions CSV]
    d4d-shards write @dirs.txt --out SHARD_DIR     (one render directory per line)
    d4d-shards verify SHARD_DIR        (a directory, a shard file, or a URI: s3://BUCKET/PREFIX, gs://...)

Exit status: 0 when everything was written / verified, 1 when a render directory failed or a
shard has a problem (each named on stderr), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import setup_logging
from d4d.shards.captions import load_captions
from d4d.shards.schema import SCHEMA_VERSION
from d4d.shards.verify import verify_shards
from d4d.shards.writer import ShardWriteConfig, write_shards

log = logging.getLogger("d4d.shards")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d4d-shards", description=f"Parquet/video shards of d4d renders (schema version {SCHEMA_VERSION}).", fromfile_prefix_chars="@")
    parser.add_argument("--verbose", action="store_true", help="show the libraries' own log lines (errors only by default)")
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="encode render directories into shards (skips uids already written)", fromfile_prefix_chars="@")
    write.add_argument("render_dirs", nargs="+", metavar="RENDER_DIR", help="render directories (d4d-render output); @FILE reads them from FILE, one per line")
    write.add_argument("--out", required=True, help="shard directory (created if missing)")
    write.add_argument("--captions", help="Cap3D caption CSV (no header: identifier, caption); overrides asset.json captions")
    add_options(write.add_argument_group("encoding (ShardWriteConfig)"), ShardWriteConfig)
    verify = commands.add_parser("verify", help="check schema, hashes, videos and frame counts of every shard")
    verify.add_argument("shard_dir", metavar="SHARD_DIR", help="a shard directory, a shard file, or a URI (s3://BUCKET/PREFIX, gs://...)")
    return parser


def run_write(args: argparse.Namespace) -> int:
    config = apply_overrides(ShardWriteConfig(), overrides_from_args(args, ShardWriteConfig))
    captions = load_captions(args.captions) if args.captions else None
    report = write_shards(args.render_dirs, args.out, config, captions)
    print(f"{len(report.written)} written, {len(report.skipped)} already present, {len(report.failed)} failed; {len(report.shards)} new shards in {args.out}")
    for render_dir, reason in report.failed.items():
        print(f"failed: {render_dir}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def run_verify(args: argparse.Namespace) -> int:
    rows, problems = verify_shards(args.shard_dir, progress=lambda path, n: log.info("checked %s (%d rows)", path, n))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{rows} rows checked, {len(problems)} problems" + ("" if problems else f"; {args.shard_dir} is valid"))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return run_write(args) if args.command == "write" else run_verify(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"d4d-shards {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
