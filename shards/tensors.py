"""Optional tensor columns (VAE latents, text embeddings): encode, decode, add to shards.

A tensor is stored as three columns: NAME (raw C-order bytes), NAME_shape (list<int64>) and
NAME_dtype (a name from schema.TENSOR_DTYPES). ``add_tensor_columns`` rewrites shards
atomically with new values (the trainer's latent cache calls it); the content hash does not
cover these columns, so rows keep their hashes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from d4d import storage
from d4d.shards.card import write_card
from d4d.shards.files import AtomicParquetFile, list_shards, writer_lock
from d4d.shards.schema import TENSOR_DTYPES, schema_problems, schema_version, shard_schema, tensor_fields, tensors_in

log = logging.getLogger(__name__)

_TORCH_DTYPES = {name: getattr(torch, name) for name in TENSOR_DTYPES}


def tensor_to_columns(value: torch.Tensor | np.ndarray) -> tuple[bytes, list[int], str]:
    """(raw bytes, shape, dtype name) of a tensor or array; raises ValueError for other dtypes."""
    tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value.detach().cpu().contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"tensor dtype {dtype} is not one of {', '.join(TENSOR_DTYPES)}")
    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    return raw, list(tensor.shape), dtype


def tensor_from_columns(raw: bytes, shape: list[int], dtype: str) -> torch.Tensor:
    """Rebuild a tensor from its three columns; raises ValueError when they disagree."""
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"tensor dtype {dtype!r} is not one of {', '.join(TENSOR_DTYPES)}")
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"tensor shape {shape!r:.80} is not a list of dimensions >= 0")
    torch_dtype = _TORCH_DTYPES[dtype]
    expected = math.prod(shape) * torch.empty((), dtype=torch_dtype).element_size()  # Python ints: no overflow
    if len(raw) != expected:
        raise ValueError(f"tensor of shape {list(shape)} and dtype {dtype} needs {expected} bytes, has {len(raw)}")
    if expected == 0:
        return torch.empty(shape, dtype=torch_dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch_dtype).reshape(shape)


def _set_tensor_column(table: pa.Table, name: str, values: list, schema: pa.Schema) -> pa.Table:
    """Replace (or append) the three columns of tensor ``name``; ``values`` holds per row None or columns."""
    old = {
        suffix: table.column(f"{name}{suffix}").to_pylist() if f"{name}{suffix}" in table.column_names else [None] * table.num_rows
        for suffix in ("", "_shape", "_dtype")
    }
    for i, cols in enumerate(values):
        if cols is not None:
            old[""][i], old["_shape"][i], old["_dtype"][i] = cols
    for suffix, column in old.items():
        field = schema.field(f"{name}{suffix}")
        array = pa.array(column, type=field.type)
        if field.name in table.column_names:
            table = table.set_column(table.column_names.index(field.name), field, array)
        else:
            table = table.append_column(field, array)
    return table


def add_tensor_columns(
    shard_dir: str | Path, values: Mapping[str, Mapping[str, torch.Tensor | np.ndarray]], producers: Mapping[str, str]
) -> list[Path]:
    """Add or replace optional tensor columns in existing shards, atomically per shard.

    Args:
        shard_dir: a shard directory (written by write_shards).
        values: uid -> {column name -> tensor}; names from schema.TENSOR_COLUMNS. Rows whose uid
            is absent keep their current value (null when the column is new).
        producers: column name -> what computed it (model, settings), stored in the shard's
            key-value metadata; required for every column in ``values``.

    Returns the shards rewritten. Each is rebuilt row group by row group under a temporary
    name and swapped in with ``os.replace``: a reader sees the old or the new file, never a mix.
    Raises ValueError for unknown uids or columns, or a column without a producer.
    """
    if storage.is_uri(shard_dir):
        raise ValueError(f"{shard_dir}: tensor columns are written in place, into a local shard directory only")
    shard_dir = Path(shard_dir)
    names = sorted({name for cols in values.values() for name in cols})
    for name in names:
        tensor_fields(name)  # validates the name
        if not producers.get(name):
            raise ValueError(f"tensor column {name}: no producer given (say which model and settings computed it)")
    encoded = {uid: {name: tensor_to_columns(t) for name, t in cols.items()} for uid, cols in values.items()}
    rewritten = []
    with writer_lock(shard_dir):
        targets, found = [], set()
        for path in list_shards(shard_dir):
            parquet = pq.ParquetFile(path)
            problems = schema_problems(parquet.schema_arrow)
            if problems:
                raise ValueError(f"{path}: not a valid shard: {problems[0]}")
            hits = encoded.keys() & set(pq.read_table(path, columns=["uid"]).column("uid").to_pylist())
            if hits:
                targets.append((path, parquet, len(hits)))
                found |= hits
        missing = encoded.keys() - found
        if missing:
            raise ValueError(f"{shard_dir}: {len(missing)} uids are in no shard (e.g. {sorted(missing)[0]}); nothing was written")
        for path, parquet, hits in targets:
            tensors = {**tensors_in(parquet.schema_arrow), **{name: producers[name] for name in names}}
            schema = shard_schema(tensors, version=schema_version(parquet.schema_arrow))  # a shard keeps its version
            with AtomicParquetFile(path, schema) as out:
                for group in range(parquet.num_row_groups):
                    table = parquet.read_row_group(group)
                    group_uids = table.column("uid").to_pylist()
                    for name in names:
                        table = _set_tensor_column(table, name, [encoded.get(uid, {}).get(name) for uid in group_uids], schema)
                    out.write(table.select(schema.names).cast(schema))
                out.publish()
            rewritten.append(path)
            log.info("%s: wrote %s for %d rows", path, ", ".join(names), hits)
        if rewritten:
            write_card(shard_dir)  # the card's features list the new columns
    return rewritten
