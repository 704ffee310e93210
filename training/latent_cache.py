"""Latent caching: VAE latents and text embeddings computed once and stored in the shards.

``cache_latents`` encodes every clip's dynamic and static videos (and, when the backbone reads
text, its prefixed caption) with the run's frozen encoders and writes them as the shards'
optional tensor columns ``latents_dynamic``, ``latents_static`` and ``text_embedding`` through
``shards.tensors.add_tensor_columns`` (atomic per shard). Each column records its producer: a
fingerprint of the encoder weights and of every setting that changes the values (resolution,
frames, background, caption prefix, text layer). The trainer reads a cached column only when
its producer equals the run's (``usable_cached_columns``), so a stale cache is ignored, never misused.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pyarrow.parquet as pq
import torch

from d4d.shards.dataset import ShardDataset, open_shards
from d4d.shards.schema import tensors_in
from d4d.shards.tensors import add_tensor_columns

from .components import Components, encode_text, encode_video
from .config import TrainConfig
from .data import collate

logger = logging.getLogger(__name__)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) over a module's class, parameter names, shapes, dtypes and bytes."""
    digest = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def producers(parts: Components, config: TrainConfig) -> dict[str, str]:
    """Column name -> producer string of the values this run would compute."""
    vae = (f"d4d vae {type(parts.vae).__name__} {weights_fingerprint(parts.vae)} mode*scaling_factor "
           f"resolution={config.resolution} frames={config.num_frames} background={config.background}")
    out = {"latents_dynamic": vae, "latents_static": vae}
    if parts.text_encoder is not None:
        out["text_embedding"] = (f"d4d text {type(parts.text_encoder).__name__} {weights_fingerprint(parts.text_encoder)} "
                                 f"max_length={parts.tokenizer.model_max_length} prefix={config.caption_prefix!r} "
                                 f"clip_skip={parts.adapter.text_clip_skip}")
    return out


def usable_cached_columns(shard_dir: str | Path, expected: dict[str, str]) -> list[str]:
    """The tensor columns every shard holds with exactly the ``expected`` producer."""
    present = [tensors_in(pq.read_schema(p)) for p in open_shards(shard_dir)]
    return [name for name, producer in expected.items() if all(have.get(name) == producer for have in present)]


@torch.no_grad()
def cache_latents(shard_dir: str | Path, parts: Components, config: TrainConfig, device: torch.device,
                  batch_size: int = 4, flush_every: int = 256) -> int:
    """Encode every clip of ``shard_dir`` and store its latents (and text embedding) in the shards.

    Reads in stored order, encodes ``batch_size`` clips at a time and rewrites the shards every
    ``flush_every`` clips (consecutive clips share shards, so each flush touches few files).
    Returns the number of clips cached; logs progress.
    """
    expected = producers(parts, config)
    if set(usable_cached_columns(shard_dir, expected)) == set(expected):
        logger.info("%s: latents already cached by this model; nothing to do", shard_dir)
        return 0
    for module in (parts.vae, parts.text_encoder):
        if module is not None:
            module.to(device)
    dataset = ShardDataset(shard_dir, videos=("dynamic", "static"), tensors=(), shuffle=False, rank=0, world_size=1,
                           background=config.background)
    total, pending, done = dataset.num_samples, {}, 0
    samples = iter(dataset)
    while True:
        chunk = [s for _, s in zip(range(batch_size), samples)]
        if chunk:
            batch = collate(chunk, config.num_frames, config.resolution)
            dynamic = encode_video(parts.vae, batch.dynamic_video.to(device)).cpu()
            static = encode_video(parts.vae, batch.static_video.to(device)).cpu()
            text = None
            if parts.text_encoder is not None:
                text = encode_text(parts.tokenizer, parts.text_encoder, [config.caption_prefix + c for c in batch.captions],
                                   parts.adapter.text_clip_skip).float().cpu()
            for i, uid in enumerate(batch.uids):
                pending[uid] = {"latents_dynamic": dynamic[i], "latents_static": static[i]}
                if text is not None:
                    pending[uid]["text_embedding"] = text[i]
        if pending and (len(pending) >= flush_every or not chunk):
            add_tensor_columns(shard_dir, pending, expected)
            done += len(pending)
            logger.info("latent cache: %d / %d clips written", done, total)
            pending = {}
        if not chunk:
            return done
