"""HexPlane deformation field (hustvl 4DGaussians): where each canonical Gaussian is at time t.

Six learnable 2D feature planes per resolution level, one per pair of the four axes
(x, y, z, t): (xy, xz, xt, yz, yt, zt). A Gaussian's feature at (x, y, z, t) is the
product over the six planes of their bilinear samples, concatenated over levels
(K-Planes / HexPlane). A small MLP trunk and three heads map it to offsets of the position,
the log-scale and the quaternion. The last layer of every head starts at zero, so the fine
stage starts exactly from the coarse (static) result (``zero_init_heads``; off, every linear
layer is Xavier-uniform as in hustvl); time planes start at 1 and space planes uniform in
[0.1, 0.5], as in hustvl.

The field is a module of its own with its own optimiser: per-Gaussian parameters stay in
the Gaussians' ParameterDict (reconstruction/gaussians.py).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from d4d.reconstruction.config import DeformationConfig

#: Axis pairs of the six planes; axis 3 is time.
PLANE_AXES = tuple(itertools.combinations(range(4), 2))
TIME_PLANES = tuple(k for k, pair in enumerate(PLANE_AXES) if 3 in pair)
SPACE_PLANES = tuple(k for k, pair in enumerate(PLANE_AXES) if 3 not in pair)


class HexPlane(nn.Module):
    """Multi-resolution HexPlane: ``forward(xyzt [N, 4] in [-1, 1]) -> features [N, feature_dim * levels]``."""

    def __init__(self, config: DeformationConfig):
        super().__init__()
        self.levels = nn.ModuleList()
        for multiplier in config.multires:
            res = [r * multiplier for r in config.resolution[:3]] + [config.resolution[3]]
            planes = nn.ParameterList()
            for i, j in PLANE_AXES:
                plane = torch.empty(1, config.feature_dim, res[j], res[i])
                if j == 3:
                    nn.init.ones_(plane)
                else:
                    nn.init.uniform_(plane, 0.1, 0.5)
                planes.append(nn.Parameter(plane))
            self.levels.append(planes)
        self.out_dim = config.feature_dim * len(config.multires)

    def forward(self, xyzt: torch.Tensor) -> torch.Tensor:
        features = []
        for planes in self.levels:
            level = None
            for (i, j), plane in zip(PLANE_AXES, planes):
                coords = xyzt[:, [i, j]].reshape(1, -1, 1, 2)
                sample = F.grid_sample(plane, coords, mode="bilinear", padding_mode="border", align_corners=True)
                sample = sample[0, :, :, 0].t()  # [N, feature_dim]
                level = sample if level is None else level * sample
            features.append(level)
        return torch.cat(features, -1)

    def regularisers(self) -> dict[str, torch.Tensor]:
        """Scalar regularisers over all levels.

        ``plane_tv``: mean squared first difference along both axes of every plane (K-Planes
        total variation); ``time_smoothness``: mean squared second difference along t of
        the time planes; ``l1_time_planes``: mean |1 - value| of the time planes.
        """
        tv, smooth, l1 = [], [], []
        for planes in self.levels:
            for k, plane in enumerate(planes):
                tv.append(((plane[..., 1:, :] - plane[..., :-1, :]) ** 2).mean() + ((plane[..., :, 1:] - plane[..., :, :-1]) ** 2).mean())
                if k in TIME_PLANES:
                    first = plane[..., 1:, :] - plane[..., :-1, :]  # t is the row axis of a time plane
                    smooth.append(((first[..., 1:, :] - first[..., :-1, :]) ** 2).mean())
                    l1.append((1.0 - plane).abs().mean())
        return {"plane_tv": torch.stack(tv).mean(), "time_smoothness": torch.stack(smooth).mean(), "l1_time_planes": torch.stack(l1).mean()}


def _head(width: int, out: int, zero_init: bool) -> nn.Sequential:
    head = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))
    if zero_init:
        nn.init.zeros_(head[-1].weight)
        nn.init.zeros_(head[-1].bias)
    return head


class DeformationField(nn.Module):
    """Offsets of canonical Gaussians at a time.

    ``forward(means [N, 3], log_scales [N, 3], quats [N, 4], times [N] in [0, 1])`` returns the
    deformed (means, log_scales, quats), each the input plus a learnt offset (log-scales and
    quaternions unchanged when ``deform_scales`` / ``deform_rotations`` are off).
    """

    def __init__(self, config: DeformationConfig):
        super().__init__()
        self.bounds = config.bounds
        self.grid = HexPlane(config)
        layers: list[nn.Module] = [nn.Linear(self.grid.out_dim, config.hidden_width)]
        for _ in range(config.depth):
            layers += [nn.ReLU(), nn.Linear(config.hidden_width, config.hidden_width)]
        self.trunk = nn.Sequential(*layers)
        self.pos_head = _head(config.hidden_width, 3, config.zero_init_heads)
        self.scale_head = _head(config.hidden_width, 3, config.zero_init_heads) if config.deform_scales else None
        self.rot_head = _head(config.hidden_width, 4, config.zero_init_heads) if config.deform_rotations else None
        if not config.zero_init_heads:  # hustvl's initialize_weights: Xavier-uniform weights of every linear layer
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)

    def forward(
        self, means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor, times: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xyz = (means / self.bounds).clamp(-1.0, 1.0)
        xyzt = torch.cat([xyz, (2.0 * times - 1.0)[:, None]], -1)
        hidden = self.trunk(self.grid(xyzt))
        if self.scale_head is not None:
            log_scales = log_scales + self.scale_head(hidden)
        if self.rot_head is not None:
            quats = quats + self.rot_head(hidden)
        return means + self.pos_head(hidden), log_scales, quats
