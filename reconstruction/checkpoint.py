"""Resumable training checkpoints: one safetensors file, written atomically, tied to the run that wrote it.

A checkpoint holds everything a run needs to continue exactly where it stopped (see
``trainer.TrainState.state_dict``) plus a fingerprint of its input views and of the settings
that shape training. ``load_checkpoint`` refuses a checkpoint whose fingerprint differs, naming
what differs, so a rerun never continues someone else's run by accident.

Format (no pickle anywhere, so a planted file can never run code): ``OUT/checkpoint.safetensors``
holds every tensor of the state under a path-like name ("params/means",
"optimizers/means/state/0/exp_avg", ...), and its safetensors metadata holds the rest as JSON:
``format`` (``FORMAT``), ``identity`` and ``state``, where each tensor is replaced by
``{"__tensor__": name}``, a tuple by ``{"__tuple__": [...]}`` and a dict with non-string keys
(Adam's per-parameter state) by ``{"__items__": [[key, value], ...]}``. d4d 0.1's pickled
``checkpoint.pt`` is never unpickled: its presence is refused with one line (``--restart``
discards it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from d4d.files import write_bytes_atomic
from d4d.reconstruction.config import CHECKPOINT_NAME, ReconstructConfig
from d4d.reconstruction.views import Views

#: d4d 0.1's pickled checkpoint: refused, never loaded (a pickle runs code when loaded).
LEGACY_CHECKPOINT_NAME = "checkpoint.pt"
#: The ``format`` entry of the metadata.
FORMAT = "d4d-reconstruct-checkpoint/1"
#: Settings that change only logging, checkpointing or the exported videos, never the fit.
NOT_FINGERPRINTED = ("progress_every_s", "checkpoint_every", "history_points", "turntable_frames", "turntable_elevation_deg")


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


def _encode(value, name: str, tensors: dict[str, torch.Tensor]):
    """JSON-able form of ``value`` with its tensors moved into ``tensors`` (see the module docstring)."""
    if torch.is_tensor(value):
        tensors[name] = value.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v, f"{name}/{k}", tensors) for k, v in value.items()}
        return {"__items__": [[k, _encode(v, f"{name}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint: {name} is a {type(value).__name__}, which the checkpoint format does not hold")


def _decode(value, tensors: dict[str, torch.Tensor]):
    """The inverse of ``_encode``; KeyError / TypeError on a reference the file does not hold."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__tensor__"}:
        return tensors[value["__tensor__"]]
    if set(value) == {"__tuple__"}:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if set(value) == {"__items__"}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save_checkpoint(path: Path, identity: dict, state: dict) -> None:
    """Write ``identity`` and ``state`` to ``path`` atomically as safetensors + JSON metadata."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "state", tensors)
    metadata = {"format": FORMAT, "identity": json.dumps(identity), "state": json.dumps(encoded)}
    write_bytes_atomic(path, save(tensors, metadata=metadata))


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


def _read(path: Path) -> tuple[dict, dict]:
    """(identity, state) of a checkpoint file, tensors on the CPU; ValueError (one line) for anything else."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ValueError(f"format {metadata.get('format')!r}, expected {FORMAT!r}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        identity = json.loads(metadata["identity"])
        state = _decode(json.loads(metadata["state"]), tensors)
        if not isinstance(identity, dict) or not isinstance(state, dict) or set(identity) != {"settings", "input_sha256"}:
            raise ValueError("identity or state is not a mapping of the expected keys")
    except Exception as exc:  # a foreign, truncated or hand-made file: say so in one line
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ValueError(f"{path}: not a readable d4d-reconstruct checkpoint ({reason}); rerun with --restart to discard it") from None
    return identity, state


def discard_checkpoints(out: Path) -> None:
    """Remove the checkpoint of ``out`` and any d4d 0.1 ``checkpoint.pt`` (``--restart``)."""
    for name in (CHECKPOINT_NAME, LEGACY_CHECKPOINT_NAME):
        (Path(out) / name).unlink(missing_ok=True)


def load_checkpoint(path: Path, identity: dict) -> dict | None:
    """The saved training state at ``path`` (tensors on the CPU), None when there is none.

    ValueError (one line, naming the file) when it belongs to another run, cannot be read, or
    a d4d 0.1 pickle ``checkpoint.pt`` lies beside it: that file is never loaded.
    """
    path = Path(path)
    legacy = path.with_name(LEGACY_CHECKPOINT_NAME)
    if legacy.exists():
        raise ValueError(f"{legacy}: a pickle checkpoint (d4d 0.1 format or planted) is never loaded, since unpickling can run code; "
                         "rerun with --restart to discard it")
    if not path.is_file():
        return None
    saved_identity, state = _read(path)
    identity = json.loads(json.dumps(identity))  # tuples as lists, as the saved copy has them
    differ = _differences(saved_identity["settings"], identity["settings"])
    if saved_identity["input_sha256"] != identity["input_sha256"]:
        differ.append("input views")
    if differ:
        raise ValueError(f"{path}: saved by a run with other settings or input (differs: {', '.join(differ)}); rerun with --restart to discard it")
    return state
