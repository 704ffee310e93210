"""Write (and read back) a reconstruction's files: INRIA 3DGS PLYs, the deformation weights, MP4s.

Every file is written atomically through d4d/files.py (a temporary name in its destination
directory, then ``os.replace``), so a crash never leaves a half-written output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from d4d.files import write_bytes_atomic

#: Higher-order SH coefficients written per Gaussian: INRIA's degree-3 layout (3 channels x 15,
#: channel-major: f_rest_{c * 15 + k - 1} is band k of channel c). Bands above the fitted degree
#: are zeros, so viewers that assume degree 3 read every file as it is.
N_REST_PER_CHANNEL = 15
N_REST = 3 * N_REST_PER_CHANNEL
PLY_FIELDS = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{i}" for i in range(N_REST)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def sh_rest_columns(sh_rest: torch.Tensor | None, n: int) -> torch.Tensor:
    """f_rest_0..44 [N, 45] of the higher SH bands [N, K - 1, 3] (K - 1 <= 15; None: zeros)."""
    rest = torch.zeros(n, N_REST_PER_CHANNEL, 3)
    if sh_rest is not None:
        rest[:, : sh_rest.shape[1]] = sh_rest.detach().cpu().float()
    return rest.transpose(1, 2).reshape(n, N_REST)


def sh_rest_from_columns(columns: torch.Tensor, sh_degree: int) -> torch.Tensor:
    """The higher SH bands [N, (d + 1)^2 - 1, 3] of f_rest_0..44 columns [N, 45] (inverse of sh_rest_columns)."""
    return columns.reshape(-1, 3, N_REST_PER_CHANNEL).transpose(1, 2)[:, : (sh_degree + 1) ** 2 - 1].contiguous()


def ply_bytes(means: torch.Tensor, sh0: torch.Tensor, opacity_logits: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor,
              sh_rest: torch.Tensor | None = None) -> bytes:
    """A binary little-endian PLY in the INRIA 3DGS layout.

    Args:
        means: [N, 3] positions. sh0: [N, 3] degree-0 SH (f_dc). opacity_logits: [N] (logit).
        log_scales: [N, 3] (log). quats: [N, 4] (w, x, y, z), written unnormalised as INRIA
            does (readers normalise; the deformation field was trained on the raw values).
        sh_rest: [N, K - 1, 3] the SH bands above degree 0 (f_rest), None for degree 0.
    """
    n = means.shape[0]
    columns = [
        means.detach().cpu().float(),
        torch.zeros(n, 3),
        sh0.detach().cpu().float(),
        sh_rest_columns(sh_rest, n),
        opacity_logits.detach().cpu().float()[:, None],
        log_scales.detach().cpu().float(),
        quats.detach().cpu().float(),
    ]
    data = torch.cat(columns, 1).numpy().astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n" + "".join(f"property float {f}\n" for f in PLY_FIELDS) + "end_header\n"
    return header.encode("ascii") + data.tobytes()


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Float vertex properties of a binary little-endian PLY, name -> float32 [N]; ValueError otherwise."""
    path = Path(path)
    raw = path.read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file (no 'ply' magic / 'end_header')")
    lines = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise ValueError(f"{path}: only binary_little_endian PLYs are supported")
    names, count = [], None
    for line in lines:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[:1] == ["element"]:
            raise ValueError(f"{path}: unexpected element {parts[1]!r} (only 'vertex' is supported)")
        elif parts[:1] == ["property"]:
            if parts[1] != "float":
                raise ValueError(f"{path}: property {parts[-1]!r} is {parts[1]}, only float is supported")
            names.append(parts[2])
    if count is None:
        raise ValueError(f"{path}: no 'element vertex' line")
    body = np.frombuffer(raw, dtype="<f4", offset=end + len(b"end_header\n"), count=count * len(names)).reshape(count, len(names))
    return {name: body[:, i].copy() for i, name in enumerate(names)}


def save_deformation(path: Path, state_dict: dict[str, torch.Tensor], config: dict) -> None:
    """The deformation field's weights as safetensors, with the run config as JSON metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    write_bytes_atomic(Path(path), save(tensors, metadata={"config": json.dumps(config)}))


def load_deformation(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config dict) from a file written by save_deformation."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
        return {k: f.get_tensor(k) for k in f.keys()}, config
