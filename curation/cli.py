"""d4d-decide: why was each clip kept or rejected? The pipeline's answer, for files or renders.

    d4d-decide ASSET [ASSET ...] [--json] [--config RULES.json] [--render-kept DIR] [flags of d4d-curate's decision]

ASSET is either an asset file, judged by exactly the staged decision d4d-curate runs
(``curation.procedure``: pre-check, pre-pass with deferral, quality render; one import per
asset, every clip), with the same settings and flags; or a render directory (it holds
transforms.json), given the final decision from its frames and asset.json, no Blender.

One line per clip on stdout, in order: ``ASSET<TAB>decision<TAB>reason<TAB>detail`` (``ASSET#CLIP``
when the asset has several clips), or with ``--json`` one JSON object per line with keys
asset, uid (the clip id, as in decisions.parquet), asset_uid, action, window, stage,
decision, reason, detail, measures. An asset file's uid is its sha256, as for d4d-curate's
local source. Exit status 0 when every clip was judged (kept or rejected), 1 when any failed,
2 on bad arguments. Progress over the assets (elapsed, time left) goes to stderr (d4d.progress).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from d4d.curation.config import CurationConfig
from d4d.curation.decision import Decision
from d4d.curation.procedure import ClipOutcome, DecisionConfig, StagedDecision, decide_render_dir, failure_decision
from d4d.options import add_options, apply_overrides, overrides_from_args
from d4d.progress import say, track
from d4d.rendering.api import Limits, Renderer, check_asset_file
from d4d.rendering.errors import AssetError

#: Flags that mean something else here than in the decision (d4d-render's single clip).
NOT_DECIDE_OPTIONS = ("render.action", "render.window")
DECIDE_ALIASES = {"render.timeout_s": ["--timeout"], "prepass_timeout_s": ["--prepass-timeout"]}


def load_rules(path: str | None) -> CurationConfig:
    """The rules of ``--config`` (defaults without it); ValueError naming the file otherwise."""
    if path is None:
        return CurationConfig()
    try:
        return CurationConfig.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"--config {path}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d4d-decide", description=__doc__.split("\n\n")[0])
    p.add_argument("assets", nargs="+", metavar="ASSET", help="asset files or render directories")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--config", help="JSON file of CurationConfig fields to override (see docs/curation.md)")
    p.add_argument("--render-kept", type=Path, help="asset files: keep each kept clip's quality render in DIR/<clip id> (default: a temporary folder)")
    add_options(p.add_argument_group("the decision's settings (DecisionConfig, as d4d-curate's)"), DecisionConfig,
                exclude=NOT_DECIDE_OPTIONS, aliases=DECIDE_ALIASES, flatten=True)
    add_options(p.add_argument_group("resource bounds (Limits)"), Limits)
    return p


def _line(asset: str, outcome: ClipOutcome | None, decision: Decision, several: bool, as_json: bool, asset_uid: str | None) -> str:
    label = f"{asset}#{outcome.clip_id}" if several and outcome is not None else asset
    if as_json:
        clip = {"uid": outcome.clip_id, "asset_uid": asset_uid, "action": outcome.action, "window": outcome.window, "stage": outcome.stage} if outcome else {
            "uid": asset_uid, "asset_uid": asset_uid, "action": None, "window": None, "stage": None}
        return json.dumps({"asset": asset, **clip, **decision.to_json()})
    return f"{label}\t{decision.decision}\t{decision.reason or ''}\t{decision.detail}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = replace(DecisionConfig(), rules=load_rules(args.config))
        config = apply_overrides(config, overrides_from_args(args, DecisionConfig))
        limits = apply_overrides(Limits(), overrides_from_args(args, Limits))
    except ValueError as exc:
        parser.error(str(exc))
    any_failed = False
    with contextlib.ExitStack() as stack:
        procedure = None
        for asset in track(args.assets, "decide", unit="assets"):
            path = Path(asset)
            if path.is_dir():
                decision = decide_render_dir(path, config.rules)
                any_failed |= decision.decision == "failed"
                say(_line(asset, None, decision, False, args.json, path.name))
                continue
            if procedure is None:  # one warm Blender worker for every asset file of the run
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="d4d-decide-")))
                procedure = StagedDecision(config, stack.enter_context(Renderer(limits=limits)), scratch)
            try:
                uid = check_asset_file(path, limits).sha256
                outcomes = procedure.run(path, uid, args.render_kept or scratch / "renders", sha256=uid)
            except AssetError as exc:
                any_failed = True
                say(_line(asset, None, failure_decision(exc), False, args.json, None))
                continue
            for outcome in outcomes:
                any_failed |= outcome.decision.decision == "failed"
                say(_line(asset, outcome, outcome.decision, len(outcomes) > 1, args.json, uid))
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
