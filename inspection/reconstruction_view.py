"""Reconstruction outputs (reconstruction/outputs.py, docs/reconstruction.md) as a Report.

``PATH`` is one d4d-reconstruct output directory (metrics.json, turntable.mp4, canonical.ply,
frames/*.ply) or a folder of them. Each becomes a card: the turntable next to the input's
dynamic, static and front videos (when ``metrics.json["input"]`` is a readable render
directory), held-out PSNR / SSIM, Gaussian count, backend and timings. Plots: PSNR and SSIM
per held-out view, PSNR over training steps (``history``), time per stage.
"""

from __future__ import annotations

import json
from pathlib import Path

from d4d.inspection import svg
from d4d.inspection.curation_data import InspectError, read_render_dirs, video_file_sprite
from d4d.inspection.media import MediaStore
from d4d.inspection.model import Item, Plot, Report


def is_reconstruction(path: Path) -> bool:
    """A d4d-reconstruct output: metrics.json with turntable.mp4 or canonical.ply beside it."""
    return (path / "metrics.json").is_file() and ((path / "turntable.mp4").is_file() or (path / "canonical.ply").is_file())


def find_reconstructions(path: Path) -> list[Path]:
    """``path`` when it is an output directory, else its immediate subdirectories that are."""
    if is_reconstruction(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and is_reconstruction(p)) if path.is_dir() else []


def psnr_history(history) -> dict[str, tuple[list[float], list[float]]]:
    """Stage -> (steps, PSNR dB) from metrics.json ``history`` ([{"step", "stage", "psnr", ...}]).

    Steps are counted over all stages: a stage whose steps start again from 1 is placed after
    the previous one. Entries without a numeric step and PSNR are skipped.
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    offset = last = 0.0
    for entry in history if isinstance(history, list) else []:
        if not isinstance(entry, dict):
            continue
        step, psnr = entry.get("step"), entry.get("psnr")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (step, psnr)):
            continue
        stage = str(entry.get("stage") or "training")
        if stage not in series and series and step + offset <= last:
            offset = last
        xs, ys = series.setdefault(stage, ([], []))
        last = step + offset
        xs.append(last)
        ys.append(float(psnr))
    return series


def _view_label(view: dict) -> str:
    return f"{view.get('video', '?')} {view.get('index', '?')}"


def reconstruction_report(path: Path, store: MediaStore, workers: int = 1) -> Report:
    outputs = find_reconstructions(path)
    if not outputs:
        raise InspectError(f"{path}: no reconstruction output (metrics.json with turntable.mp4 or canonical.ply)")
    report = Report(kind="reconstruction", title=f"Reconstruction: {path.name}", source=str(path))
    all_metrics = {}
    for out in outputs:
        try:
            all_metrics[out] = json.loads((out / "metrics.json").read_text())
        except json.JSONDecodeError as exc:
            report.notes.append(f"{out / 'metrics.json'}: not valid JSON ({exc}); skipped")
    inputs = {out: Path(m["input"]) for out, m in all_metrics.items() if isinstance(m.get("input"), str) and (Path(m["input"]) / "transforms.json").is_file()}
    input_records = {r.render_dir: r for r in read_render_dirs(sorted(set(inputs.values())), store, None, workers, decide_them=False)} if inputs else {}
    for out, metrics in all_metrics.items():
        held = metrics.get("heldout") or {}
        videos = []
        turntable = out / "turntable.mp4"
        if turntable.is_file():
            sprite = video_file_sprite(turntable, store, report.notes)
            if sprite is not None:
                videos.append(("turntable (novel views)", sprite))
        record = input_records.get(inputs.get(out))
        if record is not None:
            videos += [(f"input {name}", record.previews[name]) for name in ("dynamic", "static", "front") if name in record.previews]
        elif metrics.get("input"):
            report.notes.append(f"{out}: input {metrics['input']} is not a readable render directory; its videos are not shown")
        frames = sorted((out / "frames").glob("*.ply")) if (out / "frames").is_dir() else []
        measures = {
            "psnr": held.get("psnr"), "ssim": held.get("ssim"), "lpips": held.get("lpips"), "lpips_reason": held.get("lpips_reason"),
            "heldout_views": len(held.get("views") or []), "n_gaussians": metrics.get("n_gaussians"), "backend": metrics.get("backend"),
            "device": metrics.get("device"), "frames_ply": len(frames), "total_seconds": metrics.get("total_seconds"),
            "timings_s": metrics.get("timings_s"), "input": metrics.get("input"),
        }
        report.items.append(Item(
            id=out.name, title=out.name, videos=videos, caption=(record.caption if record else None),
            detail=f"{metrics.get('n_gaussians', '?')} Gaussians, {len(frames)} frame PLYs, backend {metrics.get('backend', '?')}",
            highlights={k: measures[k] for k in ("psnr", "ssim", "n_gaussians", "total_seconds") if measures[k] is not None},
            measures={k: v for k, v in measures.items() if v is not None},
        ))
    psnrs = [m["heldout"]["psnr"] for m in all_metrics.values() if (m.get("heldout") or {}).get("psnr") is not None]
    report.summary = [("reconstructions", str(len(all_metrics))), ("mean held-out PSNR", f"{sum(psnrs) / len(psnrs):.2f} dB" if psnrs else "-")]
    if len(all_metrics) == 1:
        out, metrics = next(iter(all_metrics.items()))
        report.title = f"Reconstruction: {out.name}"
        views = (metrics.get("heldout") or {}).get("views") or []
        labels = [_view_label(v) for v in views]
        report.plots.append(Plot("psnr per view", svg.bar_chart(labels, [v.get("psnr") for v in views], "Held-out PSNR per view", unit=" dB")))
        report.plots.append(Plot("ssim per view", svg.bar_chart(labels, [v.get("ssim") for v in views], "Held-out SSIM per view")))
        history = psnr_history(metrics.get("history"))
        if history:
            report.plots.append(Plot("psnr history", svg.line_chart(history, "PSNR during training", "step (all stages)", "PSNR (dB)"),
                                     f"metrics.json history: {sum(len(xs) for xs, _ in history.values())} evaluations"))
        timings = metrics.get("timings_s") or {}
        report.plots.append(Plot("timings", svg.bar_chart(list(timings), list(timings.values()), "Time per stage", unit=" s")))
        report.tables["config"] = metrics.get("config") or {}
        report.summary += [("Gaussians", str(metrics.get("n_gaussians", "-"))), ("backend", str(metrics.get("backend", "-")))]
    else:
        names = [out.name for out in all_metrics]
        report.plots.append(Plot("psnr per reconstruction", svg.bar_chart(names, [(m.get("heldout") or {}).get("psnr") for m in all_metrics.values()], "Held-out PSNR per reconstruction", unit=" dB")))
        report.plots.append(Plot("psnr histogram", svg.histogram(psnrs, "Held-out PSNR", "PSNR (dB)", log_x=False, ylabel="reconstructions")))
    return report
