"""One decision per asset: keep, reject (with a machine-readable reason) or failed.

``decide`` is pure: it reads a render's asset.json (docs/conventions.md) and, optionally, the
rendered frames, runs the rules of ``curation.rules`` in a fixed order, and returns every
measure it took, the first reason that fired and the list of all that fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from d4d.curation import rules
from d4d.curation.config import CurationConfig
from d4d.rendering.contract import AssetInfo

#: Reject / failure reasons, in the order the rules run (the first that fires is *the* reason).
REASONS = {
    "import_failed": "failed: the renderer could not import the asset",
    "render_failed": "failed: rendering crashed, timed out, or left an unreadable render directory",
    "no_animation": "reject: asset.json says the asset has no animation (paper rule 1)",
    "too_short": "reject: the animated range covers fewer than min_animation_frames frames",
    "too_static": "reject: too little motion (geometric displacement, front-view SSIM, or motion magnitude)",
    "empty_render": "reject: every rendered frame is fully transparent",
    "distorted": "reject: front-view SSIM below ssim_distorted: the change is distortion, not motion (paper rule 2)",
    "leaves_frame": "reject: the object's alpha touches the image border in an orbit frame (paper rule 3)",
    "too_small": "reject: the object covers too little of the image",
}
FAILURES = ("import_failed", "render_failed")
DECISIONS = ("keep", "reject", "failed")


@dataclass
class Decision:
    """The verdict on one asset.

    Attributes:
        decision: "keep", "reject" or "failed" (the asset could not be judged: import or
            render failure).
        reason: one of ``REASONS`` for reject/failed; None for keep.
        measures: every measured value behind the decision (JSON-safe), plus
            ``rules_fired`` (all reasons that fired, in rule order), ``rules_fired_by`` (the
            rules that fired them: "animation", "geometric_motion", "front_ssim", ...) and ``rules_skipped``
            (rule -> why it could not be evaluated); for a render made under a relaxed asset
            policy, ``asset_policy`` (asset.json ``policy``, e.g. ``{"allow_untextured": true}``)
            and ``asset_warnings`` (what was rendered differently from the file).
        detail: one human-readable line for the reason (for a keep: what the asset policy let through).
    """

    decision: str
    reason: str | None = None
    measures: dict = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        if (self.decision == "keep") != (self.reason is None):
            raise ValueError(f"decision {self.decision!r} with reason {self.reason!r}: keep has no reason, others need one")

    @property
    def kept(self) -> bool:
        return self.decision == "keep"

    def to_json(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "detail": self.detail, "measures": self.measures}


def decide(asset: AssetInfo, frames: dict[str, np.ndarray] | None = None, config: CurationConfig | None = None) -> Decision:
    """Judge one clip.

    Args:
        asset: the render's parsed asset.json (only ``error``, ``animation``,
            ``motion_magnitude``, ``policy`` and ``warnings`` are read).
        frames: video name ("dynamic", "static", "front") -> uint8 RGBA [T, H, W, 4]
            (straight alpha), or None for the render-free pre-pass (only the asset.json rules
            run; a "keep" then means "passed the cheap rules").
        config: thresholds; default ``CurationConfig()``.

    Rules, in order: failure (import_failed / render_failed), animation (no_animation),
    duration (too_short), geometric motion (too_static), then with frames: empty_render,
    front-view SSIM (too_static, distorted), framing (leaves_frame, too_small), motion
    magnitude (too_static). Every rule runs, so ``measures`` is complete; the first that
    fires gives ``reason``.
    """
    config = config or CurationConfig()
    results: list[tuple[str, rules.RuleResult]] = [("failure", rules.failure(asset))]
    if results[0][1].reason is None:
        results += [
            ("animation", rules.animation(asset, config)),
            ("duration", rules.duration(asset, config)),
            ("geometric_motion", rules.geometric_motion(asset, config)),
        ]
        if frames:
            results += [
                ("empty_render", rules.empty_render(frames)),
                ("front_ssim", rules.front_ssim(frames, config, dict(results)["geometric_motion"].measures.get("geometric_max_displacement"))),
                ("framing", rules.framing(frames, config)),
                ("motion_magnitude", rules.motion(frames, asset, config)),
            ]
    measures: dict = {}
    fired: list[tuple[str, str, str]] = []
    skipped: dict[str, str] = {}
    for name, result in results:
        measures.update(result.measures)
        if result.skipped:
            skipped[name] = result.detail
        elif result.reason is not None:
            fired.append((result.reason, result.detail, name))
    measures["rules_fired"] = [reason for reason, _, _ in fired]
    measures["rules_fired_by"] = [name for _, _, name in fired]
    measures["rules_skipped"] = skipped
    flagged = ""
    if asset.policy:
        measures["asset_policy"] = dict(asset.policy)
        flagged = f"rendered under {', '.join(sorted(asset.policy))}"
    if asset.warnings:
        measures["asset_warnings"] = list(asset.warnings)
        flagged = "; ".join([flagged, *asset.warnings] if flagged else asset.warnings)
    if not fired:
        return Decision("keep", None, measures, flagged)
    reason, detail, _ = fired[0]
    return Decision("failed" if reason in FAILURES else "reject", reason, measures, detail)
