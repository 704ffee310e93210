"""Parquet/video shards of renders and the readers that feed training (docs/shards.md).

Layers: ``schema`` (columns, hash) <- ``video`` (codecs) <- ``from_render`` / ``writer`` /
``tensors`` / ``verify`` (write and check) and ``decode`` <- ``order`` + ``dataset`` (PyTorch)
and ``ray_data`` (Ray Data). ``cli`` is the ``d4d-shards`` command.
"""

from shards.dataset import ShardDataset
from shards.schema import SCHEMA_VERSION, shard_schema
from shards.tensors import add_tensor_columns
from shards.verify import verify_shards
from shards.writer import write_shards

__all__ = ["SCHEMA_VERSION", "ShardDataset", "add_tensor_columns", "shard_schema", "verify_shards", "write_shards"]
