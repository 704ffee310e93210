"""Resumable training checkpoints: one file, written atomically, tied to the run that wrote it.

A checkpoint holds everything a run needs to continue exactly where it stopped (see
``trainer.TrainState.state_dict``) plus a fingerprint of its input views and of the settings
that shape training. ``load_checkpoint`` refuses a checkpoint whose fingerprint differs, naming
what differs, so a rerun never continues someone else's run by accident.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from d4d.files import write_bytes_atomic
from d4d.reconstruction.config import ReconstructConfig
from d4d.reconstruction.views import Views

CHECKPOINT_NAME = "checkpoint.pt"
#: Settings that change only logging, checkpointing or the exported videos, never the fit.
NOT_FINGERPRINTED = ("progress_every_s", "checkpoint_every", "turntable_frames", "turntable_elevation_deg")


def views_digest(views: Views) -> str:
    """sha256 (hex) of the views' pixels, cameras, times and names."""
    digest = hashlib.sha256()
    for tensor in (views.rgba, views.viewmats, views.Ks, views.times):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr((views.videos, views.indices)).encode())
    return digest.hexdigest()


def run_identity(config: ReconstructConfig, views: Views) -> dict:
    """What a checkpoint must match to be resumed: the fingerprinted settings and the input digest."""
    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    return {"settings": settings, "input_sha256": views_digest(views)}


def save_checkpoint(path: Path, identity: dict, state: dict) -> None:
    """Write ``{"identity", "state"}`` to ``path`` atomically (torch.save format)."""
    buffer = io.BytesIO()
    torch.save({"identity": identity, "state": state}, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


def load_checkpoint(path: Path, identity: dict, map_location: torch.device | str = "cpu") -> dict | None:
    """The saved training state at ``path``, None when there is none; ValueError when it belongs to another run."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
        saved_identity, state = saved["identity"], saved["state"]
    except Exception as exc:  # a foreign or truncated file: say so in one line
        raise ValueError(f"{path}: not a readable d4d-reconstruct checkpoint ({type(exc).__name__}: {exc}); rerun with --restart to discard it") from exc
    differ = _differences(saved_identity["settings"], identity["settings"])
    if saved_identity["input_sha256"] != identity["input_sha256"]:
        differ.append("input views")
    if differ:
        raise ValueError(f"{path}: saved by a run with other settings or input (differs: {', '.join(differ)}); rerun with --restart to discard it")
    return state
