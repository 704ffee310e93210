"""I3D (Carreira & Zisserman 2017, Inception-v1 inflated to 3D) in PyTorch, for FVD.

The layout and parameter names are those of the widely used pytorch-i3d port (``InceptionI3d``:
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``...), so
its Kinetics-400 RGB weights load as they are. Every convolution and max-pool pads like
TensorFlow's "SAME"; batch norm has eps 1e-3. ``forward`` average-pools the last map with a
2 x 7 x 7 window (stride 1; at 224 x 224 the 7 x 7 is the whole map, a smaller map is pooled
whole), applies the logits layer and returns the 400 logits averaged over the remaining time
steps: the features FVD compares (Unterthiner et al. 2018).

Input: videos [B, 3, T, H, W] in [-1, 1], H = W = 224 for the standard features, T >= 9 (three
temporal stride-2 stages and a 2-frame average pool). ``width_divisor`` > 1 divides every
channel count (tests build a small random I3D of the same layout; ``load_i3d`` infers it from the
weights).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from d4d.weights import load_state

#: (name, in channels, the six branch widths b0, b1a, b1b, b2a, b2b, b3b) of each Inception module.
MIXED = (("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
         ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
         ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
         ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)), ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
         ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)))
NUM_CLASSES = 400
MIN_FRAMES = 9


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    (t0, t1), (h0, h1), (w0, w1) = (_same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride))
    return F.pad(x, (w0, w1, h0, h1, t0, t1))


class Unit3D(nn.Module):
    """Conv3d ("SAME" padding) + optional BatchNorm3d (eps 1e-3) + optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), batch_norm: bool = True, bias: bool = False,
                 relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, widths[0])
        self.b1a, self.b1b = Unit3D(cin, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Videos [B, 3, T, H, W] in [-1, 1] -> logits averaged over time [B, 400]."""

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        d = width_divisor
        if any(c % d for _, cin, widths in MIXED for c in (cin, *widths)) or 64 % d or 192 % d:
            raise ValueError(f"width_divisor {d} does not divide every I3D channel count")
        self.Conv3d_1a_7x7 = Unit3D(3, 64 // d, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64 // d, 64 // d)
        self.Conv3d_2c_3x3 = Unit3D(64 // d, 192 // d, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name, cin, widths in MIXED:
            self.add_module(name, InceptionModule(cin // d, tuple(w // d for w in widths)))
            if name == "Mixed_3c":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_4f":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.logits = Unit3D(1024 // d, NUM_CLASSES, batch_norm=False, bias=True, relu=False)
        self.order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                      "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                      "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"]

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        if videos.ndim != 5 or videos.shape[1] != 3 or videos.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D takes [B, 3, T >= {MIN_FRAMES}, H, W] videos, got {tuple(videos.shape)}")
        x = videos
        for name in self.order:
            x = getattr(self, name)(x)
        pool = (2, min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, pool, stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))


def load_i3d(path: str | Path) -> InceptionI3d:
    """InceptionI3d with the weights of ``path`` (channel widths inferred from them), in eval mode.

    Raises ValueError naming the file and key for a missing file, key or shape.
    """
    state = load_state(path)
    first = state.get("Conv3d_1a_7x7.conv3d.weight")
    if first is None:
        raise ValueError(f"{path}: no Conv3d_1a_7x7.conv3d.weight (not a pytorch-i3d InceptionI3d state dict)")
    divisor = 64 // first.shape[0] if first.shape[0] and 64 % first.shape[0] == 0 else 0
    if divisor < 1:
        raise ValueError(f"{path}: Conv3d_1a_7x7 has {first.shape[0]} channels; expected 64 or a divisor of it")
    model = InceptionI3d(divisor)
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"{path}: missing {key}")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D] (N, M >= 2):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64.

    Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2)
    (symmetric positive semi-definite, so no complex matrix square root is needed).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"frechet_distance needs [N >= 2, D] and [M >= 2, D] features, got {tuple(a.shape)}, {tuple(b.shape)}")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(dim=0), b.mean(dim=0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0)
    distance = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * middle.sqrt().sum()
    return float(max(distance.item(), 0.0)) if math.isfinite(distance.item()) else float("nan")
