"""Reading a state dict from a local weights file (.safetensors, or a torch .pt/.pth file)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """name -> tensor of a weights file; ValueError naming the file when it cannot be read.

    Torch files are read with ``weights_only=True`` (tensors and containers, no code); a file
    holding {"state_dict": ...} is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure is one "cannot read" for the caller
        raise ValueError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state
