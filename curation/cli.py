"""d4d-decide: keep or reject assets (or render directories) by the curation rules.

    d4d-decide ASSET [ASSET ...] [--json] [--config CONFIG.json]
               [--resolution 64] [--frames 24] [--render-kept DIR]

ASSET is either a render directory (it holds transforms.json: decided from its frames and
asset.json, no Blender) or an asset file (rendered first with the cheap preview preset into
a temporary directory by one warm Blender worker shared by the run, then decided;
``--render-kept DIR`` then renders each kept asset with the quality settings into
``DIR/<file stem>``, replacing what is there). One line per asset on stdout, in order:
``ASSET<TAB>decision<TAB>reason<TAB>detail``, or with ``--json`` one JSON object per line
with keys asset, decision, reason, detail, measures. Exit status 0 when every asset was
judged (kept or rejected), 1 when any failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from d4d.curation.config import CurationConfig
from d4d.curation.decision import Decision, decide
from d4d.curation.rules import failure_reason


def decide_render_dir(root: Path, config: CurationConfig) -> Decision:
    """Decide from an existing render directory (docs/conventions.md); no Blender."""
    from d4d.rendering.contract import RenderContractError, load_render

    try:
        sample = load_render(root)
    except (RenderContractError, OSError, KeyError, ValueError) as exc:
        return Decision("failed", "render_failed", {}, f"unreadable render directory: {exc}")
    frames = {name: video.rgba for name, video in sample.videos.items()}
    return decide(sample.asset, frames, config)


def render_failure(exc) -> Decision:
    """A renderer AssetError (``kind``, ``reason``) as a failed Decision."""
    return Decision("failed", failure_reason(exc.kind), {"error_kind": exc.kind}, f"{exc.kind}: {exc}")


def decide_asset_file(path: Path, renderer, config: CurationConfig, resolution: int, frames: int, render_kept: Path | None) -> Decision:
    """Render ``path`` with the preview preset, decide, and optionally quality-render it when kept.

    Args:
        renderer: a warm ``rendering.api.Renderer`` (one Blender worker for the whole run).
        render_kept: when set, a kept asset is rendered with the quality defaults into
            ``render_kept / path.stem`` (replacing what is there).

    The renderer's AssetError becomes a failed Decision (its ``kind`` decides import_failed
    or render_failed, see ``curation.rules.failure_reason``).
    """
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import PREVIEW_PRESET, RenderOptions

    with tempfile.TemporaryDirectory(prefix="d4d-decide-") as tmp:
        preview = Path(tmp) / "preview"
        try:
            asset_json = renderer.render(path, preview, RenderOptions(**PREVIEW_PRESET, resolution=resolution, frames=frames))
        except AssetError as exc:
            return render_failure(exc)
        pre = decide(asset_json, None, config)
        if not pre.kept:
            return pre
        decision = decide_render_dir(preview, config)
    if decision.kept and render_kept is not None:
        out = render_kept / path.stem
        try:
            renderer.render(path, out, RenderOptions(frames=frames), overwrite=True)
        except AssetError as exc:
            return render_failure(exc)
        decision.measures["render_dir"] = str(out)
    return decision


def load_config(path: str | None) -> CurationConfig:
    if path is None:
        return CurationConfig()
    try:
        return CurationConfig.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise SystemExit(f"d4d-decide: --config {path}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4d-decide", description=__doc__.split("\n\n")[0])
    p.add_argument("assets", nargs="+", metavar="ASSET", help="asset files or render directories")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--config", help="JSON file of CurationConfig fields to override (see docs/curation.md)")
    p.add_argument("--resolution", type=int, default=64, help="asset files: preview render side, pixels (default 64)")
    p.add_argument("--frames", type=int, default=24, help="asset files: frames per video T (default 24)")
    p.add_argument("--render-kept", type=Path, help="asset files: quality-render kept assets into DIR/<stem>")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config(args.config)
    any_failed = False
    with contextlib.ExitStack() as stack:
        renderer = None
        for asset in args.assets:
            path = Path(asset)
            if path.is_dir():
                decision = decide_render_dir(path, config)
            elif path.is_file():
                if renderer is None:  # one warm Blender worker for every asset file of the run
                    from d4d.rendering.api import Renderer

                    renderer = stack.enter_context(Renderer())
                decision = decide_asset_file(path, renderer, config, args.resolution, args.frames, args.render_kept)
            else:
                decision = Decision("failed", "import_failed", {"error_kind": "missing_file"}, f"missing_file: {path}: no such file or directory")
            any_failed |= decision.decision == "failed"
            if args.json:
                print(json.dumps({"asset": asset, **decision.to_json()}), flush=True)
            else:
                print(f"{asset}\t{decision.decision}\t{decision.reason or ''}\t{decision.detail}", flush=True)
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
