"""d4d-sample's command line: generate a 4D orbital video with a trained model, as a render directory.

    d4d-sample --model RUN --out OUT --prompt "a dog wagging its tail" --motion-magnitude 800
    d4d-sample --model RUN --out OUT --image front.png
    d4d-sample --model RUN --out OUT --static RENDER_DIR --static-model STATIC_RUN
    d4d-sample --model RUN --out OUT --image front.png --static-reference zero-motion   # the m = 0 shortcut

The 3D-aware term (--w2) needs ebar, a model of static orbits (d4d-train --target static): by
default the one the model recorded when it was fine-tuned from it, or --static-model. The
"zero-motion" reference is this model at m = 0, a shortcut: that branch was trained on dynamic
clips with m dropped, so it predicts their average motion, not a static orbit.

OUT holds dynamic/000.png .. (T frames, RGBA: an alpha matte against the training background),
under static/ a static orbit (for a static-3D sample the one it was conditioned on; for text and
image samples one sampled by the static model from the same condition), dynamic.mp4,
transforms.json (the cameras of the orbit the model was trained on, recorded in the model) and
asset.json, so ``d4d-reconstruct OUT`` takes it directly. --model is a run directory (its model/
is used) or a model folder. An existing OUT is refused unless --overwrite (which replaces it).
Exit status: 0 when the sample was written, 2 for bad arguments or conditions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import quiet_libraries, quiet_loaded_libraries, setup_logging

from .sample_config import SampleConfig

logger = logging.getLogger("d4d.sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="d4d-sample", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="run directory or model folder (d4d-train output)")
    parser.add_argument("--out", required=True, type=Path, help="output render directory (must not exist unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show the libraries' log lines and warnings")
    add_options(parser.add_argument_group("sampling (SampleConfig)"), SampleConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quiet_libraries("-v" in argv or "--verbose" in argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        config = apply_overrides(SampleConfig(), overrides_from_args(args, SampleConfig))
    except ValueError as exc:
        parser.error(str(exc))
    if args.out.exists() and not args.overwrite:
        logger.error("--out %s: exists; give --overwrite to replace it, or another --out", args.out)
        return 2
    from .sample import sample  # torch and diffusers: after the arguments are checked

    quiet_loaded_libraries(args.verbose)

    try:
        path = sample(args.model, args.out, config)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("wrote %s (d4d-reconstruct %s --out RECON)", path, path)
    return 0
