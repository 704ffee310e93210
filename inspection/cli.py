"""d4d-inspect: one HTML page to look at a data set, a training run, an evaluation, a reconstruction or a sample.

    d4d-inspect PATH --out report.html [--kind curation|training|evaluation|reconstruction|sample] [--embed]
                [--config CURATION.json] [--workers N] [--per-page 50] [--preview-size 128]

Exit status: 0 when the page was written, 1 when PATH cannot be inspected, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from d4d.inspection.curation_data import InspectError
from d4d.inspection.report import ReportConfig, write_report
from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4d-inspect", description="Write an HTML page (no server, no network) showing a curation output, a training run, "
                                                       "a d4d-eval output, a reconstruction or a d4d-sample output.")
    p.add_argument("path", metavar="PATH", type=Path, help="curation output (decisions.parquet + shards/, or render directories), training run, "
                                                                  "d4d-eval output (eval.json), reconstruction output or d4d-sample output")
    p.add_argument("--out", required=True, type=Path, help="page to write (*.html; previews go to <stem>_files/ beside it) or a folder for index.html")
    p.add_argument("--config", help="JSON file of CurationConfig fields, used when render directories are decided here")
    p.add_argument("--verbose", action="store_true", help="show the libraries' own log lines (errors only by default)")
    add_options(p.add_argument_group("report (ReportConfig)"), ReportConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report_config = apply_overrides(ReportConfig(), overrides_from_args(args, ReportConfig))
    except ValueError as exc:
        parser.error(str(exc))
    setup_logging(args.verbose)
    config = None
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            parser.error(f"--config {args.config}: {exc}")
    try:
        page = write_report(args.path, args.out, report_config, curation_config=config)
    except (InspectError, OSError) as exc:
        print(f"d4d-inspect: {exc}", file=sys.stderr)
        return 1
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
