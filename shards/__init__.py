"""Parquet/video shards of renders and the readers that feed training (docs/shards.md).

Layers: ``schema`` (columns, hash) <- ``video`` (codecs) <- ``from_render`` / ``writer`` /
``tensors`` / ``verify`` (write and check) and ``decode`` <- ``order`` + ``dataset`` (PyTorch)
and ``ray_data`` (Ray Data). ``cli`` is the ``d4d-shards`` command.
"""

import importlib

#: Public names and the module each lives in. They load on first use, so importing one
#: submodule (``shards.video`` for the report, ``shards.cli``) does not pull in torch.
_EXPORTS = {
    "SCHEMA_VERSION": "d4d.shards.schema",
    "shard_schema": "d4d.shards.schema",
    "ShardDataset": "d4d.shards.dataset",
    "add_tensor_columns": "d4d.shards.tensors",
    "verify_shards": "d4d.shards.verify",
    "ShardWriteConfig": "d4d.shards.writer",
    "write_shards": "d4d.shards.writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'shards' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
