"""The dataset card: ``_README.md`` beside the shards, for people and for Hugging Face ``datasets``.

    write_card("shards/")      # write_shards calls it whenever it publishes a shard

The card has a YAML header in the Hugging Face layout (``configs``: the ``part-*.parquet``
files; ``dataset_info.features``: every column with its type, the ``*_video`` columns as
``Video(decode=False)``, typed videos rather than plain binary, without needing a video
decoder) and a body with the licence summary, the columns and their meaning, the conventions
and the counts. Its name starts with ``_`` because every directory reader (pyarrow, pandas,
Spark, Ray) skips such files but reads any other file of the folder as Parquet: a
``README.md`` there would break ``pd.read_parquet("shards/")``. Published on the Hugging Face
Hub (or copied) as ``README.md``, ``datasets.load_dataset`` reads its features;
``hf_features(shard_dir)`` is the same feature set as a ``datasets.Features`` for
``load_dataset("parquet", ..., features=...)`` on the folder as it is. It is rewritten from the shards themselves, so it always describes what is
there. Nothing in it comes from a render unescaped except licence names, which are listed as
plain table cells with ``|`` and line breaks removed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from d4d import storage
from d4d.files import write_bytes_atomic
from d4d.shards.files import list_shards
from d4d.shards.schema import SCHEMA_VERSION, TENSOR_COLUMNS, schema_version

CARD_NAME = "_README.md"
#: Glob of the shard files, relative to the shard directory (the card's ``configs`` entry).
DATA_FILES = "part-*.parquet"

#: What each column holds (docs/shards.md has the full table); ``V`` stands for a video name.
COLUMN_MEANINGS = {
    "uid": "clip id (asset.json uid)",
    "source": "where the asset came from (source url or file path)",
    "source_sha256": "sha256 of the source file",
    "license": "licence of the source asset (null when unknown)",
    "caption": "text caption (null when none)",
    "width": "pixels", "height": "pixels", "num_frames": "T, frames of every video of the row",
    "camera_angle_x": "horizontal field of view, radians",
    "frame_start": "first sampled Blender frame", "frame_end": "last sampled Blender frame",
    "fps": "the asset's frame rate",
    "motion_magnitude": "the paper's Eq. 1 over the clip, d4d's scale 0..195075",
    "motion_magnitude_version": "definition version of motion_magnitude",
    "video_codec": "vp9-yuva420p-webm (lossy) or ffv1-bgra-mkv (lossless)",
    "asset_uid": "the asset the clip comes from", "action": "the animation played (null: the file's default)",
    "window_start_s": "clip start on the animation's timeline, seconds", "window_end_s": "clip end, seconds",
    "warnings": "what the asset policy let through",
    "K": "3x3 pinhole intrinsics, pixels, row-major",
    "motion_magnitude_per_frame": "Eq. 1 per frame, [T]",
    "V_video": "the encoded video file (WebM/Matroska bytes), straight RGBA with alpha; null when not rendered",
    "V_c2w": "camera-to-world [T, 4, 4] row-major, OpenGL/NeRF-synthetic camera frame, world +Z up",
    "V_times": "normalised animation time in [0, 1] per frame (static orbits: 0)",
    "V_azimuth_deg": "camera azimuth per frame, degrees (0 = front, -Y)",
    "asset_json": "the render's whole asset.json",
    "content_sha256": "hash of the row's content columns (docs/shards.md)",
    "NAME": "optional cached tensor (raw bytes; NAME_shape, NAME_dtype beside it)",
}

_SCALARS = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.float64(): "float64",
            pa.float32(): "float32", pa.binary(): "binary", pa.bool_(): "bool"}


def _meaning(name: str) -> str:
    if name in COLUMN_MEANINGS:
        return COLUMN_MEANINGS[name]
    for tensor in TENSOR_COLUMNS:
        if name.startswith(tensor):
            return COLUMN_MEANINGS["NAME"]
    video, _, part = name.partition("_")
    if part in ("video", "c2w", "times", "azimuth_deg"):
        return COLUMN_MEANINGS[f"V_{part}"].replace("the encoded video", f"the encoded {video} video")
    return ""


def feature_spec(name: str, kind: pa.DataType) -> dict:
    """One column as a Hugging Face YAML feature: ``{"name", "dtype": ...}`` or ``{"name", "list": ...}``."""
    if name.endswith("_video") and pa.types.is_binary(kind):
        return {"name": name, "dtype": {"video": {"decode": False}}}
    if pa.types.is_list(kind) and kind.value_type in _SCALARS:
        return {"name": name, "list": _SCALARS[kind.value_type]}
    if kind in _SCALARS:
        return {"name": name, "dtype": _SCALARS[kind]}
    raise ValueError(f"column {name}: Arrow type {kind} has no feature mapping")


def features_of(schema: pa.Schema) -> list[dict]:
    """Every column of a shard schema as a Hugging Face YAML feature, in column order."""
    return [feature_spec(field.name, field.type) for field in schema]


def hf_features(shard_dir: str | Path):
    """The card's features as ``datasets.Features`` (needs the ``datasets`` package)."""
    from datasets import Features

    return Features._from_yaml_list(features_of(pq.read_schema(list_shards(shard_dir)[-1])))


def _yaml_feature(spec: dict) -> list[str]:
    lines = [f"  - name: {spec['name']}"]
    if "list" in spec:
        lines.append(f"    list: {spec['list']}")
    elif isinstance(spec["dtype"], dict):
        lines += ["    dtype:", "      video:", "        decode: false"]
    else:
        lines.append(f"    dtype: {spec['dtype']}")
    return lines


def _cell(text) -> str:
    return " ".join(str(text).replace("|", "/").split()) or "-"


def card_text(shard_dir: str | Path) -> str:
    """The card of the shards in ``shard_dir``, a directory or a URI (ValueError when there are none)."""
    paths = list_shards(shard_dir)
    if not paths:
        raise ValueError(f"{shard_dir}: no shards to describe")
    schema = pq.read_schema(paths[-1])
    versions = sorted({schema_version(pq.read_schema(p)) or 0 for p in paths})
    columns = ["uid", "asset_uid", "license", "caption", "num_frames", "width", "height", "motion_magnitude", "video_codec"]
    licences, frames, sides, codecs, assets = Counter(), Counter(), Counter(), Counter(), set()
    rows = captioned = 0
    motions = []
    second_orbit = 0
    for path in paths:
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in columns if c in names])
        data = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows for c in columns}
        rows += table.num_rows
        licences.update(lic or "unknown" for lic in data["license"])
        frames.update(data["num_frames"])
        sides.update(f"{w} x {h}" for w, h in zip(data["width"], data["height"]))
        codecs.update(data["video_codec"])
        assets.update(a or u for a, u in zip(data["asset_uid"], data["uid"]))
        captioned += sum(1 for c in data["caption"] if c and c.strip())
        motions += [m for m in data["motion_magnitude"] if m is not None]
        if "dynamic2_times" in names:
            second_orbit += table.num_rows - pq.read_table(path, columns=["dynamic2_times"]).column(0).null_count
    size_mb = sum(storage.size(p) for p in paths) / 1e6
    only = next(iter(licences)).lower() if len(licences) == 1 else "other"
    licence = only if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", only) and only != "unknown" else "other"  # a YAML-safe identifier
    motion = f"{min(motions):.1f} .. {max(motions):.1f} (mean {sum(motions) / len(motions):.1f})" if motions else "not measured"

    lines = ["---", f"license: {_cell(licence)}", "pretty_name: d4d 4D clips", "tags:", "  - 4d", "  - video", "  - 3d", "configs:",
             "  - config_name: default", f'    data_files: "{DATA_FILES}"', "dataset_info:", "  features:"]
    lines += [line for spec in features_of(schema) for line in _yaml_feature(spec)]
    lines += ["---", "", "# d4d 4D clips", "",
              f"Animated 3D assets rendered as orbital videos by d4d (Diffusion4D, complete), schema version {SCHEMA_VERSION}: "
              "one Parquet row per clip (an asset, one of its animations, one time window). This card is rewritten by "
              "`d4d-shards write` and `d4d-curate` whenever they add a shard (as `_README.md`, which directory readers skip; "
              "publish it as `README.md`).", "",
              "## Counts", "",
              "| | |", "|---|---|",
              f"| clips (rows) | {rows} |", f"| assets | {len(assets)} |", f"| shards | {len(paths)} ({size_mb:.1f} MB) |",
              f"| frames per video | {', '.join(f'{k} ({v} clips)' for k, v in sorted(frames.items()))} |",
              f"| frame size | {', '.join(f'{k} ({v} clips)' for k, v in sorted(sides.items()))} |",
              f"| video codec | {', '.join(f'{_cell(k)} ({v} clips)' for k, v in sorted(codecs.items()))} |",
              f"| clips with a caption | {captioned} of {rows} |",
              f"| clips with a second orbit | {second_orbit} of {rows} |",
              f"| motion magnitude | {motion} |",
              f"| schema versions | {', '.join(map(str, versions))} |", "",
              "## Licences", "",
              "Each clip keeps the licence of its source asset (column `license`); the data set as a whole is only as "
              "open as its most restrictive asset. Check each asset's terms before redistributing.", "",
              "| licence | clips |", "|---|---|"]
    lines += [f"| {_cell(name)} | {count} |" for name, count in licences.most_common()]
    lines += ["", "## Conventions", "",
              "- Videos are encoded files with alpha (straight, not premultiplied, sRGB RGBA): VP9 `yuva420p` in WebM, or "
              "FFV1 `bgra` in Matroska. FFmpeg's built-in VP9 decoder drops the alpha plane; `d4d.shards.decode_rgba` "
              "(libvpx) keeps it.",
              "- Videos per clip: `dynamic` (camera orbits while the asset animates), `static` (same cameras, asset frozen "
              "at time 0), `front` (fixed front camera), with a second orbit `dynamic2` / `static2` when rendered.",
              "- Cameras: `*_c2w` are camera-to-world matrices in the OpenGL / NeRF-synthetic frame (+X right, +Y up, "
              "looking along -Z), world +Z up, as in `transforms.json`; `K` is the OpenCV-layout pinhole matrix in pixels.",
              "- Motion magnitude: the paper's Eq. 1 at d4d's scale (0..195075, docs/conventions.md).", "",
              "## Loading", "",
              "```python",
              "import datasets, d4d.shards.card",
              'ds = datasets.load_dataset("parquet", data_files="part-*.parquet", features=d4d.shards.card.hf_features("."))',
              "# or: publish this folder with this file as README.md, then datasets.load_dataset(<it>) reads the features below",
              "row = ds[\"train\"][0]; row[\"dynamic_video\"][\"bytes\"]    # the WebM/Matroska file",
              "from d4d.shards import ShardDataset                  # decoded RGBA tensors for training",
              "```", "",
              "## Columns", "",
              "| column | feature | meaning |", "|---|---|---|"]
    for spec in features_of(schema):
        kind = "video (bytes)" if isinstance(spec.get("dtype"), dict) else (f"list of {spec['list']}" if "list" in spec else spec["dtype"])
        lines.append(f"| `{spec['name']}` | {kind} | {_cell(_meaning(spec['name']))} |")
    return "\n".join(lines) + "\n"


def write_card(shard_dir: str | Path) -> Path:
    """Write (atomically) the card of ``shard_dir``'s shards to ``shard_dir/_README.md``."""
    return write_bytes_atomic(Path(shard_dir) / CARD_NAME, card_text(shard_dir).encode())


def publish_card(shard_dir: str | Path, staging: str | Path) -> None:
    """``write_card`` for a folder or a URI: a URI's card is built in the local folder ``staging``
    and uploaded whole."""
    if not storage.is_uri(shard_dir):
        write_card(shard_dir)
        return
    storage.upload(write_bytes_atomic(Path(staging) / CARD_NAME, card_text(shard_dir).encode()), storage.join(shard_dir, CARD_NAME))
