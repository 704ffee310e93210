"""Training and held-out views, as tensors, from a render sample (docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from d4d.rendering.cameras import opengl_to_opencv
from d4d.rendering.contract import RenderSample


@dataclass
class Views:
    """A set of V views.

    Attributes:
        rgba: float32 [V, H, W, 4] in [0, 1], straight alpha.
        viewmats: float32 [V, 4, 4] world-to-camera, OpenCV camera frame.
        Ks: float32 [V, 3, 3] intrinsics, pixels.
        times: float32 [V] normalised animation time in [0, 1].
        videos: [V] the video each view comes from ("dynamic" or "static").
        indices: [V] the frame index inside its video.
    """

    rgba: torch.Tensor
    viewmats: torch.Tensor
    Ks: torch.Tensor
    times: torch.Tensor
    videos: list[str]
    indices: list[int]

    def __len__(self) -> int:
        return len(self.videos)

    def subset(self, keep: list[int]) -> Views:
        idx = torch.as_tensor(keep, dtype=torch.long)
        return Views(self.rgba[idx], self.viewmats[idx], self.Ks[idx], self.times[idx], [self.videos[i] for i in keep], [self.indices[i] for i in keep])

    def to(self, device: torch.device | str) -> Views:
        return Views(self.rgba.to(device), self.viewmats.to(device), self.Ks.to(device), self.times.to(device), self.videos, self.indices)


def viewmats_from_c2w(c2w: np.ndarray) -> np.ndarray:
    """World-to-camera [..., 4, 4] in the OpenCV frame from camera-to-world [..., 4, 4] in the OpenGL frame."""
    return np.linalg.inv(opengl_to_opencv(c2w))


def views_from_sample(sample: RenderSample, videos: tuple[str, ...] = ("dynamic", "static")) -> Views:
    """All frames of the given videos present in ``sample``, in video then frame order."""
    rgba, viewmats, times, names, indices = [], [], [], [], []
    for name in videos:
        video = sample.videos.get(name)
        if video is None:
            continue
        rgba.append(video.rgba)
        viewmats.append(viewmats_from_c2w(video.c2w))
        times.append(video.times)
        names += [name] * len(video.times)
        indices += list(range(len(video.times)))
    if not names:
        raise ValueError(f"{sample.root}: none of the videos {videos} is present (has {sorted(sample.videos)})")
    if not any(frames[..., 3].any() for frames in rgba):
        raise ValueError(f"{sample.root}: every frame of {', '.join(dict.fromkeys(names))} is empty (alpha 0 everywhere): nothing to reconstruct "
                         "(an asset whose material is fully transparent renders so)")
    n = len(names)
    return Views(
        rgba=torch.from_numpy(np.concatenate(rgba)).float() / 255.0,
        viewmats=torch.from_numpy(np.concatenate(viewmats)).float(),
        Ks=torch.from_numpy(np.asarray(sample.K)).float()[None].repeat(n, 1, 1),
        times=torch.from_numpy(np.concatenate(times)).float(),
        videos=names,
        indices=indices,
    )


def split_views(views: Views, every: int, offset: int) -> tuple[list[int], list[int]]:
    """Positions of training and held-out views: frame index % every == offset is held out, in
    every video; ``every`` 0 holds out nothing."""
    if every == 0:
        return list(range(len(views))), []
    held = [i for i, k in enumerate(views.indices) if k % every == offset]
    train = [i for i, k in enumerate(views.indices) if k % every != offset]
    return train, held
