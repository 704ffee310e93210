"""d4d-reconstruct: fit explicit 4D Gaussians to a render's orbital videos.

    d4d-reconstruct INPUT --out DIR [--preset auto|cpu|paper|fast] [--backend auto|torch|gsplat]
                    [--device auto|cpu|cuda[:K]] [--restart] [--holdout N] [--iterations N]
                    [--coarse-iterations N] [--init hull|random] [--seed N] [any setting ...]

INPUT is a d4d-render directory, a d4d-sample output directory, or a shard row
``SHARD.parquet#ROW`` (0-based row number, or the row's uid). Every setting of
reconstruction/config.py is a flag (``--help`` lists them; nested ones as
``--densify-prune-opa``, ``--deformation-lr-grid``); flags override the preset. The default
preset, ``auto``, is ``paper`` (5000 + 2000 steps) on CUDA and ``cpu`` elsewhere.

Training writes DIR/checkpoint.safetensors (no pickle) every ``--checkpoint-every`` steps; rerunning the same
command with the same DIR resumes from it (``--restart`` discards it); it is removed once the
outputs are written. Outputs: see reconstruction/outputs.py. Exit status: 0 on success, 1 when
the input cannot be read or the run fails, 2 for bad arguments, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import setup_logging
from d4d.reconstruction.config import AUTO, BACKENDS, CHECKPOINT_NAME, PRESETS, ReconstructConfig, preset, resolve_preset

if TYPE_CHECKING:
    import torch

log = logging.getLogger("d4d.reconstruct")
#: Flags of earlier versions that still set their field.
ALIASES = {"holdout_every": ["--holdout"]}


def auto_device_type() -> str:
    """"cuda" or "cpu": what ``--device auto`` picks (``run.pick_device``), found without importing
    torch, so that --help answers at once. Once torch is imported, torch says; before, "cuda" when
    the installed torch was built for CUDA or ROCm (its ``version.py``, read as text) and the
    driver (libcuda, or HIP's runtime) counts a device."""
    if "torch" in sys.modules:
        return "cuda" if sys.modules["torch"].cuda.is_available() else "cpu"
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return "cpu"
    built = dict(re.findall(r"^(cuda|hip)\b[^=]*=\s*(.+)$", Path(spec.origin).with_name("version.py").read_text(), re.M))
    for kind, library, init, count in (("cuda", "libcuda.so.1", "cuInit", "cuDeviceGetCount"), ("hip", "libamdhip64.so", None, "hipGetDeviceCount")):
        if built.get(kind, "None").strip() in ("None", ""):
            continue
        try:
            driver = ctypes.CDLL(library)
        except OSError:
            continue
        devices = ctypes.c_int(0)
        if (init is None or getattr(driver, init)(0) == 0) and getattr(driver, count)(ctypes.byref(devices)) == 0 and devices.value > 0:
            return "cuda"
    return "cpu"


def shown_preset(argv: list[str]) -> str:
    """The concrete preset a run of ``argv`` uses on this machine (for --help's defaults)."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--preset", default=AUTO)
    peek.add_argument("--device", default="auto")
    args = peek.parse_known_args(argv)[0]
    try:
        return resolve_preset(args.preset, auto_device_type() if args.device == "auto" else args.device.split(":")[0])
    except ValueError:
        return resolve_preset(AUTO, "cpu")  # the full parse names the bad value


def build_parser(shown: str = "paper") -> argparse.ArgumentParser:
    """The parser, with the settings' defaults shown as preset ``shown`` sets them."""
    parser = argparse.ArgumentParser(prog="d4d-reconstruct", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="render directory, d4d-sample output directory, or SHARD.parquet#ROW")
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--preset", choices=[AUTO, *sorted(PRESETS)], default=AUTO,
                        help="hyperparameter preset (default auto: paper on CUDA, cpu elsewhere; paper: 5000 coarse + 2000 fine steps; "
                             "cpu: minutes on a CPU; fast: a quick preview)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="rasterizer: gsplat (CUDA), torch (any device) or auto (default)")
    parser.add_argument("--device", default="auto", help="torch device: auto (cuda when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--restart", action="store_true", help=f"discard OUT/{CHECKPOINT_NAME} instead of resuming from it")
    parser.add_argument("--verbose", action="store_true", help="show the libraries' own log lines (errors only by default)")
    add_options(parser.add_argument_group(f"settings (override the preset; the defaults shown are preset {shown}'s, the one this run uses)"),
                ReconstructConfig, aliases=ALIASES, defaults=preset(shown))
    return parser


def config_from_args(args: argparse.Namespace, device: torch.device) -> tuple[str, ReconstructConfig]:
    """(concrete preset name, config): the preset for ``device`` with the flags the user gave applied."""
    name = resolve_preset(args.preset, device.type)
    return name, apply_overrides(preset(name), overrides_from_args(args, ReconstructConfig))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(shown_preset(argv))
    args = parser.parse_args(argv)
    from d4d.reconstruction.run import pick_device, reconstruct_input  # torch: after --help and the arguments

    setup_logging(args.verbose)
    try:
        device = pick_device(args.device)
        preset_name, config = config_from_args(args, device)
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    try:
        metrics = reconstruct_input(args.input, args.out, config, str(device), args.backend, args.restart, log, preset_name)
    except (ValueError, OSError) as exc:
        print(f"d4d-reconstruct: {args.input}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        checkpoint = args.out / CHECKPOINT_NAME
        saved = "rerun the same command to resume from the last checkpoint" if checkpoint.exists() else "no checkpoint was written yet"
        print(f"d4d-reconstruct: {args.input}: interrupted; {saved} ({checkpoint})", file=sys.stderr)
        return 130
    scores = metrics["heldout"] or metrics["training_views"]
    psnr = "inf" if scores["psnr"] is None else f"{scores['psnr']:.2f}"
    print(f"{args.out}: {metrics['n_gaussians']} Gaussians; {metrics['evaluated_on']}: PSNR {psnr} dB, SSIM {scores['ssim']:.4f} over {len(scores['views'])} views")
    return 0


if __name__ == "__main__":
    sys.exit(main())
