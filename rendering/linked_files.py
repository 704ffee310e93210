"""Linked files an asset would make the importer read, checked before Blender opens it.

A glTF names its buffers and images by URI, an OBJ its material libraries by path. By default
d4d reads linked files only inside the asset's own folder tree: an absolute path, a URI with a
scheme other than ``data:``, or a relative path that climbs out of the folder is reported
(``linked_file_outside_asset``) and the asset is not opened. The check is lexical (the folder
as the user named it, links inside it followed as they are), so content-addressed caches whose
files are symbolic links into a blob store work. Images the other importers link (FBX,
Collada) are checked inside Blender after import, before any is decoded
(``rendering.blender.scene.outside_images``). Pure Python.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

#: Bytes of an OBJ read for ``mtllib`` lines (material libraries are named at the top).
OBJ_SCAN_BYTES = 1 << 20


def within(folder: Path, path: str) -> bool:
    """Whether the absolute ``path`` lies in ``folder``'s tree, compared lexically (normalised, no links followed)."""
    root = os.path.normpath(str(folder))
    return os.path.commonpath([os.path.normpath(path), root]) == root


def escapes(folder: Path, reference: str) -> bool:
    """Whether ``reference`` (a relative path or file URI from a file in ``folder``) names a
    file outside ``folder``'s tree; absolute paths, NUL bytes and non-file schemes always do."""
    if "\0" in reference:
        return True
    parsed = urlparse(reference)
    if parsed.scheme == "data":
        return False
    if parsed.scheme or parsed.netloc:
        return True  # http:, file:, C: ... never read
    path = unquote(parsed.path).replace("\\", "/")
    if PurePosixPath(path).is_absolute():
        return True
    return not within(folder, os.path.join(str(folder), path))


def _gltf_json(path: Path) -> dict:
    """The JSON of a .gltf, or the JSON chunk of a .glb ({} when it cannot be read: the
    importer then reports the file itself)."""
    try:
        if path.suffix.lower() == ".glb":
            with open(path, "rb") as f:
                header = f.read(20)
                if len(header) < 20 or header[:4] != b"glTF":
                    return {}
                chunk_length = struct.unpack("<I", header[12:16])[0]
                data = json.loads(f.read(chunk_length))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, struct.error):
        return {}
    return data if isinstance(data, dict) else {}


def _gltf_uris(path: Path) -> list[str]:
    data = _gltf_json(path)
    uris = []
    for key in ("buffers", "images"):
        items = data.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                uris.append(item["uri"])
    return uris


def _statements(path: Path, keywords: tuple[str, ...]) -> list[str]:
    """The argument of every line of a text file (its first OBJ_SCAN_BYTES) that starts with one of ``keywords``."""
    with open(path, "rb") as f:
        head = f.read(OBJ_SCAN_BYTES).decode("utf-8", errors="replace")
    found = []
    for line in head.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in keywords:
            names = parts[1].split()
            # mtllib lists files; a texture map's options (-bm 1 ...) come before its one file name
            found.extend(names if parts[0] == "mtllib" else names[-1:])
    return found


#: MTL statements that name a texture file.
MTL_MAPS = ("map_Ka", "map_Kd", "map_Ks", "map_Ns", "map_d", "map_bump", "bump", "disp", "decal", "norm", "map_Pr", "map_Pm")


def linked_references(path: Path) -> list[str]:
    """The files the asset (or material library) at ``path`` names, as written: a glTF's buffer
    and image URIs (not data: URIs), an OBJ's material libraries, an MTL's texture maps."""
    suffix = path.suffix.lower()
    if suffix in (".gltf", ".glb"):
        return [u for u in _gltf_uris(path) if not u.startswith("data:")]
    if suffix == ".obj":
        return _statements(path, ("mtllib",))
    if suffix == ".mtl":
        return _statements(path, MTL_MAPS)
    return []


def outside_links(path: Path) -> list[str]:
    """The references of the asset at ``path`` (as the user named it) that leave its folder."""
    return [r for r in linked_references(path) if escapes(path.parent, r)]
