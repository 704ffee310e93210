"""Decode one shard row into training tensors. Shared by the PyTorch and the Ray Data readers.

A decoded sample (T frames, H x W pixels; V one of the requested videos) is a dict:

=============================  ==========================  =====================================
key                            dtype / shape               meaning
=============================  ==========================  =====================================
uid, caption                   str                         caption "" when the row has none
K                              float32 [3, 3]              pinhole intrinsics, pixels
motion_magnitude               float32 []                  Eq. 1, 0..195075 scale; NaN if unknown
motion_magnitude_per_frame     float32 [T]                 per frame; NaN if unknown
V_video                        float32 [T, 3, H, W]        sRGB in [-1, 1]; straight colour, or
                                                           composited over ``background``
V_alpha                        float32 [T, 1, H, W]        coverage in [0, 1]
V_c2w                          float32 [T, 4, 4]           camera-to-world, OpenGL camera frame
                                                           (+X right, +Y up, looks along -Z)
V_times                        float32 [T]                 normalised animation time in [0, 1]
NAME (tensor columns)          stored dtype and shape      e.g. latents_dynamic
=============================  ==========================  =====================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from d4d.rendering.contract import VIDEO_NAMES
from d4d.shards.tensors import tensor_from_columns
from d4d.shards.video import VideoDecodeError, decode_rgba

#: The second orbit's video of each first-orbit video (rendered with ``--orbits 2``).
SECOND_ORBIT = {"dynamic": "dynamic2", "static": "static2"}


def second_orbit_videos(videos: Sequence[str]) -> list[str]:
    """The second-orbit counterparts of ``videos`` (those that have one)."""
    return [SECOND_ORBIT[v] for v in videos if v in SECOND_ORBIT]


def as_second_orbit(row: dict, videos: Sequence[str]) -> dict | None:
    """``row`` with each of ``videos`` that has a second orbit ("dynamic", "static") replaced by
    that orbit's columns, so decode_row returns them under the first orbit's names ("front"
    stays as it is); None when the row lacks one of them (rendered with one orbit)."""
    swapped = dict(row)
    for video in videos:
        second = SECOND_ORBIT.get(video)
        if second is None:
            continue
        if row.get(f"{second}_video") is None:
            return None
        for suffix in ("video", "c2w", "times"):
            swapped[f"{video}_{suffix}"] = row[f"{second}_{suffix}"]
    return swapped


def row_columns(videos: Sequence[str], tensors: Sequence[str]) -> list[str]:
    """The Parquet columns decode_row needs (the readers' projection)."""
    unknown = [v for v in videos if v not in VIDEO_NAMES]
    if unknown:
        raise ValueError(f"videos {unknown} are not among {', '.join(VIDEO_NAMES)}")
    columns = ["uid", "caption", "width", "height", "num_frames", "video_codec", "K", "motion_magnitude", "motion_magnitude_per_frame"]
    columns += video_columns(videos)
    columns += [f"{name}{suffix}" for name in tensors for suffix in ("", "_shape", "_dtype")]
    return columns


def video_columns(videos: Sequence[str]) -> list[str]:
    """The Parquet columns of ``videos`` that decode_row reads."""
    return [f"{v}_{suffix}" for v in videos for suffix in ("video", "c2w", "times")]


def frames_to_tensors(rgba: np.ndarray, background: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [T, H, W, 4] -> (video float32 [T, 3, H, W] in [-1, 1], alpha float32 [T, 1, H, W] in [0, 1]).

    ``background`` None keeps straight colour; a value in [0, 1] composites over that grey
    level (1.0 is white): rgb * alpha + background * (1 - alpha).
    """
    planes = torch.from_numpy(np.ascontiguousarray(rgba.transpose(0, 3, 1, 2)))  # uint8 [T, 4, H, W]
    alpha = planes[:, 3:4].float().div_(255.0)
    rgb = planes[:, :3].float().div_(255.0)
    if background is not None:
        rgb.mul_(alpha).add_(background * (1.0 - alpha))
    return rgb.mul_(2.0).sub_(1.0), alpha


def _floats(values, length: int) -> torch.Tensor:
    if values is None:
        return torch.full((length,), float("nan"))
    return torch.tensor(values, dtype=torch.float32)


def decode_row(row: dict, videos: Sequence[str], tensors: Sequence[str] = (), background: float | None = None,
               where: str | None = None) -> dict:
    """Decode a row (a dict with at least the ``row_columns`` columns) into the sample above.

    Each video is decoded within the budget the row declares (``num_frames`` frames of
    ``width`` x ``height``, codec ``video_codec``; shards.video.decode_rgba): the readers check
    those values when they open the shards (shards.checks). Raises ValueError naming the uid
    when a requested video or tensor is missing or a video breaks its budget (``where``, default
    ``row UID``, names the row in the message).
    """
    uid = row["uid"]
    where = where or f"row {uid}"
    frames = row["num_frames"]
    sample = {
        "uid": uid,
        "caption": row["caption"] or "",
        "K": torch.tensor(row["K"], dtype=torch.float32).reshape(3, 3),
        "motion_magnitude": torch.tensor(float("nan") if row["motion_magnitude"] is None else row["motion_magnitude"], dtype=torch.float32),
        "motion_magnitude_per_frame": _floats(row["motion_magnitude_per_frame"], frames),
    }
    for video in videos:
        data = row.get(f"{video}_video")
        if data is None:
            raise ValueError(f"{where}: has no {video} video")
        times = row[f"{video}_times"]
        try:
            rgba = decode_rgba(data, frames=len(times), size=(row["height"], row["width"]), codec=row.get("video_codec"))
        except VideoDecodeError as exc:
            raise ValueError(f"{where}: {video} video: {exc}") from None
        sample[f"{video}_video"], sample[f"{video}_alpha"] = frames_to_tensors(rgba, background)
        sample[f"{video}_c2w"] = torch.tensor(row[f"{video}_c2w"], dtype=torch.float32).reshape(-1, 4, 4)
        sample[f"{video}_times"] = torch.tensor(times, dtype=torch.float32)
    for name in tensors:
        if row[name] is None:
            raise ValueError(f"{where}: has no {name}")
        try:
            sample[name] = tensor_from_columns(row[name], row[f"{name}_shape"], row[f"{name}_dtype"])
        except ValueError as exc:
            raise ValueError(f"{where}: {name}: {exc}") from None
    return sample
