"""A training run directory (docs/training.md) as a Report: loss curves, validation samples, config.

Reads ``RUN/logs/**/events.out.tfevents.*`` with TensorBoard's EventAccumulator (every scalar
tag), or JSON-lines logs (``RUN/**/*.jsonl``, one object per line with ``step`` and numeric
values), ``RUN/validation/*.mp4`` (one card per file), ``RUN/train_config.json``,
``RUN/checkpoints/step-*``, ``RUN/model/`` and the autoencoder stage ``RUN/autoencoder/metrics.json``
(``inspection.autoencoder_view``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np

from d4d.evaluation.evaluate import read_results
from d4d.inspection import svg
from d4d.inspection.autoencoder_view import autoencoder_view
from d4d.inspection.curation_data import video_file_sprite
from d4d.inspection.evaluation_view import RESULTS_NAME, evaluation_tables
from d4d.inspection.media import MediaStore
from d4d.inspection.model import Item, Plot, Report

Series = dict[str, tuple[list[float], list[float]]]


def read_event_scalars(run: Path) -> Series:
    """tag -> (steps, values) from every TensorBoard event file under ``run``.

    A tag logged in several folders (e.g. two runs in one logs/) is named ``FOLDER/tag`` with
    the folder relative to ``run``; a tag logged once keeps its name.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    per_folder: dict[Path, Series] = {}
    quiet = logging.getLogger("tensorboard")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # folders with only hparams events make it warn "No path found"
    try:
        for folder in sorted({p.parent for p in run.rglob("events.out.tfevents.*")}):
            accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
            accumulator.Reload()
            tags = accumulator.Tags().get("scalars", [])
            per_folder[folder] = {tag: ([float(e.step) for e in accumulator.Scalars(tag)], [float(e.value) for e in accumulator.Scalars(tag)]) for tag in tags}
    finally:
        quiet.setLevel(level)
    counts: dict[str, int] = {}
    for scalars in per_folder.values():
        for tag in scalars:
            counts[tag] = counts.get(tag, 0) + 1
    return {(tag if counts[tag] == 1 else f"{folder.relative_to(run).as_posix()}/{tag}"): values
            for folder, scalars in per_folder.items() for tag, values in scalars.items()}


def read_jsonl_scalars(run: Path) -> tuple[Series, list[str]]:
    """(key -> (steps, values), notes) from JSON-lines logs: each line an object with ``step`` and numbers."""
    series: Series = {}
    notes = []
    for path in sorted(run.rglob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                notes.append(f"{path}:{number}: not JSON ({exc}); line skipped")
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), (int, float)):
                continue
            for key, value in entry.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    xs, ys = series.setdefault(key, ([], []))
                    xs.append(float(entry["step"]))
                    ys.append(float(value))
    return series, notes


def _smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard-style exponential moving average (debiased)."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def scalar_plots(series: Series) -> list[Plot]:
    """One chart for every tag containing "loss" (raw and smoothed), one per other tag."""
    plots = []
    losses = {k: v for k, v in series.items() if "loss" in k.lower()}
    if losses:
        lines: Series = {}
        smooths: dict[str, str] = {}
        for name, (xs, ys) in losses.items():
            lines[name] = (xs, ys)
            if len(ys) >= 20:
                lines[f"{name} (smoothed)"] = (xs, _smooth(ys))
                smooths[f"{name} (smoothed)"] = name
        plots.append(Plot("loss", svg.line_chart(lines, "Training losses", "step", "loss", smooths=smooths),
                          f"{len(losses)} loss series" + (", each faded behind its moving average" if smooths else "")))
    for name, (xs, ys) in series.items():
        if name not in losses:
            plots.append(Plot(name, svg.line_chart({name: (xs, ys)}, name, "step", name)))
    return plots


def _step_of(path: Path) -> int | None:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else None


def _value_near(series: Series, tag: str, step: int) -> float | None:
    if tag not in series or not series[tag][0]:
        return None
    xs, ys = series[tag]
    i = int(np.argmin(np.abs(np.asarray(xs) - step)))
    return ys[i]


def training_report(run: Path, store: MediaStore) -> Report:
    report = Report(kind="training", title=f"Training run: {run.name}", source=str(run))
    series = read_event_scalars(run)
    jsonl, notes = read_jsonl_scalars(run)
    report.notes += notes
    for key, value in jsonl.items():
        series.setdefault(key, value)
    if not series:
        report.notes.append(f"{run}: no TensorBoard event files (events.out.tfevents.*) or JSON-lines logs with scalars")
    report.plots = scalar_plots(series)
    config_path = run / "train_config.json"
    if config_path.is_file():
        try:
            report.tables["train_config.json"] = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            report.notes.append(f"{config_path}: not valid JSON ({exc})")
    eval_path = run / "eval" / RESULTS_NAME
    if eval_path.is_file():
        try:
            report.tables.update(evaluation_tables(read_results(eval_path)))
        except ValueError as exc:
            report.notes.append(str(exc))
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("step-*") if p.is_dir()) if (run / "checkpoints").is_dir() else []
    last_step = max((int(max(xs)) for xs, _ in series.values() if xs), default=None)
    loss_tag = "loss" if "loss" in series else next((k for k in series if "loss" in k.lower()), None)
    last_loss = series[loss_tag][1][-1] if loss_tag else None
    report.summary = [
        ("last logged step", str(last_step) if last_step is not None else "-"),
        (f"last {loss_tag or 'loss'}", f"{last_loss:.5g}" if last_loss is not None and math.isfinite(last_loss) else "-"),
        ("scalar tags", str(len(series))),
        ("checkpoints", ", ".join(checkpoints) or "none"),
        ("exported model", "yes" if (run / "model").is_dir() else "no"),
    ]
    autoencoder = autoencoder_view(run, report.notes)
    report.summary += autoencoder.summary
    report.plots += autoencoder.plots
    report.tables.update(autoencoder.tables)
    videos = sorted((run / "validation").glob("*.mp4"), key=lambda p: (_step_of(p) is None, _step_of(p) or 0, p.name)) if (run / "validation").is_dir() else []
    for path in videos:
        step = _step_of(path)
        sprite = video_file_sprite(path, store, report.notes)
        if sprite is None:
            continue
        highlights = {"step": step}
        if step is not None and loss_tag:
            highlights[loss_tag] = _value_near(series, loss_tag, step)
        report.items.append(Item(id=path.name, title=path.relative_to(run).as_posix(), videos=[("validation sample", sprite)],
                                 highlights=highlights, measures={"file": str(path), "bytes": path.stat().st_size}))
    validation_steps = (report.tables.get("train_config.json") or {}).get("validation_steps")
    shown = "off (validation_steps 0)" if validation_steps == 0 and not report.items else str(len(report.items))
    report.summary.insert(3, ("validation videos", shown))
    return report


def is_training_run(path: Path) -> bool:
    """A d4d-train run directory: train_config.json, or checkpoints/ next to logs/."""
    return (path / "train_config.json").is_file() or ((path / "checkpoints").is_dir() and (path / "logs").is_dir())
