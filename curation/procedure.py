"""The one staged decision procedure: pre-check, pre-pass, deferral, quality render, final decision.

d4d-curate (``pipelines.steps``), d4d-decide (``curation.cli``) and the report
(``inspection``) all decide through this module. Per asset, one import in one warm Blender
worker serves every stage and every clip (animation x window, ``rendering.clips``):

1. **pre-check** (no rendering): each clip is analysed (animation found, its range, vertex
   motion) and the render-free rules run; a reject keeps a tiny front-view preview.
2. **pre-pass**: a cheap render (``prepass_engine``, few samples, no denoising) at
   ``prepass_resolution`` and every rule. A verdict
   that rests on image-fidelity rules alone (``IMAGE_FIDELITY_RULES``: front-view SSIM, which
   depends on resolution) is deferred to the quality render instead of rejecting.
3. **quality render**: the clip's final render; the rules run again on it and that decision is
   final (``decide_render``). A kept clip's render stays, annotated with its identity; a clip
   rejected here keeps that render as its preview (moved to the previews folder).

An asset that cannot be imported raises ``AssetError`` (one failure for the asset); a clip
whose render fails is a ``failed`` outcome of its own, and its siblings go on.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from d4d.curation.config import CurationConfig
from d4d.curation.decision import Decision, decide
from d4d.curation.rules import failure_reason
from d4d.files import publish_dir
from d4d.rendering.api import AssetPolicy, OpenAsset, Renderer
from d4d.rendering.clips import ClipPlan, clip_id
from d4d.rendering.contract import AssetInfo, RenderContractError, RenderSample, load_render
from d4d.rendering.errors import AssetError
from d4d.rendering.options import RenderOptions
from d4d.untrusted import child

#: Rules whose verdict depends on image fidelity (front-view SSIM). A low-resolution cheap
#: render can cross their thresholds where the quality render does not (benchmarks/RESULTS.md:
#: a morphing cube read as "distorted" at 64 px), so the pre-pass never rejects on them alone.
IMAGE_FIDELITY_RULES = frozenset({"front_ssim"})
STAGES = ("precheck", "prepass", "quality")


@dataclass(frozen=True)
class DecisionConfig:
    """How a clip is judged: the renders of each stage and the rules."""

    render: RenderOptions = field(default_factory=RenderOptions)
    """The quality render, whose frames are the clip's final ones (frames, resolution, engine,
    samples, time sampling and windows)."""
    prepass_resolution: int = 64
    """Side in pixels of the pre-pass render (of ``prepass_videos``), whose frames the rules read."""
    prepass_engine: Literal["cycles", "workbench"] = "cycles"
    """Engine of the pre-pass render and of reject previews. Cycles at ``prepass_samples``
    without denoising, because headless Blender on a CPU draws Workbench through software GL:
    on the 2-core CPU machine 48 frames at 64 px took 0.45 s (Cycles 0.21 s) for a small rigid
    asset and 8.8 s (Cycles 3.6 s) for an 82k-triangle mesh (benchmarks/prepass_engine.py).
    "workbench" suits a machine whose Blender draws OpenGL on a GPU."""
    prepass_samples: int = 4
    """Cycles samples per pixel of the pre-pass (noise repeats exactly between the orbits where
    nothing moves: Cycles' seed is fixed, so Eq. 1 sees only motion)."""
    prepass_videos: tuple[Literal["dynamic", "static", "front"], ...] = ("dynamic", "static")
    """Videos of the pre-pass render. The orbits are what its rules read (framing, emptiness;
    its SSIM verdicts are deferred to the quality render, so the front video would only be
    rendered to be overruled)."""
    precheck_resolution: int = 16
    """Side in pixels of the front-view preview kept for a clip rejected at the pre-check."""
    preview_frames: int = 8
    """Frames of that preview (evenly spaced over the clip, first and last included)."""
    prepass_timeout_s: float = 120.0
    """Import, pre-check and pre-pass time bound, seconds; longer counts as a failed attempt (timeout)."""
    reject_previews: bool = True
    """Keep a rejected clip's cheap render (the pre-check's front video or the pre-pass's videos)
    so reports can show what was rejected; about 0.1-0.3 MB per reject at the default sizes."""
    max_clips_per_asset: int = 64
    """Judge at most this many clips of one asset (the default animation first, then the others
    by name, each window most-moving first); the rest are listed in the asset's first clip."""
    policy: AssetPolicy = field(default_factory=AssetPolicy)
    """What an asset may do that is refused by default (missing or outside links, bad textures)."""
    rules: CurationConfig = field(default_factory=CurationConfig)
    """The curation rules' thresholds (docs/curation.md)."""

    def __post_init__(self) -> None:
        for name in ("prepass_resolution", "precheck_resolution"):
            if not 16 <= getattr(self, name) <= 4096:
                raise ValueError(f"{name} must be in [16, 4096] pixels, got {getattr(self, name)}")
        if not 2 <= self.preview_frames <= self.render.frames:
            raise ValueError(f"preview_frames must be in [2, {self.render.frames}] (the clip's frames), got {self.preview_frames}")
        if self.max_clips_per_asset < 1:
            raise ValueError(f"max_clips_per_asset must be >= 1, got {self.max_clips_per_asset}")
        if self.prepass_samples < 1:
            raise ValueError(f"prepass_samples must be >= 1, got {self.prepass_samples}")
        if self.prepass_timeout_s <= 0:
            raise ValueError(f"prepass_timeout_s must be > 0 seconds, got {self.prepass_timeout_s}")

    def prepass_options(self) -> RenderOptions:
        """The pre-pass render: the quality render's clip and lights, cheap engine settings."""
        return replace(self.render, engine=self.prepass_engine, samples=self.prepass_samples, denoise=False, resolution=self.prepass_resolution,
                       timeout_s=self.prepass_timeout_s, videos=self.prepass_videos, orbits=1)

    def preview_options(self) -> RenderOptions:
        return replace(self.prepass_options(), resolution=self.precheck_resolution, videos=("front",), frames=self.preview_frames)


@dataclass
class ClipOutcome:
    """The verdict on one clip.

    Attributes:
        clip_id: its id (``rendering.clips.clip_id``): the asset's uid for an asset's only clip.
        action: the animation it plays (None: the file's default without a single name).
        window: asset.json's ``animation.window`` of the clip (None without one).
        decision: keep / reject / failed with reason, detail and every measure.
        stage: where it was decided ("precheck", "prepass" or "quality").
        render_dir: the quality render (kept), the reject's preview (its pre-check or pre-pass
            render, or its quality render when rejected there; when previews are kept), else None.
        timings: stage -> seconds spent on this clip (the import is charged to the first clip).
        retryable: for a failed clip, whether another attempt may succeed (crash, timeout).
    """

    clip_id: str
    action: str | None
    window: dict | None
    decision: Decision
    stage: str
    render_dir: Path | None = None
    timings: dict = field(default_factory=dict)
    retryable: bool = False


#: Renderer failure kinds worth another try (the same file may well succeed next time).
RETRYABLE_KINDS = ("crashed", "timeout", "render_failed")


def failure_decision(exc: AssetError) -> Decision:
    """A renderer AssetError as a failed Decision (import_failed or render_failed, with its kind)."""
    return Decision("failed", failure_reason(exc.kind), {"error_kind": exc.kind}, f"{exc.kind}: {exc.reason}")


def decide_render(sample: RenderSample, rules: CurationConfig) -> Decision:
    """The final decision on a rendered clip: every rule over its frames and asset.json."""
    return decide(sample.asset, {name: video.rgba for name, video in sample.videos.items()}, rules)


def decide_render_dir(root: str | Path, rules: CurationConfig) -> Decision:
    """``decide_render`` of a render directory; one that breaks the contract is a failed render."""
    try:
        sample = load_render(root)
    except (RenderContractError, OSError) as exc:
        return Decision("failed", "render_failed", {"error_kind": "unreadable_render"}, f"unreadable render directory: {exc}")
    return decide_render(sample, rules)


def _publish_preview(scratch: Path, previews_dir: Path | None, clip: str) -> Path | None:
    """Move a reject's cheap render to ``previews_dir/<clip>`` (replacing it); None when not kept."""
    if previews_dir is None or not (scratch / "transforms.json").exists():
        shutil.rmtree(scratch, ignore_errors=True)
        return None
    previews_dir.mkdir(parents=True, exist_ok=True)
    return publish_dir(scratch, child(previews_dir, clip, "clip id"))


class StagedDecision:
    """Judge every clip of an asset with one import.

    Args:
        config: the stages' renders and the rules.
        renderer: a warm Renderer (its worker holds the asset across stages and clips).
        scratch_dir: where pre-check and pre-pass renders are made (emptied of them afterwards).
    """

    def __init__(self, config: DecisionConfig, renderer: Renderer, scratch_dir: Path):
        self.config = config
        self.renderer = renderer
        self.scratch_dir = Path(scratch_dir)

    def run(self, asset: str | Path, uid: str, renders_dir: Path, previews_dir: Path | None = None, sha256: str | None = None,
            done: frozenset[str] = frozenset(), annotate: Callable[[AssetInfo, str], None] | None = None) -> list[ClipOutcome]:
        """Decide every clip of ``asset`` whose id is not in ``done``.

        Args:
            uid: the asset's id; clip ids derive from it.
            renders_dir: kept clips' quality renders go to ``renders_dir/<clip id>`` (replaced).
            previews_dir: rejects' cheap renders go to ``previews_dir/<clip id>`` when
                ``config.reject_previews`` (None: not kept).
            sha256: the file's digest when the caller already computed it (not computed again).
            annotate: called with a kept clip's asset.json and its clip id before the asset.json
                is written (identity, caption).

        Raises AssetError (``asset`` set) when the asset cannot be opened or planned: the whole
        asset fails. Clip failures are outcomes.
        """
        clock = time.perf_counter()
        opened = self.renderer.open(asset, sha256=sha256, policy=self.config.policy, timeout_s=self.config.prepass_timeout_s)
        plans = opened.clips(self.config.render)
        dropped = [clip_id(uid, p) for p in plans[self.config.max_clips_per_asset:]]
        plans = plans[: self.config.max_clips_per_asset]
        setup_s = time.perf_counter() - clock
        previews = previews_dir if self.config.reject_previews else None
        outcomes = []
        for plan in plans:
            cid = clip_id(uid, plan)
            if cid in done:
                continue
            outcome = self._clip(opened, plan, cid, renders_dir, previews, annotate)
            outcome.timings["precheck"] = outcome.timings.get("precheck", 0.0) + setup_s
            if dropped and not outcomes:
                outcome.decision.measures["clips_not_judged"] = dropped
            setup_s = 0.0
            outcomes.append(outcome)
        return outcomes

    def _clip(self, opened: OpenAsset, plan: ClipPlan, cid: str, renders_dir: Path, previews: Path | None, annotate) -> ClipOutcome:
        timings: dict[str, float] = {}
        measures: dict = {}
        window = plan.window_info(opened.description["fps"])

        def outcome(decision: Decision, stage: str, render_dir: Path | None = None, retryable: bool = False) -> ClipOutcome:
            decision.measures = {**measures, **decision.measures}
            return ClipOutcome(cid, plan.name, window, decision, stage, render_dir, timings, retryable)

        def failed(exc: AssetError, stage: str) -> ClipOutcome:
            return outcome(failure_decision(exc), stage, retryable=exc.kind in RETRYABLE_KINDS)

        # 1. pre-check: render-free rules on the analysis.
        clock = time.perf_counter()
        try:
            pre = decide(opened.analyse(plan, self.config.prepass_timeout_s), None, self.config.rules)
            measures.update(pre.measures)
            if pre.decision == "reject":
                preview = self._cheap_render(opened, plan.subsampled(self.config.preview_frames), cid, self.config.preview_options(), previews) if previews else None
                return outcome(pre, "precheck", preview)
        except AssetError as exc:
            return failed(exc, "precheck")
        finally:
            timings["precheck"] = time.perf_counter() - clock

        # 2. pre-pass: every rule on a cheap render; image-fidelity-only verdicts are deferred.
        clock = time.perf_counter()
        scratch = child(self.scratch_dir, f"{cid}-prepass", "clip id")
        try:
            opened.render(plan, scratch, self.config.prepass_options(), overwrite=True)
            verdict = decide_render(load_render(scratch), self.config.rules)
        except AssetError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            return failed(exc, "prepass")
        finally:
            timings["prepass"] = time.perf_counter() - clock
        measures.update(verdict.measures)
        if verdict.decision == "reject" and set(verdict.measures["rules_fired_by"]) <= IMAGE_FIDELITY_RULES:
            measures["prepass_deferred"] = f"{verdict.reason}: {verdict.detail}"
        elif verdict.decision != "keep":
            return outcome(verdict, "prepass", _publish_preview(scratch, previews, cid))
        shutil.rmtree(scratch, ignore_errors=True)

        # 3. quality render: the final decision.
        clock = time.perf_counter()
        out = child(renders_dir, cid, "clip id")
        try:
            asset = opened.render(plan, out, self.config.render, overwrite=True, annotate=annotate and (lambda info: annotate(info, cid)))
            final = decide_render(load_render(out), self.config.rules)
        except AssetError as exc:
            return failed(exc, "quality")
        finally:
            timings["quality"] = time.perf_counter() - clock
        if not final.kept:  # its quality render becomes its preview (the frames the rules judged)
            return outcome(final, "quality", _publish_preview(out, previews, cid))
        final.measures.update(motion_magnitude=asset.motion_magnitude, motion_magnitude_version=asset.motion_magnitude_version,
                              render_s=asset.timings.get("total_s"))
        return outcome(final, "quality", out)

    def _cheap_render(self, opened: OpenAsset, plan: ClipPlan, cid: str, options: RenderOptions, previews: Path) -> Path | None:
        """A small preview of a rejected clip under ``previews/<cid>``; None when it cannot be rendered."""
        scratch = child(self.scratch_dir, f"{cid}-preview", "clip id")
        try:
            opened.render(plan, scratch, options, overwrite=True)
        except AssetError:
            shutil.rmtree(scratch, ignore_errors=True)
            return None
        return _publish_preview(scratch, previews, cid)
