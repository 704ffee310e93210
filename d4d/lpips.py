"""LPIPS (Zhang et al. 2018, v0.1, AlexNet) in PyTorch, with weights from local files.

On the ground floor so that d4d-eval (a metric) and d4d-reconstruct (a loss term) share one network.

The network is the reference implementation's: inputs in [-1, 1] are shifted and scaled
(``(x - shift) / scale``, shift = (-0.030, -0.088, -0.188), scale = (0.458, 0.448, 0.450)) and
passed through torchvision's AlexNet ``features``; the activations after its five ReLUs are each
normalised to unit length over the channels, their squared difference is weighted per channel by
a 1 x 1 convolution without bias (the learned "lin" layers), averaged over space and summed
over the five layers.

Weights (no download): a folder with ``alexnet.pth`` (torchvision's AlexNet state dict, keys
``features.N.weight``/``bias``; ``classifier.*`` keys are ignored) and ``alex.pth`` (the LPIPS
package's ``weights/v0.1/alex.pth``, keys ``linK.model.1.weight``, K = 0..4). ``.safetensors``
files of the same names and keys are read too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from d4d.weights import load_state

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: (index in torchvision's AlexNet.features, in channels, out channels, kernel, stride, padding)
ALEXNET_CONVS = ((0, 3, 64, 11, 4, 2), (3, 64, 192, 5, 1, 2), (6, 192, 384, 3, 1, 1), (8, 384, 256, 3, 1, 1),
                 (10, 256, 256, 3, 1, 1))
#: features[a:b] ending at each of the five ReLUs LPIPS reads.
SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))
CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet.features`` layout (same indices, so its state dict loads as is)."""
    layers: list[nn.Module] = []
    for index, cin, cout, kernel, stride, padding in ALEXNET_CONVS:
        while len(layers) < index:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        layers += [nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=False)]
    layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS distance: frames [N, 3, H, W] in [-1, 1] (H, W >= 32) -> float [N]."""

    def __init__(self):
        super().__init__()
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU activations of the scaled input."""
        x = (x - self.shift) / self.scale
        out = []
        for start, stop in SLICES:
            x = self.features[start:stop](x)
            out.append(x)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS takes equal [N, 3, H, W] frames, got {tuple(a.shape)} and {tuple(b.shape)}")
        total = torch.zeros(a.shape[0], device=a.device)
        for lin, fa, fb in zip(self.lins, self.taps(a), self.taps(b)):
            na = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb).pow(2)).mean(dim=(1, 2, 3))
        return total


def _file(folder: Path, stem: str) -> Path:
    for suffix in (".pth", ".pt", ".safetensors"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise ValueError(f"LPIPS weights {folder}: no {stem}.pth, {stem}.pt or {stem}.safetensors")


def load_lpips(folder: str | Path) -> LPIPS:
    """LPIPS with the AlexNet and linear-layer weights of ``folder`` (module docstring), in eval mode.

    Raises ValueError naming the file and key for a missing folder, file, key or shape.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"LPIPS weights {folder}: not a directory")
    model = LPIPS()
    backbone = load_state(_file(folder, "alexnet"))
    lins = load_state(_file(folder, "alex"))
    state = {k: v for k, v in backbone.items() if k.startswith("features.")}
    state.update({f"lins.{k}.weight": lins.get(f"lin{k}.model.1.weight") for k in range(len(CHANNELS))})
    expected = model.state_dict()
    for key, tensor in expected.items():
        if state.get(key) is None:
            raise ValueError(f"LPIPS weights {folder}: missing {key} (torchvision 'features.*' / LPIPS 'linK.model.1.weight')")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(f"LPIPS weights {folder}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval()
