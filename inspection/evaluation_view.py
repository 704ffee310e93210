"""A d4d-eval output (evaluation/evaluate.py: eval.json + eval.md) as a Report.

The summary and one table per run give the paper's Table 1 columns (with the reason for every
absent metric) next to the paper's Diffusion4D rows; a bar chart per metric compares the runs
with the paper; each evaluated clip is a card with its generated orbit (the render directory's
dynamic.mp4) and its measures.
"""

from __future__ import annotations

from pathlib import Path

from d4d.evaluation.evaluate import COLUMNS, read_results
from d4d.inspection import svg
from d4d.inspection.curation_data import InspectError, video_file_sprite
from d4d.inspection.media import MediaStore
from d4d.inspection.model import Group, Item, Plot, Report

RESULTS_NAME = "eval.json"


def is_evaluation(path: Path) -> bool:
    """A d4d-eval output folder: eval.json with the d4d-eval schema."""
    try:
        read_results(path / RESULTS_NAME)
    except ValueError:
        return False
    return True


def _shown(metric: dict, digits: int) -> str:
    if metric.get("value") is None:
        return f"absent: {metric.get('reason')}"
    return f"{metric['value']:.{digits}f} ({metric.get('n')} clips)"


def evaluation_tables(results: dict) -> dict[str, dict]:
    """Title -> {column: shown value} for every run, and the paper's rows."""
    tables = {}
    for run in results["runs"]:
        rows = {title: _shown(run["metrics"][key], digits) for key, title, digits, _ in COLUMNS}
        tables[f"d4d-eval: {run['name']} ({run['clips']} clips, task {run['task'] or '?'})"] = rows
    for row in results["paper"]:
        tables[f"Diffusion4D, paper Table 1 ({row['task']})"] = {title: row.get(key, "-") for key, title, _, _ in COLUMNS}
    return tables


def _preview(render_dir: Path, store: MediaStore, notes: list[str]):
    video = render_dir / "dynamic.mp4"
    return video_file_sprite(video, store, notes) if video.is_file() else None


def evaluation_report(path: Path, store: MediaStore) -> Report:
    try:
        results = read_results(path / RESULTS_NAME)
    except ValueError as exc:
        raise InspectError(str(exc)) from None
    report = Report(kind="evaluation", title=f"Evaluation: {path.name}", source=str(path))
    runs = results["runs"]
    report.summary = [("runs", str(len(runs))), ("held-out clips", str(results.get("heldout_clips", "?"))),
                      ("held-out split", str(results.get("heldout", "?")))]
    for run in runs:
        report.summary.append((f"{run['name']} clips", str(run["clips"])))
        report.notes += [f"{run['name']}: {note}" for note in run.get("notes", [])]
        if run.get("missing"):
            report.notes.append(f"{run['name']}: no generated orbit for {len(run['missing'])} held-out clips")
    report.tables = evaluation_tables(results)
    report.tables["settings"] = results.get("config", {})
    for key, title, _, higher in COLUMNS:
        labels = [run["name"] for run in runs] + [f"paper ({row['task']})" for row in results["paper"] if row.get(key) is not None]
        values = [run["metrics"][key]["value"] for run in runs] + [row[key] for row in results["paper"] if row.get(key) is not None]
        if any(v is not None for v in values[: len(runs)]):
            report.plots.append(Plot(key, svg.bar_chart(labels, values, title), "higher is better" if higher else "lower is better"))
    for run in runs:
        report.groups.append(Group(key=run["name"], label=run["name"], description=f"{run['clips']} clips from {run['path']}"))
        for row in run["per_clip"]:
            videos = []
            if row.get("render_dir"):
                sprite = _preview(Path(row["render_dir"]), store, report.notes)
                if sprite is not None:
                    videos.append(("generated orbit", sprite))
            skipped = row.get("skipped")
            report.items.append(Item(
                id=f"{run['name']}/{row['uid']}", title=row["uid"], status="failed" if skipped else "", group=run["name"],
                detail=f"skipped: {skipped}" if skipped else f"run {run['name']}", videos=videos,
                highlights={k: row.get(k) for k in ("psnr", "ssim", "lpips", "clip_o", "motion_error") if row.get(k) is not None},
                measures={k: v for k, v in row.items() if k != "uid"}))
    return report

