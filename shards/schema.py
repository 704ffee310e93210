"""The shard schema (version 2): one Parquet row per clip. Described in full in docs/shards.md.

This module is the single definition of the columns, their Arrow types, which of them the
content hash covers, and the Parquet key-value metadata keys. Everything else in ``shards``
(writer, verifier, readers) takes its column lists from here.

Version 2 adds the clip's identity (``asset_uid``, ``action``, ``window_start_s``,
``window_end_s``), what the asset policy let through (``warnings``) and the second orbit's videos (``dynamic2``, ``static2``). Version-1 shards
stay readable: their rows read with those columns null (``upgrade_table``), and they verify
against the version-1 column list.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pyarrow as pa

from d4d.rendering.contract import VIDEO_NAMES

#: Bumped with any change to the columns, their types or meaning, or the content hash.
SCHEMA_VERSION = 2
#: Versions this code reads.
READABLE_VERSIONS = (1, 2)

#: Parquet key-value metadata keys (schema metadata of every shard).
META_VERSION = b"d4d.shards.schema_version"
META_TENSORS = b"d4d.shards.tensors"  # JSON {column: producer} for the optional tensor columns present

#: Videos of a version-1 shard; version 2 has every video of the render contract.
VIDEO_NAMES_V1 = ("dynamic", "static", "front")

#: Optional precomputed tensors (VAE latents, text embeddings). Each NAME has three columns:
#: NAME (binary, C-order raw bytes), NAME_shape (list<int64>), NAME_dtype (string, see TENSOR_DTYPES).
TENSOR_COLUMNS = ("latents_dynamic", "latents_static", "latents_front", "text_embedding")

#: Allowed tensor dtypes (names as torch spells them; bfloat16 has no numpy twin).
TENSOR_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8")

f64_list = pa.list_(pa.float64())

#: Scalar columns: cheap to read for a whole data set, the ones reader filters may reference.
SCALAR_FIELDS = [
    pa.field("uid", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("source_sha256", pa.string()),
    pa.field("license", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("num_frames", pa.int32(), nullable=False),
    pa.field("camera_angle_x", pa.float64(), nullable=False),
    pa.field("frame_start", pa.float64()),
    pa.field("frame_end", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("motion_magnitude", pa.float64()),
    pa.field("motion_magnitude_version", pa.int32()),
    pa.field("video_codec", pa.string(), nullable=False),
]
#: Scalar columns version 2 adds: the clip's identity.
CLIP_FIELDS = [
    pa.field("asset_uid", pa.string()),
    pa.field("action", pa.string()),
    pa.field("window_start_s", pa.float64()),
    pa.field("window_end_s", pa.float64()),
    pa.field("warnings", pa.list_(pa.string())),
]


def video_fields(name: str) -> list[pa.Field]:
    """Columns of one video; all null when the render has no such video."""
    return [
        pa.field(f"{name}_video", pa.binary()),
        pa.field(f"{name}_c2w", f64_list),
        pa.field(f"{name}_times", f64_list),
        pa.field(f"{name}_azimuth_deg", f64_list),
    ]


def content_fields(version: int = SCHEMA_VERSION) -> list[pa.Field]:
    """The columns a row's content hash covers, in hash order, for a shard ``version``."""
    if version not in READABLE_VERSIONS:
        raise ValueError(f"shard schema version {version} is not one of {READABLE_VERSIONS}")
    videos = VIDEO_NAMES_V1 if version == 1 else VIDEO_NAMES
    return (
        SCALAR_FIELDS + (CLIP_FIELDS if version >= 2 else [])
        + [pa.field("K", f64_list, nullable=False), pa.field("motion_magnitude_per_frame", f64_list)]
        + [f for name in videos for f in video_fields(name)]
        + [pa.field("asset_json", pa.string())]
    )


def content_columns(version: int = SCHEMA_VERSION) -> tuple[str, ...]:
    return tuple(f.name for f in content_fields(version))


CONTENT_COLUMNS = content_columns()
SCALAR_COLUMNS = tuple(f.name for f in SCALAR_FIELDS + CLIP_FIELDS)
HASH_COLUMN = "content_sha256"
VIDEO_COLUMNS = tuple(f"{name}_video" for name in VIDEO_NAMES)


def tensor_fields(name: str) -> list[pa.Field]:
    if name not in TENSOR_COLUMNS:
        raise ValueError(f"tensor column {name!r} is not one of {', '.join(TENSOR_COLUMNS)}")
    return [pa.field(name, pa.binary()), pa.field(f"{name}_shape", pa.list_(pa.int64())), pa.field(f"{name}_dtype", pa.string())]


def shard_schema(tensors: dict[str, str] | None = None, version: int = SCHEMA_VERSION) -> pa.Schema:
    """The Arrow schema of a shard.

    Args:
        tensors: optional tensor columns present, name -> producer (free text naming the model
            and settings that computed them, e.g. "vae=stabilityai/sd-vae-ft-mse scale=0.18215").
        version: the schema version (older versions for reading and verifying old shards).
    """
    tensors = tensors or {}
    fields = content_fields(version) + [pa.field(HASH_COLUMN, pa.string(), nullable=False)]
    for name in TENSOR_COLUMNS:  # fixed order whatever order the caller gives
        if name in tensors:
            fields += tensor_fields(name)
    unknown = set(tensors) - set(TENSOR_COLUMNS)
    if unknown:
        raise ValueError(f"tensor columns {sorted(unknown)} are not among {', '.join(TENSOR_COLUMNS)}")
    metadata = {META_VERSION: str(version).encode()}
    if tensors:
        metadata[META_TENSORS] = json.dumps(tensors, sort_keys=True).encode()
    return pa.schema(fields, metadata=metadata)


def tensors_in(schema: pa.Schema) -> dict[str, str]:
    """The optional tensor columns a shard's schema declares, name -> producer."""
    raw = (schema.metadata or {}).get(META_TENSORS)
    return json.loads(raw) if raw else {}


def schema_version(schema: pa.Schema) -> int | None:
    """The version a shard's schema declares (None when it declares none or an unreadable one)."""
    raw = (schema.metadata or {}).get(META_VERSION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def schema_problems(schema: pa.Schema) -> list[str]:
    """Why ``schema`` is not a shard schema this code reads (empty list when it is)."""
    raw = (schema.metadata or {}).get(META_VERSION)
    if raw is None:
        return [f"no {META_VERSION.decode()} in the Parquet key-value metadata (not a d4d shard?)"]
    version = schema_version(schema)
    if version not in READABLE_VERSIONS:
        return [f"schema version {raw.decode(errors='replace')!r}, this reader knows {', '.join(map(str, READABLE_VERSIONS))}"]
    try:
        expected = shard_schema(tensors_in(schema), version)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    for field in expected:
        index = schema.get_field_index(field.name)
        if index < 0:
            problems.append(f"missing column {field.name}")
        elif not schema.field(index).type.equals(field.type):
            problems.append(f"column {field.name} has type {schema.field(index).type}, expected {field.type}")
    extra = set(schema.names) - set(expected.names)
    if extra:
        problems.append(f"unexpected columns {sorted(extra)}")
    return problems


def _hash_value(value) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bytes):
        return b"B" + value
    return b"J" + json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def upgrade_table(table: pa.Table) -> pa.Table:
    """A table read from an older shard with the current version's columns it lacks added as nulls
    (only the columns it has of the current schema are kept in their place)."""
    current = shard_schema()
    for field in current:
        if field.name not in table.column_names and field.nullable:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return table


def content_hash(row: dict, version: int = SCHEMA_VERSION) -> str:
    """sha256 (hex) of a row's content columns, as a reader of the Parquet file sees them.

    For each column of ``content_columns(version)``, in that order: the 8-byte little-endian length of the
    UTF-8 name, the name, then the 8-byte length of the encoded value and the value, encoded as
    b"N" for null, b"B" + raw bytes for binary, and b"J" + compact JSON (Python's float repr,
    which round-trips float64) for everything else. Optional tensor columns are not covered, so
    adding latents to a shard keeps every row's hash.
    """
    digest = hashlib.sha256()
    for name in content_columns(version):
        encoded_name = name.encode()
        value = _hash_value(row[name])
        digest.update(struct.pack("<Q", len(encoded_name)) + encoded_name)
        digest.update(struct.pack("<Q", len(value)))
        digest.update(value)
    return digest.hexdigest()
