"""Ray Data reader: ``ray.data.read_parquet`` over the shards plus a decode step (``map_batches``).

    ds = read_shards_ray("shards/", videos=("dynamic", "static"))
    for batch in ds.iter_torch_batches(batch_size=8, collate_fn=torch_collate): ...

Rows decode to the sample of shards/decode.py, batched: tensors gain a leading batch axis
[B, ...], ``uid`` and ``caption`` are arrays of str (lists of str after ``torch_collate``).
Ray holds numpy arrays, so bfloat16 tensor columns arrive as float32. The steps know nothing
about Ray (FilterBatch and DecodeBatch are plain callables over pyarrow tables) and can be
tested by calling them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from d4d.shards.dataset import build_filter, open_shards, resolve_tensors
from d4d.shards.decode import decode_row, row_columns
from d4d.shards.schema import SCALAR_COLUMNS


def _to_numpy(value) -> np.ndarray | str:
    if isinstance(value, torch.Tensor):
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return value


class DecodeBatch:
    """Decode a pyarrow batch of shard rows into a dict of numpy arrays [B, ...] (see module doc)."""

    def __init__(self, videos: Sequence[str] = ("dynamic", "static"), tensors: Sequence[str] = (), background: float | None = None):
        self.videos, self.tensors, self.background = tuple(videos), tuple(tensors), background

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        samples = [decode_row(row, self.videos, self.tensors, self.background) for row in batch.to_pylist()]
        out = {}
        for key in samples[0]:
            values = [_to_numpy(s[key]) for s in samples]
            out[key] = np.array(values, dtype=object) if isinstance(values[0], str) else np.stack(values)
        return out


class FilterBatch:
    """Keep the rows of a pyarrow batch that satisfy a pyarrow expression over the scalar columns."""

    def __init__(self, expression: pc.Expression):
        self.expression = expression

    def __call__(self, batch: pa.Table) -> pa.Table:
        return batch.filter(self.expression)


def torch_collate(batch: dict[str, np.ndarray]) -> dict:
    """For ``iter_torch_batches(collate_fn=...)``: numeric arrays to tensors (copied when Ray's
    buffer is read-only), str arrays to lists."""
    return {key: value.tolist() if value.dtype == object else torch.from_numpy(np.require(value, requirements="W")) for key, value in batch.items()}


def read_shards_ray(
    shards: str | Path | Sequence[str | Path],
    videos: Sequence[str] = ("dynamic", "static"),
    tensors: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    min_motion_magnitude: float | None = None,
    background: float | None = None,
    batch_size: int = 4,
    **map_batches_args,
):
    """A ray.data.Dataset of decoded samples; arguments as ShardDataset's. ``map_batches_args``
    (e.g. ``concurrency``, ``num_cpus``) go to the decode step's ``map_batches``."""
    import ray.data

    paths = open_shards(shards)
    tensors = resolve_tensors(paths, tensors)
    in_every_shard = set.intersection(*(set(pq.read_schema(p).names) for p in paths))  # older shards lack some columns
    columns = [c for c in dict.fromkeys([*SCALAR_COLUMNS, *row_columns(videos, tensors)]) if c in in_every_shard]
    dataset = ray.data.read_parquet([str(p) for p in paths]).select_columns(columns)
    expression = build_filter(filter, min_motion_magnitude)
    if expression is not None:
        dataset = dataset.map_batches(FilterBatch(expression), batch_format="pyarrow", batch_size=None)
    return dataset.map_batches(
        DecodeBatch(videos, tensors, background), batch_size=batch_size, batch_format="pyarrow", **map_batches_args
    )
