"""d4d-sample outputs (training/outputs.py) as a Report: the sampled orbit, and how it compares with a render.

A sample is a render directory whose asset.json says ``render.engine`` "d4d-sample" (its
``generated`` holds the prompt, model, guidance and seed). Each becomes a card with its dynamic
and static orbits. When the folder also holds ``comparison.json`` ({"render": the training
render directory it is held against, "psnr": dB, "matte_iou": 0..1, "resolution": px}, written
by d4d/demo.py) and ``beside_render.mp4`` (that render on the left, the sample on the right, at
the sample's size), the card plays that video too and shows the PSNR and matte IoU. ``PATH`` is
one sample or a folder whose render directories are all samples.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from d4d.inspection import svg
from d4d.inspection.curation_data import InspectError, find_render_dirs, read_render_dirs, video_file_sprite
from d4d.inspection.media import MediaStore
from d4d.inspection.model import Item, Plot, Report
from d4d.rendering.contract import RenderContractError, read_asset

#: asset.json ``render.engine`` of a d4d-sample output (training.outputs.write_sample).
SAMPLE_ENGINE = "d4d-sample"
COMPARISON_NAME = "comparison.json"
BESIDE_NAME = "beside_render.mp4"
BESIDE_LABEL = "render (left) | sample (right)"


def is_sample(path: Path) -> bool:
    """A render directory written by d4d-sample."""
    if not (path / "transforms.json").is_file():
        return False
    try:
        render = read_asset(path).render or {}
    except (RenderContractError, OSError):
        return False
    return render.get("engine") == SAMPLE_ENGINE


def find_samples(path: Path) -> list[Path]:
    """``path`` when it is a sample; else the render directories under it when every one is a sample; else []."""
    if is_sample(path):
        return [path]
    dirs = find_render_dirs(path) if path.is_dir() else []
    return dirs if dirs and all(is_sample(d) for d in dirs) else []


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: comparison.json field -> (check, what it must be).
COMPARISON_FIELDS = {
    "render": (lambda v: isinstance(v, str) and bool(v), "a path"),
    "psnr": (_is_number, "a finite number (dB)"),
    "matte_iou": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "resolution": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number of pixels >= 1"),
}


def read_comparison(sample: Path, notes: list[str]) -> dict:
    """The valid fields of ``sample/comparison.json`` ({} when there is none); a line in
    ``notes`` for the file, or each field, that is not as COMPARISON_FIELDS says."""
    path = sample / COMPARISON_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: not valid JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path}: not a JSON object")
        return {}
    valid = {}
    for key, (check, what) in COMPARISON_FIELDS.items():
        if key not in data:
            continue
        if check(data[key]):
            valid[key] = data[key]
        else:
            notes.append(f"{path}: {key} must be {what}; not shown")
    return valid


def _fixed(value, digits: int, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def sample_report(path: Path, store: MediaStore, workers: int = 1) -> Report:
    """The Report of one d4d-sample output, or a folder of them (InspectError when there is none)."""
    samples = find_samples(path)
    if not samples:
        raise InspectError(f"{path}: not a d4d-sample output (a render directory whose asset.json has render.engine {SAMPLE_ENGINE!r})")
    report = Report(kind="sample", title=f"Sample: {path.name}", source=str(path))
    records = read_render_dirs(samples, store, None, workers, decide_them=False)
    comparisons, generated_by = {}, {}
    for sample, record in zip(samples, records):
        if record.decision == "failed":
            report.notes.append(f"{sample}: {record.detail}")
        comparison = comparisons[sample] = read_comparison(sample, report.notes)
        asset = read_asset(sample)
        generated = generated_by[sample] = asset.generated or {}
        render = asset.render or {}
        videos = [(f"sampled {name}", record.previews[name]) for name in ("dynamic", "static") if name in record.previews]
        beside = sample / BESIDE_NAME
        if beside.is_file():
            sprite = video_file_sprite(beside, store, report.notes)
            if sprite is not None:
                videos.append((BESIDE_LABEL, sprite))
        elif comparison:
            report.notes.append(f"{sample}: {COMPARISON_NAME} without {BESIDE_NAME}; the render is not shown beside the sample")
        compared = f"; compared with the render {Path(comparison['render']).name}" if "render" in comparison else ""
        prompt = generated.get("prompt")
        report.items.append(Item(
            id=sample.name, title=sample.name, caption=prompt if isinstance(prompt, str) else None,
            detail=f"{generated.get('task', '?')} sample, {render.get('frames', '?')} frames at {render.get('resolution', '?')} px{compared}",
            videos=videos,
            highlights={k: v for k, v in (("PSNR vs render (dB)", comparison.get("psnr")), ("matte IoU", comparison.get("matte_iou")),
                                          ("motion magnitude", generated.get("motion_magnitude")), ("seed", generated.get("seed"))) if v is not None},
            measures={**{f"comparison.{k}": v for k, v in comparison.items()}, **{f"generated.{k}": v for k, v in generated.items()},
                      "beside_render": str(beside) if beside.is_file() else None, "render": render},
        ))
    compared = {s: c for s, c in comparisons.items() if "psnr" in c or "matte_iou" in c}
    report.summary = [("samples", str(len(samples))), ("compared with a render", str(len(compared)))]
    if len(samples) == 1:
        sample, comparison = samples[0], comparisons[samples[0]]
        report.title = f"Sample: {sample.name}"
        report.summary += [("PSNR vs render", _fixed(comparison.get("psnr"), 2, " dB")), ("matte IoU", _fixed(comparison.get("matte_iou"), 3))]
        if "render" in comparison:
            report.summary.append(("compared with", Path(comparison["render"]).name))
        report.tables["generated (asset.json)"] = generated_by[sample]
        if comparison:
            report.tables[COMPARISON_NAME] = comparison
    elif compared:
        names = [s.name for s in compared]
        report.plots.append(Plot("psnr per sample", svg.bar_chart(names, [c.get("psnr") for c in compared.values()], "PSNR vs render per sample", unit=" dB")))
        report.plots.append(Plot("matte iou per sample", svg.bar_chart(names, [c.get("matte_iou") for c in compared.values()], "Matte IoU per sample")))
    return report
