"""d4d-train's command line: fine-tune a video diffusion UNet into a 4D-aware one (the paper's Sec. 3).

    d4d-train --shards DIR --output STATIC --config paper-image --pretrained I2VGEN_XL_DIR --target static
    d4d-train --shards DIR --output RUN --config paper-image --pretrained STATIC/model
    accelerate launch -m d4d.training.train --shards DIR --output RUN --config paper-text --pretrained MODELSCOPE_DIR
    d4d-train --shards DIR --output RUN --resume latest          # continue a run exactly

The defaults shown are those of the preset named by --config. Frame count and resolution
(docs/training.md, "Frames and resolution of a run"): --num-frames, when not given, is the
shards' frame count (frames are never resampled, so a given value must match it);
--resolution, when not given, is the preset's, or the shards' when they are smaller (videos
are resized down, never up). The run says which it took. Exit status: 0 when the model was
exported, 2 for bad arguments, settings or data (one line naming the reason).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import quiet_libraries, quiet_loaded_libraries, setup_logging
from d4d.storage import is_uri, location_arg

from . import config as config_lib
from .config import TrainConfig

logger = logging.getLogger("d4d.train")

#: The preset --help shows and a run uses without --config.
DEFAULT_PRESET = "paper-text"

#: Flags of earlier versions and what replaced them.
REMOVED_FLAGS = {
    "--num-train-timesteps": "the noise schedule is the backbone's own scheduler config (docs/training.md, "
                             "\"Each backbone on its own terms\")",
}


def chosen_preset(argv: list[str]) -> str:
    """The --config of ``argv`` (the default preset when absent or unknown: the full parse says so)."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default=DEFAULT_PRESET)
    name = peek.parse_known_args(argv)[0].config
    return name if name in config_lib.PRESETS else DEFAULT_PRESET


def build_parser(preset: str = DEFAULT_PRESET) -> argparse.ArgumentParser:
    """The parser, with the hyperparameters' defaults shown as preset ``preset`` sets them."""
    parser = argparse.ArgumentParser(prog="d4d-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True, type=location_arg,
                        help="shard directory (d4d-shards or d4d-curate output), or a URI: s3://BUCKET/PREFIX, gs://... (docs/shards.md)")
    parser.add_argument("--output", required=True, type=Path,
                        help="run directory (created; checkpoints, logs, model/); an existing one is resumed with --resume, "
                             "and one whose earlier start saved no checkpoint is started again")
    parser.add_argument("--config", default=DEFAULT_PRESET,
                        help=f"preset: {', '.join(config_lib.PRESETS)} (default: {DEFAULT_PRESET}); the hyperparameter defaults "
                             "below are this preset's")
    parser.add_argument("--pretrained", type=Path, help="diffusers-layout folder to start from (unet/, vae/, ...)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder of this run")
    parser.add_argument("--vae", type=Path,
                        help="without --pretrained: a fitted AutoencoderKL folder (or a model folder with vae/) to use instead of "
                             "the autoencoder stage, which otherwise fits one on the shards' frames first (RUN/autoencoder)")
    parser.add_argument("--cache-latents", action="store_true",
                        help="encode all clips once and store latents/text embeddings in the shards before training")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show the libraries' log lines and warnings")
    add_options(parser.add_argument_group(f"hyperparameters (override the preset; defaults: preset {preset})"), TrainConfig,
                defaults=config_lib.preset(preset))
    values = config_lib.preset(preset)
    for action in parser._actions:
        if action.dest == "num_frames":
            action.help = f"Frames per clip (T). Default: the shards' frame count (preset {preset}: {values.num_frames})"
        elif action.dest == "resolution":
            action.help = (f"Training side, pixels (videos are resized to it). Default: the preset's, {values.resolution}, "
                           "or the shards' when they are smaller")
    return parser


def check_removed_flags(argv: list[str]) -> None:
    """ValueError naming a flag of an earlier version and what replaced it."""
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in REMOVED_FLAGS:
            raise ValueError(f"{flag} was removed: {REMOVED_FLAGS[flag]}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset with the flags given applied (frames and resolution as the preset has them)."""
    return apply_overrides(config_lib.preset(args.config), overrides_from_args(args, TrainConfig))


@dataclass(frozen=True)
class ShardSummary:
    """What a shard directory holds, from its scalar columns: rows, frame counts, sides, captions."""

    rows: int
    frames: tuple[int, ...]
    smallest_side: int
    captioned: int


def summarize_shards(shard_dir: Path) -> ShardSummary:
    """Reads the small columns of every shard (rows 0 when there are none); ValueError when
    ``shard_dir`` does not exist."""
    import pyarrow.parquet as pq

    from d4d.shards.dataset import open_shards
    from d4d.shards.files import list_shards

    try:
        paths = list_shards(shard_dir)
    except FileNotFoundError as exc:
        raise ValueError(f"--shards {exc}") from None
    frames, sides, rows, captioned = set(), [], 0, 0
    for path in paths:
        open_shards(path)  # the schema and every row's values checked (shards.checks) before any is used
        table = pq.read_table(path, columns=["num_frames", "width", "height", "caption"])
        frames.update(table.column("num_frames").to_pylist())
        sides += [min(w, h) for w, h in zip(table.column("width").to_pylist(), table.column("height").to_pylist())]
        captioned += sum(1 for c in table.column("caption").to_pylist() if c and c.strip())
        rows += table.num_rows
    return ShardSummary(rows, tuple(sorted(frames)), min(sides, default=0), captioned)


def fit_to_shards(config: TrainConfig, given: set[str], shards: ShardSummary, where: Path) -> tuple[TrainConfig, list[str]]:
    """``config`` with frame count and resolution settled against the shards, and what was
    decided, in words. ``given`` holds the field names set on the command line.

    Frames: a given --num-frames must equal the shards' frame count; otherwise the shards' is
    taken. Resolution: a given --resolution is kept (videos are resized to it); otherwise the
    preset's, or the shards' side when that is smaller. ValueError (with the fix) otherwise."""
    if len(shards.frames) > 1:
        raise ValueError(f"--shards {where}: clips of {', '.join(map(str, shards.frames))} frames are mixed; "
                         "train on shards of one frame count (curate or render them with one --frames)")
    frames = shards.frames[0]
    said = []
    if "num_frames" in given:
        if config.num_frames != frames:
            raise ValueError(f"--num-frames {config.num_frames}: the clips in {where} have {frames} frames and frames are not "
                             f"resampled; leave --num-frames out (or give {frames}), or curate with --frames {config.num_frames}")
        said.append(f"{frames} frames (--num-frames)")
    else:
        source = "the preset's" if frames == config.num_frames else f"the shards' (the preset has {config.num_frames})"
        said.append(f"{frames} frames, {source}")
        config = replace(config, num_frames=frames)
    if "resolution" in given:
        said.append(f"{config.resolution} px (--resolution; the shards have {shards.smallest_side} px)")
    elif shards.smallest_side < config.resolution:
        said.append(f"{shards.smallest_side} px, the shards' (the preset's {config.resolution} px is larger; videos are never upsampled)")
        config = replace(config, resolution=shards.smallest_side)
    else:
        resized = "" if shards.smallest_side == config.resolution else f", the shards' {shards.smallest_side} px resized down"
        said.append(f"{config.resolution} px, the preset's{resized}")
    return config, said


def caption_warning(config: TrainConfig, shards: ShardSummary, where: Path) -> str | None:
    """A warning when a model that reads text trains on clips without captions."""
    if config.task != "text" or shards.captioned == shards.rows:
        return None
    return (f"{where}: {shards.rows - shards.captioned} of {shards.rows} clips have no caption, so the text model learns those "
            f"from the prefix {config.caption_prefix!r} alone (give d4d-curate or d4d-shards write --captions CSV)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quiet_libraries("-v" in argv or "--verbose" in argv)
    setup_logging("-v" in argv or "--verbose" in argv)
    try:
        check_removed_flags(argv)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    args = build_parser(chosen_preset(argv)).parse_args(argv)
    try:
        config = config_from_args(args)
        if args.cache_latents and is_uri(args.shards):
            raise ValueError(f"--cache-latents writes into the shards, which must be a local directory, not {args.shards}")
        summary = summarize_shards(args.shards)
        if not summary.rows:
            raise ValueError(f"--shards {args.shards}: no shards there (expected part-*.parquet, written by d4d-shards or d4d-curate)")
        config, said = fit_to_shards(config, set(overrides_from_args(args, TrainConfig)), summary, args.shards)
        logger.info("preset %s: %s", args.config, "; ".join(said))
        if (warning := caption_warning(config, summary, args.shards)) is not None:
            logger.warning("%s", warning)
        from .train import train_on_shards  # torch, diffusers, accelerate: after --help

        quiet_loaded_libraries(args.verbose)

        model = train_on_shards(config, args.shards, args.output, args.pretrained, args.resume, args.cache_latents, args.vae)
    except (ValueError, FloatingPointError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info("model exported to %s (d4d-sample --model %s)", model, args.output)
    return 0

