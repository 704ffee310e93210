"""A curation output as a Report: every asset with its videos, caption and measures, rejects grouped
by reason, and the distributions (motion magnitude, decisions by reason, time per stage)."""

from __future__ import annotations

import json
from pathlib import Path

from d4d.curation.decision import REASONS
from d4d.inspection import svg
from d4d.inspection.curation_data import (
    ClipRecord,
    InspectError,
    add_render_dir_previews,
    add_shard_previews,
    find_render_dirs,
    mean_timings,
    read_decisions,
    read_render_dirs,
    read_shard_records,
)
from d4d.inspection.media import MediaStore
from d4d.inspection.model import Group, Item, Plot, Report
from d4d.rendering.contract import VIDEO_NAMES

#: Measures shown on each card (the rest are in its "all measures" table).
HIGHLIGHTS = ("asset_policy", "motion_magnitude", "ssim", "geometric_max_displacement", "coverage_median", "border_max_fraction")
DECISION_COLORS = {"keep": "#2e7d32", "reject": "#c62828", "failed": "#6a1b9a"}
#: Measures plotted as histograms besides motion magnitude, with their axis labels.
HISTOGRAMS = {
    "ssim_min": "front-view SSIM, lowest pair",
    "coverage_median": "median alpha coverage (fraction of the image)",
    "geometric_max_displacement": "max vertex displacement (scene units)",
    "seconds": "seconds per clip, all pipeline stages",
}


def load_curation(path: Path, store: MediaStore, config: dict | None = None, workers: int = 1) -> tuple[list[ClipRecord], dict, list[str]]:
    """(records, stats.json or {}, notes) for any of the layouts of ``inspection.curation_data``."""
    from d4d.curation.config import CurationConfig
    from d4d.shards.files import SHARD_PATTERN

    try:
        CurationConfig.from_dict(config or {})
    except (TypeError, ValueError) as exc:
        raise InspectError(f"curation config {config}: {exc}") from None
    notes: list[str] = []
    stats: dict = {}
    decisions = path / "decisions.parquet"
    shard_dir = path / "shards" if (path / "shards").is_dir() else path
    has_shards = shard_dir.is_dir() and any(SHARD_PATTERN.match(p.name) for p in shard_dir.iterdir())
    if (path / "stats.json").is_file():
        try:
            stats = json.loads((path / "stats.json").read_text())
        except json.JSONDecodeError as exc:
            notes.append(f"{path / 'stats.json'}: not valid JSON ({exc}); run statistics not shown")
    if decisions.is_file() or has_shards:
        in_shards = read_shard_records(shard_dir) if has_shards else {}
        if decisions.is_file():
            records = read_decisions(decisions)
            for record in records:
                row = in_shards.pop(record.uid, None)
                if row is not None:
                    record.caption = record.caption or row.caption
                    record.timings = row.timings
                    record.content_sha256 = row.content_sha256
                    record.shard_videos = row.shard_videos
                    record.name = record.name or row.name
                    record.sha256 = record.sha256 or row.sha256
                    record.measures.setdefault("motion_magnitude", row.measures.get("motion_magnitude"))
            if in_shards:
                notes.append(f"{len(in_shards)} shard rows have no row in {decisions.name} (shown as kept): {', '.join(sorted(in_shards)[:5])}")
            records += list(in_shards.values())
        else:
            records = list(in_shards.values())
            notes.append(f"no decisions.parquet next to {shard_dir}: showing the shards' clips, all kept")
        notes += add_shard_previews(records, shard_dir, store, workers)
        add_render_dir_previews(records, store, workers)
        return records, stats, notes
    dirs = find_render_dirs(path)
    if not dirs:
        raise InspectError(f"{path}: no decisions.parquet, shards or render directories (transforms.json) found")
    notes.append(f"decided here from {len(dirs)} render directories with curation.decision.decide")
    return read_render_dirs(dirs, store, config, workers), stats, notes


def clip_title(record: ClipRecord) -> str:
    """A clip's card title: the asset's file name, its animation and window, as far as known; else its uid."""
    parts = [record.name] if record.name else []
    if record.action:
        parts.append(record.action)
    if record.window is not None:
        parts.append(f"{record.window[0]:.2f}-{record.window[1]:.2f} s")
    return " · ".join(parts) or record.uid


def clip_hover(record: ClipRecord) -> str:
    """What the title's tooltip adds: the clip id, the asset id and the file's sha256."""
    lines = [f"clip {record.uid}"]
    if record.asset_uid and record.asset_uid != record.uid:
        lines.append(f"asset {record.asset_uid}")
    if record.sha256:
        lines.append(f"sha256 {record.sha256}")
    return "\n".join(lines)


def _item(record: ClipRecord) -> Item:
    measures = dict(record.measures)
    highlights = {k: measures[k] for k in HIGHLIGHTS if measures.get(k) is not None}
    return Item(
        id=record.uid, title=clip_title(record), status=record.decision, group=record.reason, caption=record.caption,
        detail=record.detail, videos=[(name, record.previews[name]) for name in VIDEO_NAMES if name in record.previews],
        highlights=highlights, measures=measures, parent=record.asset_uid or record.uid, parent_title=record.name,
        hover=clip_hover(record),
    )


def _stage_plots(stats: dict) -> list[Plot]:
    """Time per pipeline stage from d4d-curate's stats.json (``stage_seconds_per_clip``, ``stage_seconds``)."""
    plots = []
    for key, title, note in (("stage_seconds_per_clip", "Time per pipeline stage, mean per clip", "clips that reached the stage"),
                             ("stage_seconds", "Time per pipeline stage, total", "all finished assets")):
        stages = stats.get(key)
        if isinstance(stages, dict) and stages:
            plots.append(Plot(key, svg.bar_chart(list(stages), list(stages.values()), title, unit=" s"), f"stats.json {key}: {note}"))
    return plots


def _ssim_min(record: ClipRecord) -> float | None:
    values = [v for v in record.measures.get("ssim") or [] if isinstance(v, (int, float))]
    return min(values) if values else None


def curation_report(path: Path, store: MediaStore, config: dict | None = None, workers: int = 1) -> Report:
    records, stats, notes = load_curation(path, store, config, workers)
    order = {"failed": 0, "reject": 1, "keep": 2}
    reasons = [r for r in REASONS if any(rec.reason == r for rec in records)]
    reasons += sorted({rec.reason for rec in records if rec.reason and rec.reason not in REASONS})
    counts = {d: sum(r.decision == d for r in records) for d in ("keep", "reject", "failed")}
    report = Report(kind="curation", title=f"Curation: {path.name}", source=str(path), notes=notes)
    assets = {r.asset_uid or r.uid for r in records}
    report.summary = [("assets", str(len(assets))), ("clips", str(len(records))), *((f"{d} clips", str(n)) for d, n in counts.items())]
    with_preview = sum(bool(r.previews) for r in records)
    report.summary.append(("with previews", str(with_preview)))
    report.groups = [Group(r, r, REASONS.get(r, "")) for r in reasons]
    # Clips under their asset: assets with a problem first, then each asset's clips by verdict.
    worst = {}
    for r in records:
        key = r.asset_uid or r.uid
        worst[key] = min(worst.get(key, 3), order.get(r.decision, 3))
    report.items = [_item(r) for r in sorted(records, key=lambda r: (worst[r.asset_uid or r.uid], r.asset_uid or r.uid, order.get(r.decision, 3), r.reason or "", r.uid))]
    magnitudes = [r.motion_magnitude for r in records if r.motion_magnitude is not None]
    report.plots.append(Plot("motion magnitude", svg.histogram(magnitudes, "Motion magnitude m(V) per clip", "m (Eq. 1, version 1: 0..195075)", ylabel="clips"),
                             f"{len(magnitudes)} of {len(records)} clips have a motion magnitude"))
    labels = ["keep"] + reasons
    values = [counts["keep"]] + [sum(r.reason == reason for r in records) for reason in reasons]
    colors = [DECISION_COLORS["keep"]] + [DECISION_COLORS["failed" if reason in ("import_failed", "render_failed") else "reject"] for reason in reasons]
    report.plots.append(Plot("decisions", svg.bar_chart(labels, values, "Decisions by reason", colors=colors)))
    report.plots += _stage_plots(stats)
    render_stages = mean_timings(records)
    report.plots.append(Plot("render stages", svg.bar_chart(list(render_stages), list(render_stages.values()), "Render time per stage, mean per asset", unit=" s"),
                             f"asset.json timings of {sum(bool(r.timings) for r in records)} assets"))
    for key, label in HISTOGRAMS.items():
        values = [_ssim_min(r) if key == "ssim_min" else r.measures.get(key) for r in records]
        values = [v for v in values if isinstance(v, (int, float))]
        if values:
            report.plots.append(Plot(key, svg.histogram(values, label, label, log_x=False, ylabel="clips")))
    if stats:
        report.tables["stats.json"] = {k: v for k, v in stats.items()}
    return report
