"""Training samples -> batches, and a resumable, per-process batch order.

A training sample is a dict with the keys of a decoded shard row (shards/decode.py):

=========================  ====================  ===========================================
key                        dtype / shape         used for
=========================  ====================  ===========================================
uid, caption               str                   text condition (prefixed), cache keys
motion_magnitude           float []              motion condition (0..195075 scale)
dynamic_video              float [T, 3, H, W]    the target video, in [-1, 1]
static_video               float [T, 3, H, W]    static condition and zbar of L_mr
latents_dynamic            float [T, C, h, w]    optional: cached scaled VAE latents
latents_static             float [T, C, h, w]    optional: cached scaled VAE latents
text_embedding             float [L, D]          optional: cached text-encoder states
=========================  ====================  ===========================================

Cached latents replace the matching video (which may then be absent). Videos whose size is not
``resolution`` are resized (area filter).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset


@dataclass
class Batch:
    """Collated samples. Each of videos/latents is None when no sample carried it.

    Attributes:
        uids, captions: [B] strings.
        motion: float32 [B].
        dynamic_video, static_video: float32 [B, T, 3, R, R] in [-1, 1], R = resolution.
        latents_dynamic, latents_static: float32 [B, T, C, h, w].
        text_embedding: float32 [B, L, D].
    """

    uids: list[str]
    captions: list[str]
    motion: torch.Tensor
    dynamic_video: torch.Tensor | None = None
    static_video: torch.Tensor | None = None
    latents_dynamic: torch.Tensor | None = None
    latents_static: torch.Tensor | None = None
    text_embedding: torch.Tensor | None = None


def _resize(video: torch.Tensor, resolution: int) -> torch.Tensor:
    if video.shape[-2:] == (resolution, resolution):
        return video
    return F.interpolate(video, size=(resolution, resolution), mode="area")


def _stack(samples: Sequence[dict], key: str) -> torch.Tensor | None:
    present = [key in s and s[key] is not None for s in samples]
    if not any(present):
        return None
    if not all(present):
        missing = samples[present.index(False)]["uid"]
        raise ValueError(f"sample {missing}: has no {key} while others in its batch do")
    return torch.stack([torch.as_tensor(s[key]).float() for s in samples])


def collate(samples: Sequence[dict], num_frames: int, resolution: int) -> Batch:
    """Stack samples (see the module docstring) into a Batch; check frame counts and motion."""
    for sample in samples:
        uid = sample.get("uid", "?")
        m = float(sample["motion_magnitude"])
        if not math.isfinite(m) or m < 0:
            raise ValueError(f"sample {uid}: motion_magnitude is {m}; training needs a known value >= 0")
        for key in ("dynamic_video", "static_video", "latents_dynamic", "latents_static"):
            value = sample.get(key)
            if value is not None and value.shape[0] != num_frames:
                raise ValueError(f"sample {uid}: {key} has {value.shape[0]} frames, the model trains on {num_frames}")
    batch = Batch(uids=[s.get("uid", "") for s in samples], captions=[s.get("caption") or "" for s in samples],
                  motion=torch.tensor([float(s["motion_magnitude"]) for s in samples], dtype=torch.float32))
    for key in ("latents_dynamic", "latents_static", "text_embedding"):
        setattr(batch, key, _stack(samples, key))
    for key, latent_key in (("dynamic_video", "latents_dynamic"), ("static_video", "latents_static")):
        if getattr(batch, latent_key) is None:
            video = _stack(samples, key)
            if video is None:
                raise ValueError(f"samples {batch.uids}: neither {key} nor {latent_key}")
            setattr(batch, key, torch.stack([_resize(v, resolution) for v in video]))
    if batch.dynamic_video is None:
        video = _stack(samples, "dynamic_video")  # the image condition is the first dynamic frame
        if video is not None:
            batch.dynamic_video = torch.stack([_resize(v, resolution) for v in video])
    return batch


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The DataLoader's own generator (it draws its workers' base seed from it). Without one it
    draws from torch's global generator, which also drives dropout, so a resumed run (which
    starts a new loader mid-epoch) would see different dropout masks than an uninterrupted one."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class EpochBatches:
    """This process's micro-batches of a map-style dataset, in a seeded order, from any position.

    Epoch e visits the permutation ``numpy.random.default_rng([seed, e]).permutation(n)``; process
    ``rank`` of ``world_size`` takes every world_size-th full global batch slice, so all processes
    run the same number of batches (the last incomplete global batch is dropped). ``batches(e,
    start)`` resumes after ``start`` micro-batches of epoch e, which is all a checkpoint stores.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, num_workers: int = 0):
        if len(dataset) < batch_size * world_size:
            raise ValueError(f"dataset has {len(dataset)} samples, fewer than one global batch ({batch_size} x {world_size} processes)")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers

    def __len__(self) -> int:
        """Micro-batches per epoch on each process."""
        return len(self.dataset) // (self.batch_size * self.world_size)

    def indices(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        global_batch = self.batch_size * self.world_size
        order = order[: len(self) * global_batch].reshape(len(self), self.world_size, self.batch_size)
        return order[:, self.rank].reshape(-1)

    def batches(self, epoch: int, start: int = 0) -> Iterator[list[dict]]:
        """Lists of ``batch_size`` samples, micro-batches ``start..len(self)-1`` of ``epoch``."""
        indices = self.indices(epoch)[start * self.batch_size :].tolist()
        loader = DataLoader(Subset(self.dataset, indices), batch_size=self.batch_size, shuffle=False,
                            num_workers=self.num_workers, collate_fn=list, generator=loader_generator(self.seed, epoch))
        yield from loader

    def first_sample(self) -> dict:
        """A fixed sample (the dataset's first) whose conditions drive the validation videos."""
        return self.dataset[0]


class ShardBatches:
    """This process's micro-batches from d4d.shards (shards.dataset.ShardDataset), resumable like EpochBatches.

    The shard reader owns the order (seeded by seed and epoch, split over ranks with
    ``drop_last``); ``batches(epoch, start)`` restarts it ``start * batch_size`` samples into
    the epoch. ``tensors`` names cached columns to read (training.latent_cache).
    """

    def __init__(self, shard_dir, videos: Sequence[str], tensors: Sequence[str], batch_size: int, seed: int,
                 background: float, second_orbit: float = 0.0, rank: int = 0, world_size: int = 1, num_workers: int = 0):
        from d4d.shards.dataset import ShardDataset

        self.dataset = ShardDataset(shard_dir, videos=videos, tensors=tuple(tensors), shuffle=True, seed=seed,
                                    rank=rank, world_size=world_size, batch_size=batch_size, drop_last=True,
                                    background=background, second_orbit=second_orbit)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self._validation = dict(shards=shard_dir, videos=videos, tensors=tuple(tensors), shuffle=False,
                                rank=0, world_size=1, background=background)
        self._first: dict | None = None
        if len(self) < 1:
            raise ValueError(f"{shard_dir}: {self.dataset.num_samples} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes)")

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def batches(self, epoch: int, start: int = 0) -> Iterator[list[dict]]:
        state = {**self.dataset.state_dict(), "epoch": epoch, "consumed": start * self.batch_size}
        self.dataset.load_state_dict(state)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=list, drop_last=True, generator=loader_generator(self.seed, epoch))
        yield from loader

    def first_sample(self) -> dict:
        """The shards' first stored sample (first orbit), which drives the validation videos.

        Read once through a reader of its own: the training dataset's position, epoch and
        second-orbit draws are never touched, so validating mid-epoch changes no training batch.
        """
        if self._first is None:
            from d4d.shards.dataset import ShardDataset

            self._first = next(iter(ShardDataset(**self._validation)))
        return self._first
