"""The autoencoder stage of a training run (training/autoencoder.py) for the training report.

A from-scratch run fits its VAE first and writes ``RUN/autoencoder/metrics.json``:
``heldout_psnr`` and ``train_psnr`` (dB, frames decoded from their posterior mode),
``heldout_frames``, ``train_frames``, ``scaling_factor``, ``steps``, ``resolution`` (px),
``seconds`` and ``history`` ([{"step", "loss", "train_psnr"}], the batch PSNR in dB). A run
fine-tuned from another model has no stage of its own: its VAE came with that model, and when
the static reference its exported model records (``RUN/model/model_index.json``
``static_reference``, a ``RUN0/model`` folder) has a stage in ``RUN0/autoencoder``, the summary
says so. Every field is checked: what is not a finite number is left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from d4d.inspection import svg
from d4d.inspection.model import Plot

STAGE_DIR = "autoencoder"
METRICS_NAME = "metrics.json"
RUN_RELATIVE = f"{STAGE_DIR}/{METRICS_NAME}"


def _number(value) -> float | None:
    """``value`` as a float when it is a finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _db(value) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.2f} dB"


@dataclass
class AutoencoderView:
    """What the training report shows of the stage: summary pairs, plots, tables (title -> dict)."""

    summary: list[tuple[str, str]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)


def read_stage_metrics(stage: Path, notes: list[str]) -> dict | None:
    """``stage/metrics.json`` as a dict; None when there is none, or (with a line in ``notes``)
    when it is not a JSON object."""
    path = stage / METRICS_NAME
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: not valid JSON ({exc})")
        return None
    if not isinstance(metrics, dict):
        notes.append(f"{path}: not a JSON object")
        return None
    return metrics


def history_series(history) -> tuple[list[float], list[float], list[float]]:
    """(steps, loss, batch PSNR dB) from ``history``; entries without a finite step, loss and PSNR are skipped."""
    steps, losses, psnrs = [], [], []
    for entry in history if isinstance(history, list) else []:
        values = [_number(entry.get(k)) for k in ("step", "loss", "train_psnr")] if isinstance(entry, dict) else [None]
        if all(v is not None for v in values):
            steps.append(values[0])
            losses.append(values[1])
            psnrs.append(values[2])
    return steps, losses, psnrs


def stage_plots(metrics: dict) -> list[Plot]:
    """The stage's loss and PSNR over its steps; the held-out and training-frame PSNR measured
    at the end are points at its last step (``steps``, else the last logged one)."""
    steps, losses, psnrs = history_series(metrics.get("history"))
    last = _number(metrics.get("steps"))
    last = max(steps, default=None) if last is None else last
    psnr_lines = {"batch PSNR (training)": (steps, psnrs)}
    if last is not None:
        for name, key in (("held-out frames (end)", "heldout_psnr"), ("training frames (end)", "train_psnr")):
            if _number(metrics.get(key)) is not None:
                psnr_lines[name] = ([last], [metrics[key]])
    return [
        Plot("autoencoder loss", svg.line_chart({"loss": (steps, losses)}, "Autoencoder loss", "autoencoder step", "MSE + KL"),
             f"{RUN_RELATIVE}: history ({len(steps)} entries)"),
        Plot("autoencoder psnr", svg.line_chart(psnr_lines, "Autoencoder PSNR", "autoencoder step", "PSNR (dB)", log_y=False),
             "reconstructions of training batches; held-out frames are never trained on"),
    ]


def autoencoder_view(run: Path, notes: list[str]) -> AutoencoderView:
    """The stage of ``run`` (summary, plots, its metrics as a table); for a run without one, a
    summary line naming the run whose stage fitted its VAE, when its model records it; else nothing."""
    view = AutoencoderView()
    metrics = read_stage_metrics(run / STAGE_DIR, notes)
    if metrics is not None:
        steps, seconds = _number(metrics.get("steps")), _number(metrics.get("seconds"))
        view.summary = [("autoencoder held-out PSNR", _db(metrics.get("heldout_psnr"))),
                        ("autoencoder steps", ("-" if steps is None else f"{steps:.0f}") + (f" ({seconds:.0f} s)" if seconds is not None else ""))]
        view.plots = stage_plots(metrics)
        view.tables[RUN_RELATIVE] = {k: v for k, v in metrics.items() if k != "history"}
        return view
    if (run / STAGE_DIR).is_dir():  # a stage under way, or one whose metrics.json is broken (a note says so)
        if not (run / RUN_RELATIVE).exists():
            view.summary = [("autoencoder", f"not finished (no {RUN_RELATIVE})")]
        return view
    base = inherited_stage(run)
    if base is not None:
        base_metrics = read_stage_metrics(base, notes) or {}
        view.summary = [("VAE", f"from {base.parent.name}'s autoencoder stage (held-out {_db(base_metrics.get('heldout_psnr'))})")]
        view.tables["VAE"] = {"fitted in": str(base), "held-out PSNR (dB)": _number(base_metrics.get("heldout_psnr"))}
    return view


def inherited_stage(run: Path) -> Path | None:
    """``RUN0/autoencoder`` when ``run``'s exported model records the static reference
    ``RUN0/model`` it was fine-tuned from (its VAE came from there) and RUN0 has a stage."""
    try:
        config = json.loads((run / "model" / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    reference = config.get("static_reference") if isinstance(config, dict) else None
    if not isinstance(reference, str) or not reference:
        return None
    stage = Path(reference).parent / STAGE_DIR
    return stage if (stage / METRICS_NAME).is_file() else None
