"""The sample order of an epoch and its split across ranks and DataLoader workers (pure numpy).

The order depends only on (seed, epoch, the shards and filter, world_size): not on the number
of DataLoader workers nor the batch size, so a run can resume with different ones.

1. ``epoch_order``: row groups in a random order (seeded by seed and epoch), then a shuffle
   buffer over that stream of samples. Reading stays row-group-local; samples still mix
   across shards.
2. ``rank_share``: rank r takes every world_size-th sample of that order, starting at r.
   The order is first padded by repeating its start (or cut, with drop_last) so every rank gets
   the same count, as DDP needs.
3. ``worker_share``: a rank's remaining sequence is cut into batches of the DataLoader's batch
   size and batch j goes to worker j % num_workers. The DataLoader collects batches from its
   workers round-robin, so it delivers the rank's sequence in exactly this order.
"""

from __future__ import annotations

import numpy as np


def buffer_shuffle(stream: np.ndarray, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffle-buffer order of ``stream`` [N]: keep ``buffer_size`` items, emit a random one,
    refill from the stream; drain the buffer at random at the end. A larger buffer mixes samples
    from more row groups (and holds more rows in memory while reading)."""
    if buffer_size <= 1 or len(stream) <= 1:
        return stream.copy()
    out = np.empty_like(stream)
    buffer = list(stream[:buffer_size])
    picks = rng.random(len(stream))
    for k, incoming in enumerate(stream[buffer_size:]):
        j = int(picks[k] * len(buffer))
        out[k] = buffer[j]
        buffer[j] = incoming
    tail = len(stream) - len(buffer)
    out[tail:] = np.asarray(buffer)[rng.permutation(len(buffer))]
    return out


def epoch_order(groups: np.ndarray, seed: int, epoch: int, shuffle: bool, buffer_size: int) -> np.ndarray:
    """Sample indices [N] in the order of an epoch.

    Args:
        groups: int [N], the row group of each sample (samples of a group are adjacent and in
            row order, as the index lists them).
        seed, epoch: seed the order; the same pair always gives the same order.
        shuffle: False gives the stored order.
        buffer_size: shuffle buffer, in samples.
    """
    indices = np.arange(len(groups))
    if not shuffle or len(groups) == 0:
        return indices
    rng = np.random.default_rng([seed, epoch])
    unique_groups = np.unique(groups)
    rank_of_group = np.empty(unique_groups.max() + 1, dtype=np.int64)
    rank_of_group[unique_groups] = rng.permutation(len(unique_groups))
    stream = indices[np.lexsort((indices, rank_of_group[groups]))]
    return buffer_shuffle(stream, buffer_size, rng)


def rank_share(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """This rank's samples [n] of the epoch order; every rank gets the same n."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
    if len(order) == 0:
        return order
    per_rank = len(order) // world_size if drop_last else -(-len(order) // world_size)
    return np.resize(order, per_rank * world_size)[rank::world_size]


def worker_share(sequence: np.ndarray, start: int, worker: int, num_workers: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, samples) of ``sequence[start:]`` that DataLoader worker ``worker`` yields, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    positions = np.arange(min(start, len(sequence)), len(sequence))
    mine = (positions - start) // batch_size % num_workers == worker
    return positions[mine], sequence[positions[mine]]
