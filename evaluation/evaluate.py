"""The paper's Table 1 for generated runs: CLIP-F, CLIP-O, SSIM, PSNR, LPIPS, FVD, and the motion-control error.

Per clip (a generated orbit and its held-out ground truth, same cameras and times):

- PSNR, SSIM (evaluation.image_metrics) and LPIPS (d4d.lpips) of each generated frame
  against the ground-truth frame, averaged over the T frames. Frames are RGB in [0, 1] over the
  evaluation background; a generated orbit of another size is resized (area) to the ground truth's.
- CLIP-F / CLIP-O (evaluation.clip_score): cosine similarity of each generated frame with its
  reference (config.clip_reference), averaged over the front-facing frames / all frames.
- Motion: m_generated = Eq. 1 (d4d.measures) of the generated orbit against the ground-truth
  static orbit, both composited over the background; the error is |m_generated - m_requested|
  with m_requested the value d4d-sample was asked for (asset.json ``generated.motion_magnitude``).
  m_ground_truth (the same measure on the ground-truth pair) shows what the compositing does to
  the scale (over black it is the version-1 scale itself). Per run, ``motion_rank``: Spearman's
  correlation of m_requested with m_generated over its clips (motion control as a ranking,
  free of the scale offset; in eval.json, not in the paper's table).

Per run: the mean of each per-clip metric, and FVD (evaluation.i3d) between the I3D features of
the run's generated orbits and of their ground-truth orbits. A metric whose weights are absent,
or that cannot be computed (too few clips or frames), is reported with ``value`` None and the
``reason``: never estimated.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from d4d.files import json_safe, write_bytes_atomic, write_json_atomic
from d4d.lpips import LPIPS, load_lpips
from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude

from .clip_score import ClipScorer, cosine_rows
from .config import EvalConfig
from .data import Generated, GroundTruth, load_heldout, load_run
from .i3d import MIN_FRAMES, InceptionI3d, frechet_distance, load_i3d
from .image_metrics import psnr, ssim

logger = logging.getLogger(__name__)

SCHEMA = "d4d-eval"
SCHEMA_VERSION = 1
#: Table columns: key, heading, digits, whether higher is better.
COLUMNS = (("clip_f", "CLIP-F", 3, True), ("clip_o", "CLIP-O", 3, True), ("ssim", "SSIM", 3, True), ("psnr", "PSNR", 2, True),
           ("lpips", "LPIPS", 3, False), ("fvd", "FVD", 1, False), ("motion_error", "motion error |m - m*|", 1, False))
#: Diffusion4D's Table 1 (20 held-out assets); None where the paper reports nothing.
PAPER_ROWS = (
    ("text", dict(clip_f=0.81, clip_o=0.65)),
    ("image", dict(clip_f=0.89, clip_o=0.75, ssim=0.83, psnr=16.7, lpips=0.21, fvd=560.8)),
    ("static", dict(clip_f=0.88, clip_o=0.77, ssim=0.82, psnr=16.8, lpips=0.19, fvd=544.7)),
)


@dataclass
class Networks:
    """The evaluation networks that could be loaded, and why the others are absent."""

    clip: ClipScorer | None
    lpips: LPIPS | None
    i3d: InceptionI3d | None
    reasons: dict[str, str]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: {name!r} is not a torch device ({exc})") from None


def load_networks(config: EvalConfig, device: torch.device) -> Networks:
    """Load CLIP, LPIPS and I3D from their local paths; a missing path or file becomes a reason."""
    reasons: dict[str, str] = {}
    clip = lpips = i3d = None
    if config.clip is None:
        reasons["clip"] = "no CLIP folder given (--clip)"
    else:
        try:
            clip = ClipScorer(config.clip, device, config.batch_size)
        except ValueError as exc:
            reasons["clip"] = str(exc)
    if config.lpips is None:
        reasons["lpips"] = "no LPIPS weights folder given (--lpips)"
    else:
        try:
            lpips = load_lpips(config.lpips).to(device)
        except ValueError as exc:
            reasons["lpips"] = str(exc)
    if config.i3d is None:
        reasons["i3d"] = "no I3D weights given (--i3d)"
    else:
        try:
            i3d = load_i3d(config.i3d).to(device)
        except ValueError as exc:
            reasons["i3d"] = str(exc)
    return Networks(clip, lpips, i3d, reasons)


def front_mask(azimuths_deg: np.ndarray, window_deg: float) -> torch.Tensor:
    """bool [T]: frames whose azimuth is within ``window_deg`` of 0 (wrapped to [-180, 180))."""
    wrapped = (np.asarray(azimuths_deg) + 180.0) % 360.0 - 180.0
    return torch.from_numpy(np.abs(wrapped) <= window_deg + 1e-9)


def clip_references(gen: Generated, truth: GroundTruth, scorer: ClipScorer, reference: str) -> torch.Tensor:
    """Unit CLIP embeddings each generated frame is compared with: [T, D] (ground truth) or [1, D] (condition)."""
    if reference == "ground-truth":
        return scorer.image_embeddings(truth.dynamic)
    if gen.generated.get("task", "text") == "text":
        return scorer.text_embeddings([gen.generated.get("prompt") or truth.caption])
    return scorer.image_embeddings(truth.dynamic[:1])  # the condition image: the front view at time 0


@torch.no_grad()
def evaluate_clip(gen: Generated, truth: GroundTruth, nets: Networks, config: EvalConfig, device: torch.device) -> dict:
    """Every per-clip measure of one generated orbit against its ground truth (module docstring)."""
    if gen.frames.shape[0] != truth.dynamic.shape[0]:
        return {"uid": gen.uid, "skipped": f"{gen.frames.shape[0]} generated frames, {truth.dynamic.shape[0]} ground-truth frames"}
    if not np.allclose(gen.c2w, truth.c2w, atol=1e-3):
        return {"uid": gen.uid, "skipped": "the generated orbit's cameras differ from the ground truth's"}
    frames = gen.frames
    if frames.shape[-2:] != truth.dynamic.shape[-2:]:
        frames = F.interpolate(frames, size=truth.dynamic.shape[-2:], mode="area")
    row = {"uid": gen.uid, "render_dir": str(gen.root), "frames": int(frames.shape[0]),
           "psnr": float(psnr(frames, truth.dynamic).mean()), "ssim": float(ssim(frames, truth.dynamic).mean())}
    if nets.lpips is not None:
        distances = torch.cat([nets.lpips(a.to(device) * 2 - 1, b.to(device) * 2 - 1).cpu()
                               for a, b in zip(frames.split(config.batch_size), truth.dynamic.split(config.batch_size))])
        row["lpips"] = float(distances.mean())
    if nets.clip is not None:
        similarity = cosine_rows(nets.clip.image_embeddings(frames), clip_references(gen, truth, nets.clip, config.clip_reference))
        front = front_mask(gen.azimuths_deg, config.front_window_deg)
        row["clip_o"] = float(similarity.mean())
        row["clip_f"] = float(similarity[front].mean()) if front.any() else None
        row["clip_front_frames"] = int(front.sum())
    to_hwc = lambda video: video.permute(0, 2, 3, 1).numpy()  # noqa: E731
    requested = gen.generated.get("motion_magnitude")
    row["m_generated"] = motion_magnitude(to_hwc(frames), to_hwc(truth.static))
    row["m_ground_truth"] = motion_magnitude(to_hwc(truth.dynamic), to_hwc(truth.static))
    row["m_ground_truth_v1"] = truth.motion_magnitude if math.isfinite(truth.motion_magnitude) else None
    row["m_requested"] = float(requested) if isinstance(requested, (int, float)) else None
    if row["m_requested"] is not None:
        row["motion_error"] = abs(row["m_generated"] - row["m_requested"])
    return row


def _metric(values: list, reason: str | None) -> dict:
    """{"value", "n", "reason"}: the mean of the present values, or None with the reason."""
    present = [v for v in values if v is not None]
    if reason is not None or not present:
        return {"value": None, "n": len(present), "reason": reason or "no clip has this measure"}
    mean = float(np.mean(present))
    if not math.isfinite(mean):
        return {"value": None, "n": len(present), "reason": "infinite: a generated orbit equals its ground truth exactly"}
    return {"value": mean, "n": len(present), "reason": None}


def average_ranks(values: np.ndarray) -> np.ndarray:
    """float64 [N]: the 1-based rank of each value, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation of paired samples (Pearson's on average ranks); None when
    there are fewer than 3 pairs or either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} and {len(y)} values")
    if len(x) < 3:
        return None
    a, b = average_ranks(np.asarray(x)), average_ranks(np.asarray(y))
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else None


def motion_rank(rows: list[dict]) -> dict:
    """{"value", "n", "reason"}: Spearman's correlation of m_requested with m_generated over the
    clips that have both (does asking for more motion give more?)."""
    pairs = [(r["m_requested"], r["m_generated"]) for r in rows if r.get("m_requested") is not None and r.get("m_generated") is not None]
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
    if rho is None:
        return {"value": None, "n": len(pairs), "reason": "a rank correlation needs >= 3 clips with a requested and a measured m, "
                                                          "neither side constant"}
    return {"value": rho, "n": len(pairs), "reason": None}


@torch.no_grad()
def video_features(i3d: InceptionI3d, videos: list[torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    """I3D features [N, 400] of videos [T, 3, H, W] in [0, 1], resized to size x size, scaled to [-1, 1]."""
    out = []
    for video in videos:
        frames = F.interpolate(video.to(device), size=(size, size), mode="bilinear", align_corners=False)
        out.append(i3d((frames * 2 - 1).permute(1, 0, 2, 3)[None]).float().cpu())
    return torch.cat(out)


def run_fvd(pairs: list[tuple[Generated, GroundTruth]], nets: Networks, config: EvalConfig, device: torch.device) -> dict:
    if nets.i3d is None:
        return {"value": None, "n": len(pairs), "reason": nets.reasons["i3d"]}
    if len(pairs) < 2:
        return {"value": None, "n": len(pairs), "reason": f"FVD compares feature distributions: needs >= 2 clips, got {len(pairs)}"}
    frames = min(truth.dynamic.shape[0] for _, truth in pairs)
    if frames < MIN_FRAMES:
        return {"value": None, "n": len(pairs), "reason": f"I3D needs >= {MIN_FRAMES} frames per video, the clips have {frames}"}
    generated = video_features(nets.i3d, [gen.frames for gen, _ in pairs], config.fvd_size, device)
    truth = video_features(nets.i3d, [t.dynamic for _, t in pairs], config.fvd_size, device)
    return {"value": frechet_distance(generated, truth), "n": len(pairs), "reason": None}


def evaluate_run(run: Path, heldout: dict[str, GroundTruth], nets: Networks, config: EvalConfig, device: torch.device) -> dict:
    """One run's per-clip rows and table metrics."""
    generated, notes = load_run(run, config.background)
    pairs, rows = [], []
    for gen in generated:
        if gen.uid not in heldout:
            notes.append(f"{gen.root}: uid {gen.uid!r} is not in the held-out split")
            continue
        row = evaluate_clip(gen, heldout[gen.uid], nets, config, device)
        rows.append(row)
        if "skipped" in row:
            notes.append(f"{gen.root}: skipped ({row['skipped']})")
        else:
            pairs.append((gen, heldout[gen.uid]))
    evaluated = [r for r in rows if "skipped" not in r]
    column = lambda key: [r.get(key) for r in evaluated]  # noqa: E731
    no_m = "no generated orbit records the motion magnitude it was asked for (asset.json generated.motion_magnitude)"
    metrics = {
        "clip_f": _metric(column("clip_f"), nets.reasons.get("clip")),
        "clip_o": _metric(column("clip_o"), nets.reasons.get("clip")),
        "ssim": _metric(column("ssim"), None),
        "psnr": _metric(column("psnr"), None),
        "lpips": _metric(column("lpips"), nets.reasons.get("lpips")),
        "fvd": run_fvd(pairs, nets, config, device),
        "motion_error": _metric(column("motion_error"), None if any(r.get("motion_error") is not None for r in evaluated) else no_m),
        "motion_rank": motion_rank(evaluated),
    }
    tasks = sorted({str(gen.generated.get("task")) for gen, _ in pairs if gen.generated.get("task")})
    covered = {gen.uid for gen, _ in pairs}
    return {"name": run.name, "path": str(run), "task": ", ".join(tasks) or None, "clips": len(pairs),
            "missing": sorted(set(heldout) - covered), "metrics": metrics, "per_clip": rows, "notes": notes}


def evaluate(runs: list[str | Path], shards: str | Path, config: EvalConfig) -> dict:
    """The results of every run against the held-out split ``shards`` (the eval.json document)."""
    if not runs:
        raise ValueError("give at least one generated run folder")
    device = resolve_device(config.device)
    heldout = load_heldout(shards, config.background)
    if not heldout:
        raise ValueError(f"{shards}: the held-out split has no clips")
    nets = load_networks(config, device)
    for name, reason in nets.reasons.items():
        logger.warning("%s: %s; its metrics are reported absent", name, reason)
    results = [evaluate_run(Path(run), heldout, nets, config, device) for run in runs]
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "heldout": str(shards), "heldout_clips": len(heldout),
            "motion_magnitude_version": MOTION_MAGNITUDE_VERSION, "config": config.to_dict(), "device": str(device),
            "runs": results, "paper": [{"task": task, **values} for task, values in PAPER_ROWS]}


def _cell(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


#: Characters that start Markdown inline syntax (code, emphasis, links, HTML, entities, GFM
#: strikethrough) or split a table cell; escaped with a backslash (CommonMark escapes).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(value) -> str:
    """``value`` as Markdown text that shows as written: one line, inline syntax (``|``, ``*``,
    ``<``, ...) backslash-escaped, so a run name or a reason can neither split a table row nor
    become markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def markdown_table(results: dict) -> str:
    """The runs next to the paper's Diffusion4D rows, plus the reason for every absent metric.

    Every cell and reason is escaped with ``md_text``: the table has the same number of cells
    in every row, whatever the run names and reasons hold (tests render it with markdown-it-py).
    """
    head = "| run | task | clips | " + " | ".join(md_text(title) for _, title, _, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    reasons = []
    for run in results["runs"]:
        cells = [_cell(run["metrics"][key]["value"], digits) for key, _, digits, _ in COLUMNS]
        lines.append(f"| {md_text(run['name'])} | {md_text(run['task'] or '-')} | {run['clips']} | " + " | ".join(cells) + " |")
        reasons += [f"- {md_text(run['name'])}, {md_text(title)}: {md_text(run['metrics'][key]['reason'])}" for key, title, _, _ in COLUMNS
                    if run["metrics"][key]["value"] is None]
    for row in results["paper"]:
        cells = [_cell(row.get(key), digits) for key, _, digits, _ in COLUMNS]
        lines.append(f"| Diffusion4D (paper) | {md_text(row['task'])} | 20 | " + " | ".join(cells) + " |")
    arrows = ", ".join(f"{md_text(title)} {'higher' if up else 'lower'}" for _, title, _, up in COLUMNS)
    text = "\n".join(lines) + f"\n\nBetter: {arrows}.\n"
    if reasons:
        text += "\nAbsent:\n" + "\n".join(reasons) + "\n"
    return text


def write_results(results: dict, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/eval.json`` and ``out/eval.md`` (atomically); returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, table_path = out / "eval.json", out / "eval.md"
    write_json_atomic(json_path, json_safe(results))
    write_bytes_atomic(table_path, markdown_table(results).encode())
    return json_path, table_path


def read_results(path: str | Path) -> dict:
    """An eval.json written by ``write_results``; ValueError when it is not one."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a d4d-eval result (schema {SCHEMA!r})")
    return results
