"""The two sides d4d-eval compares: generated orbits (render directories) and held-out ground truth (shards).

A *run* is a folder of d4d-sample outputs, one render directory per held-out asset (or a single
render directory). Each is matched to its held-out clip by uid: asset.json's ``uid``, else
``generated.uid``, else the directory's name. The held-out split is a shard directory
(d4d-shards) whose rows carry the ground-truth dynamic and static orbits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from d4d.rendering.contract import RenderContractError, load_render
from d4d.shards.dataset import ShardDataset


@dataclass
class GroundTruth:
    """One held-out clip.

    Attributes:
        uid, caption: the shard row's.
        motion_magnitude: Eq. 1 of the rendered pair (version-1 scale), NaN if unknown.
        dynamic, static: float32 [T, 3, H, W] in [0, 1], composited over the evaluation background.
        c2w: float64 [T, 4, 4], the dynamic orbit's cameras.
    """

    uid: str
    caption: str
    motion_magnitude: float
    dynamic: torch.Tensor
    static: torch.Tensor
    c2w: np.ndarray


@dataclass
class Generated:
    """One generated orbit.

    Attributes:
        uid: the held-out clip it was generated for.
        root: its render directory.
        frames: float32 [T, 3, H, W] in [0, 1] (RGB composited over the background).
        azimuths_deg: float64 [T]; c2w: float64 [T, 4, 4].
        generated: asset.json's ``generated`` record (task, prompt, motion_magnitude, ...), {} if none.
    """

    uid: str
    root: Path
    frames: torch.Tensor
    azimuths_deg: np.ndarray
    c2w: np.ndarray
    generated: dict = field(default_factory=dict)


def rgba_to_unit(rgba: np.ndarray, background: float) -> torch.Tensor:
    """uint8 [T, H, W, 4] straight alpha -> float32 [T, 3, H, W] in [0, 1] over ``background``."""
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(0, 3, 1, 2).float() / 255.0
    return x[:, :3] * x[:, 3:4] + background * (1.0 - x[:, 3:4])


def load_heldout(shards: str | Path, background: float) -> dict[str, GroundTruth]:
    """uid -> GroundTruth of every row of a shard directory (stored order)."""
    dataset = ShardDataset(shards, videos=("dynamic", "static"), tensors=(), shuffle=False, rank=0, world_size=1,
                           background=background)
    out = {}
    for sample in dataset:
        out[sample["uid"]] = GroundTruth(
            uid=sample["uid"], caption=sample["caption"], motion_magnitude=float(sample["motion_magnitude"]),
            dynamic=(sample["dynamic_video"] + 1.0) / 2.0, static=(sample["static_video"] + 1.0) / 2.0,
            c2w=sample["dynamic_c2w"].double().numpy())
    return out


def render_dirs(run: Path) -> list[Path]:
    """The render directories of a run folder (itself, or its subdirectories with transforms.json)."""
    if (run / "transforms.json").is_file():
        return [run]
    return sorted(p for p in run.iterdir() if p.is_dir() and (p / "transforms.json").is_file()) if run.is_dir() else []


def load_run(run: str | Path, background: float) -> tuple[list[Generated], list[str]]:
    """(generated orbits, notes on render directories that could not be read) of a run folder."""
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"generated run {run}: not a directory")
    found, notes = [], []
    for root in render_dirs(run):
        try:
            render = load_render(root, videos=("dynamic",))
        except RenderContractError as exc:
            notes.append(f"{root}: unreadable render directory ({exc})")
            continue
        if "dynamic" not in render.videos:
            notes.append(f"{root}: has no dynamic video")
            continue
        video = render.videos["dynamic"]
        generated = render.asset.generated or {}
        uid = render.asset.uid or generated.get("uid") or root.name
        found.append(Generated(uid=str(uid), root=root, frames=rgba_to_unit(video.rgba, background),
                               azimuths_deg=video.azimuths_deg, c2w=video.c2w, generated=generated))
    if not found and not notes:
        notes.append(f"{run}: no render directories (transforms.json) found")
    return found, notes
