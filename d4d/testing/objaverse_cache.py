"""Test helper: real glTF-binary files and a local objaverse cache laid out exactly as the
objaverse 0.1.7 package reads it (see curation/sources/objaverse_v1.py and objaverse_xl.py).
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def animated_triangle_glb(shift: float = 1.0, animated: bool = True) -> bytes:
    """A complete glTF 2.0 binary: one triangle; with ``animated`` a LINEAR translation
    animation of its node from 0 to (shift, 0, 0) over one second. ``shift`` changes the
    bytes, so each call with another value has another sha256."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    times = np.array([0.0, 1.0], dtype=np.float32)
    translations = np.array([[0, 0, 0], [shift, 0, 0]], dtype=np.float32)
    blobs = [positions.tobytes()] + ([times.tobytes(), translations.tobytes()] if animated else [])
    views, offset = [], 0
    for blob in blobs:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob)})
        offset += len(blob)
    binary = b"".join(blobs)
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}
    ]
    gltf = {
        "asset": {"version": "2.0", "generator": "d4d tests"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    if animated:
        accessors += [
            {"bufferView": 1, "componentType": 5126, "count": 2, "type": "SCALAR", "min": [0.0], "max": [1.0]},
            {"bufferView": 2, "componentType": 5126, "count": 2, "type": "VEC3"},
        ]
        gltf["animations"] = [
            {
                "name": "slide",
                "channels": [{"sampler": 0, "target": {"node": 0, "path": "translation"}}],
                "samplers": [{"input": 1, "output": 2, "interpolation": "LINEAR"}],
            }
        ]
    json_chunk = _pad(json.dumps(gltf).encode(), b" ")
    bin_chunk = _pad(binary, b"\0")
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<II", len(json_chunk), 0x4E4F534A)
        + json_chunk
        + struct.pack("<II", len(bin_chunk), 0x004E4942)
        + bin_chunk
    )


def write_json_gz(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f)


def v1_annotation(uid: str, animation_count: int, license: str = "by", faces: int = 1, age_restricted: bool = False) -> dict:
    """An Objaverse 1.0 annotation with the fields Sketchfab's API returns (a subset)."""
    return {
        "uid": uid,
        "name": f"model {uid[:6]}",
        "animationCount": animation_count,
        "faceCount": faces,
        "vertexCount": 3,
        "license": license,
        "isAgeRestricted": age_restricted,
        "viewerUrl": f"https://sketchfab.com/3d-models/{uid}",
        "publishedAt": "2021-01-01T00:00:00",
        "thumbnails": {"images": []},
    }


def build_v1_cache(base: Path, objects: dict[str, dict], glb_groups: dict[str, str], cached: set[str], skip_groups=()) -> dict:
    """Write ``base/hf-objaverse-v1``: object-paths.json.gz, metadata/<group>.json.gz and the
    glbs of the uids in ``cached``.

    Args:
        objects: uid -> annotation.
        glb_groups: uid -> group ("000-000" ...).
        cached: uids whose glb is written.
        skip_groups: groups whose metadata file is left out.

    Returns uid -> glb bytes written.
    """
    root = base / "hf-objaverse-v1"
    write_json_gz(root / "object-paths.json.gz", {uid: f"glbs/{glb_groups[uid]}/{uid}.glb" for uid in objects})
    by_group: dict[str, dict] = {}
    for uid, annotation in objects.items():
        by_group.setdefault(glb_groups[uid], {})[uid] = annotation
    for group, data in by_group.items():
        if group not in skip_groups:
            write_json_gz(root / "metadata" / f"{group}.json.gz", data)
    written = {}
    for i, uid in enumerate(sorted(cached)):
        data = animated_triangle_glb(shift=1.0 + i)
        path = root / "glbs" / glb_groups[uid] / f"{uid}.glb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[uid] = data
    return written


def write_xl_parquet(base: Path, source: str, rows: list[dict]) -> Path:
    """``base/<source>/<source>.parquet`` with objaverse-xl's annotation columns."""
    import pandas as pd

    path = base / source / f"{source}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["fileIdentifier", "source", "license", "fileType", "sha256", "metadata"])
    frame.to_parquet(path, index=False)
    return path
