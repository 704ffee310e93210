"""d4d-eval: the paper's Table 1 metrics of generated runs against a held-out shard split.

    d4d-eval GEN_RUN [GEN_RUN ...] --shards HELDOUT --out EVAL \\
        --clip CLIP_DIR --i3d i3d_kinetics400_rgb.pt --lpips LPIPS_DIR

Each GEN_RUN is a folder of d4d-sample outputs, one render directory per held-out asset, named
by the asset's uid (or recording it in asset.json). EVAL gets eval.json (every metric, per run
and per clip, with the reason for any absent one) and eval.md (the table, next to the paper's
rows); ``d4d-inspect EVAL`` shows them. All weights come from local paths; a metric whose
weights are not given is reported absent, never estimated.

An EVAL that already holds eval.json is refused unless --overwrite (which replaces the results).
Exit status: 0 when the results were written, 2 for bad arguments or unreadable inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import quiet_libraries, quiet_loaded_libraries, setup_logging

from .config import EvalConfig

logger = logging.getLogger("d4d.eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d4d-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", metavar="GEN_RUN", nargs="+", type=Path, help="folder of generated render directories (one per held-out uid)")
    parser.add_argument("--shards", required=True, type=Path, help="held-out split: a shard directory (d4d-shards output)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for eval.json and eval.md (must not hold them unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier evaluation in --out")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show the libraries' log lines and warnings")
    add_options(parser.add_argument_group("evaluation settings"), EvalConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quiet_libraries("-v" in argv or "--verbose" in argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if (args.out / "eval.json").exists() and not args.overwrite:
        logger.error("--out %s: holds an earlier evaluation (eval.json); give --overwrite to replace it, or another --out", args.out)
        return 2
    from .evaluate import evaluate, markdown_table, write_results  # torch and the metric models: after --help

    quiet_loaded_libraries(args.verbose)

    try:
        config = apply_overrides(EvalConfig(), overrides_from_args(args, EvalConfig))
        results = evaluate(args.runs, args.shards, config)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    json_path, table_path = write_results(results, args.out)
    sys.stdout.write(markdown_table(results))
    logger.info("wrote %s and %s", json_path, table_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
