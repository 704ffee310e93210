"""Linked files an asset would make the importer read, checked before Blender opens it.

A glTF names its buffers and images by URI, an OBJ its material libraries by path, an MTL its
texture maps, a Collada file its images. By default d4d reads linked files only inside the
asset's own folder tree: an absolute path, a URI with a scheme, or a relative path that climbs
out of the folder is reported (``linked_file_outside_asset``) and the asset is not opened. The
check is lexical (the folder as the user named it, links inside it followed as they are), so
content-addressed caches whose files are symbolic links into a blob store work.

Whatever a file claims to be, it is checked as what it is:

- the format is read from the content (``content_format``): glTF binary bytes named
  ``.gltf`` are checked as a GLB (Blender's importer decides by the same magic), and a file
  whose content is another importer's binary format (a GLB named ``.obj``) is refused with
  ``unsupported_format``;
- every link in the whole file is read, streaming in CHUNK_BYTES pieces (never the whole file
  in memory): an ``mtllib`` after the first megabyte counts;
- a glTF's JSON is reduced before it is parsed: the body of every base64 ``data:`` URI is
  skipped while streaming, and what is left may be at most MAX_GLTF_JSON_BYTES (``too_large``).

FBX files link images only, which the Blender worker checks as they are loaded
(``rendering.blender.guard``); every importer's result is checked again after import. Pure Python.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from d4d.rendering.errors import AssetError

#: Bytes read at a time when scanning a file for links.
CHUNK_BYTES = 1 << 20
#: A glTF's JSON without its base64 data: URI bodies may be at most this long (bytes); a real
#: glTF's JSON is kilobytes to a few megabytes (its geometry is in buffers).
MAX_GLTF_JSON_BYTES = 64 << 20
#: Bytes of one OBJ/MTL line kept (a path is at most 4096 bytes; the rest of a longer line is not a link).
MAX_LINE_BYTES = 1 << 16
#: Bytes of a string's start looked at for the ``data:...;base64,`` header of an embedded buffer.
DATA_URI_HEAD_BYTES = 256

#: Leading bytes -> the format they mean (what each importer, or a compressed .blend, starts with).
MAGIC = (
    (b"glTF", "glb"),
    (b"Kaydara FBX Binary", "fbx"),
    (b"BLENDER", "blend"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"PXR-USDC", "usdc"),
    (b"#usda", "usda"),
    (b"PK\x03\x04", "zip"),
    (b"Ogawa", "alembic"),
    (b"\x89HDF\r\n\x1a\n", "alembic"),
    (b"ply", "ply"),
)
#: Extension -> the content formats its importer reads (content of no known format is left to it).
CONTENT_FORMATS = {
    ".glb": {"glb"}, ".gltf": {"glb"}, ".fbx": {"fbx"}, ".blend": {"blend", "zstd", "gzip"},
    ".usd": {"usdc", "usda"}, ".usda": {"usda"}, ".usdc": {"usdc"}, ".usdz": {"zip"},
    ".abc": {"alembic"}, ".ply": {"ply"}, ".obj": set(), ".dae": set(), ".stl": set(), ".mtl": set(),
}


def within(folder: Path, path: str) -> bool:
    """Whether the absolute ``path`` lies in ``folder``'s tree, compared lexically (normalised, no links followed)."""
    root = os.path.normpath(str(folder))
    return os.path.commonpath([os.path.normpath(path), root]) == root


def escapes(folder: Path, reference: str, base: Path | None = None) -> bool:
    """Whether ``reference`` (a relative path or URI from a file in ``base``, by default
    ``folder``) names a file outside ``folder``'s tree; absolute paths, NUL bytes and schemes
    always do. A ``data:`` URI is not a file only when it is base64 (Blender's glTF importer
    reads any other as a path)."""
    if "\0" in reference:
        return True
    if reference.startswith("data:") and ";base64," in reference:
        return False
    parsed = urlparse(reference)
    if parsed.scheme and parsed.scheme != "data" or parsed.netloc:
        return True  # http:, file:, C: ... never read
    path = unquote(reference).replace("\\", "/")
    if PurePosixPath(path).is_absolute():
        return True
    return not within(folder, os.path.join(str(base or folder), path))


def content_format(path: Path) -> str | None:
    """The format ``path``'s first bytes show (a MAGIC name), or None (text, or unknown)."""
    with open(path, "rb") as f:
        head = f.read(32)
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def check_content(path: Path) -> str | None:
    """``content_format(path)``; AssetError("unsupported_format") when the content is a known
    format that the importer of ``path``'s extension does not read."""
    found = content_format(path)
    allowed = CONTENT_FORMATS.get(path.suffix.lower(), set())
    if found is not None and found not in allowed:
        raise AssetError("unsupported_format", f"the content is {found}, not what its name {path.name!r} says", str(path))
    return found


# -- glTF --------------------------------------------------------------------------------------

def _reduced_json(f: BinaryIO, length: int | None, path: Path) -> bytes:
    """The next ``length`` bytes of ``f`` (None: to its end) as JSON text with the body of every
    base64 data: URI string left out; AssetError("too_large") past MAX_GLTF_JSON_BYTES.

    Streams: only what is kept is held. A string is left out when its raw bytes start with
    ``data:`` and hold ``;base64,`` within DATA_URI_HEAD_BYTES; it is kept up to that marker, so
    the result parses as the original would and the string still reads as a base64 data: URI.
    """
    out = bytearray()
    buf, pos, left = b"", 0, length

    def more() -> bool:
        nonlocal buf, pos, left
        size = CHUNK_BYTES if left is None else min(CHUNK_BYTES, left)
        data = f.read(size) if size > 0 else b""
        if left is not None:
            left -= len(data)
        buf, pos = buf[pos:] + data, 0
        return bool(data)

    def bound() -> None:
        if len(out) > MAX_GLTF_JSON_BYTES:
            raise AssetError("too_large", f"glTF JSON over {MAX_GLTF_JSON_BYTES >> 20} MiB outside its base64 data: URIs (not parsed)", str(path))

    special = re.compile(rb'["\\]')
    while True:
        quote = buf.find(b'"', pos)
        if quote < 0:
            out += buf[pos:]
            bound()
            pos = len(buf)
            if not more():
                return bytes(out)
            continue
        out += buf[pos:quote + 1]
        pos = quote + 1
        while len(buf) - pos < DATA_URI_HEAD_BYTES and more():
            pass
        head = buf[pos:pos + DATA_URI_HEAD_BYTES]
        marker = head.find(b";base64,")
        skip = head.startswith(b"data:") and marker >= 0 and not special.search(head, 0, marker)
        if skip:
            out += buf[pos:pos + marker + 8]
            pos += marker + 8
        while True:  # to the string's closing quote
            m = special.search(buf, pos)
            if m is None:
                if not skip:
                    out += buf[pos:]
                    bound()
                pos = len(buf)
                if not more():
                    return bytes(out)
                continue
            j = m.start()
            if buf[j:j + 1] == b'"':
                out += buf[pos:j + 1] if not skip else b'"'
                pos = j + 1
                break
            if j + 1 >= len(buf):  # a backslash at the end of what was read
                if not skip:
                    out += buf[pos:j]
                pos = j
                if not more():
                    return bytes(out)
                continue
            if not skip:
                out += buf[pos:j + 2]
            pos = j + 2
        bound()


def _gltf_json(path: Path) -> dict:
    """The JSON of a glTF, read as its content says (a GLB's JSON chunk, else the file as JSON
    text), with base64 data: URI bodies left out ({} when it does not parse: the importer then
    fails on the file itself)."""
    with open(path, "rb") as f:
        header = f.read(20)
        if header[:4] == b"glTF":
            if len(header) < 20:
                return {}
            length = struct.unpack("<I", header[12:16])[0]
        else:
            f.seek(0)
            length = None
        text = _reduced_json(f, length, path)
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
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


# -- OBJ / MTL ---------------------------------------------------------------------------------

#: Bytes an OBJ line may end with after a continuation backslash (Blender: any byte <= space but newline).
_CONTINUATION_SPACE = bytes(b for b in range(0x21) if b != 0x0A)


def _lines(path: Path, needle: re.Pattern, continuations: bool):
    """The lines of a text file that may hold a statement ``needle`` finds, at most
    MAX_LINE_BYTES of each, read in CHUNK_BYTES pieces: the lines of every piece the needle
    occurs in (or that continues a line), each as written and, where ``continuations`` (OBJ:
    a backslash and optional blanks before the newline), also joined with the lines it
    continues, as Blender joins them. Both forms are read, so neither hides a statement."""
    with open(path, "rb") as f:
        carry, pending = b"", b""
        while True:
            chunk = f.read(CHUNK_BYTES)
            data = carry + chunk
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            block, carry = data[:cut], data[cut:][:MAX_LINE_BYTES]
            if not pending and not needle.search(block):
                if not chunk:
                    return
                continue
            lines = block.split(b"\n")
            if block.endswith(b"\n"):
                lines.pop()  # the next line starts in the next piece
            for raw in lines:
                raw = raw[:MAX_LINE_BYTES]
                stripped = raw.rstrip(_CONTINUATION_SPACE) if continuations else raw
                continued = stripped.endswith(b"\\")
                yield (stripped[:-1] if continued else raw).decode("utf-8", errors="replace")
                if continued:
                    pending = (pending + stripped[:-1] + b" ")[:MAX_LINE_BYTES]
                    continue
                if not continuations:
                    continue
                if pending:
                    yield (pending + raw)[:MAX_LINE_BYTES].decode("utf-8", errors="replace")
                pending = b""
            if not chunk:
                return


#: MTL statements that name a texture file (besides any ``map_...``).
MTL_MAPS = ("bump", "disp", "decal", "norm", "refl")
_MTL_NEEDLE = re.compile(rb"map_|bump|disp|decal|norm|refl", re.IGNORECASE)


def _statements(path: Path, is_link, needle: re.Pattern, continuations: bool = False) -> list[str]:
    """The file names of every statement ``is_link(keyword)`` accepts, in the whole file: each
    word after the keyword and the whole rest of the line, each also without surrounding
    quotes (importers read any of these)."""
    found = []
    for line in _lines(path, needle, continuations):
        parts = line.split(None, 1)
        if len(parts) == 2 and is_link(parts[0]):
            rest = parts[1].strip()
            words = [*rest.split(), rest]
            found.extend(dict.fromkeys(words + [w[1:-1] for w in words if len(w) > 2 and w[0] == w[-1] and w[0] in "\"'"]))
    return found


# -- Collada, USD text ------------------------------------------------------------------------

#: A Collada image's file (1.4 ``<init_from>path``, 1.5 ``<init_from><ref>path``) and any XML
#: external entity or document type (``SYSTEM "path"``).
DAE_LINK = re.compile(rb"<(?:init_from|ref)>\s*([^<]{1,4096}?)\s*</|SYSTEM\s+[\"']([^\"']{0,4096})[\"']")
#: A USD text layer's asset paths (``@path@``, ``@@@path@@@``): sublayers, references,
#: payloads, textures. A package path ``a.usdz[b.usda]`` is read as its package, ``a.usdz``;
#: a .usdz's text layers are read from the archive (its binary crate layers are not read).
USD_LINK = re.compile(rb"@@@(.{1,4096}?)@@@|@([^@\n]{1,4096})@", re.DOTALL)


def _pattern_links(f: BinaryIO, pattern: re.Pattern) -> list[str]:
    """The first non-empty group of every match of ``pattern`` in the whole binary file ``f``
    (read in chunks that overlap by a match's longest length)."""
    found, overlap, seen = [], 8192, set()
    tail, offset = b"", 0
    while chunk := f.read(CHUNK_BYTES):
        data = tail + chunk
        for m in pattern.finditer(data):
            where = offset - len(tail) + m.start()
            if where not in seen:
                seen.add(where)
                found.append(next(g for g in m.groups() if g is not None).decode("utf-8", errors="replace"))
        tail = data[-overlap:]
        offset += len(chunk)
    return found


def _dae_links(path: Path) -> list[str]:
    """Every image file and external entity a Collada file names (XML character references decoded)."""
    with open(path, "rb") as f:
        return [link for link in map(html.unescape, _pattern_links(f, DAE_LINK)) if not link.startswith("#")]


def _usd_links(path: Path, packaged: bool) -> list[str]:
    """Every asset path of a USD text layer, or (``packaged``) of the text layers in a .usdz
    (a zip archive; each layer read as a stream, at most its declared size)."""
    if packaged:
        links = []
        try:
            with zipfile.ZipFile(path) as package:
                for entry in package.infolist():
                    if entry.filename.lower().endswith(".usda"):
                        with package.open(entry) as f:
                            links += _pattern_links(f, USD_LINK)
        except (zipfile.BadZipFile, RuntimeError, EOFError, zlib.error, NotImplementedError):
            return links  # the importer reports a broken package
    else:
        with open(path, "rb") as f:
            links = _pattern_links(f, USD_LINK)
    return [link.split("[", 1)[0] for link in links if link.split("[", 1)[0]]


# -- every format ------------------------------------------------------------------------------

#: Linked files whose own links are followed: extension of the linking file -> extensions followed.
FOLLOWED = {".obj": (".mtl",), ".usda": (".usda", ".usd"), ".usd": (".usda", ".usd"), ".usdz": (".usda", ".usd")}
#: Files followed at most per asset.
MAX_FOLLOWED = 256


def scan_references(path: Path) -> list[str]:
    """The files the asset (or material library, or layer) at ``path`` names, as written, read
    from the whole file as its content says: a glTF's buffer and image URIs (not base64 data:
    URIs), an OBJ's material libraries, an MTL's texture maps, a Collada file's images and
    entities, a USD text layer's asset paths (binary USD crate files are not read here).
    AssetError("too_large") for a glTF whose JSON is too long to parse, ("unsupported_format")
    for content of another importer's format."""
    found = check_content(path)
    suffix = path.suffix.lower()
    if suffix in (".gltf", ".glb") or found == "glb":
        return [u for u in _gltf_uris(path) if not (u.startswith("data:") and ";base64," in u)]
    if suffix == ".obj":
        return _statements(path, lambda word: word == "mtllib", re.compile(rb"mtllib"), continuations=True)
    if suffix == ".mtl":
        return _statements(path, lambda word: word.lower().startswith("map_") or word.lower() in MTL_MAPS, _MTL_NEEDLE)
    if suffix == ".dae":
        return _dae_links(path)
    if suffix in (".usda", ".usd", ".usdz") and found != "usdc":
        return _usd_links(path, packaged=found == "zip")
    return []


def linked_references(path: Path) -> list[str]:
    """``scan_references``, or [] where it fails (for fetching the files an asset links; the
    render's own check reports the failure)."""
    try:
        return scan_references(path)
    except (AssetError, OSError):
        return []


def outside_links(path: Path) -> list[str]:
    """The references of the asset at ``path`` (as the user named it) that leave its folder,
    including those of the files it links inside the folder whose links the importer follows
    (an OBJ's material libraries, a USD layer's layers; FOLLOWED), each resolved from its own
    folder. Raises AssetError as ``scan_references``."""
    folder, outside = path.parent, []
    queue, seen = [path], {path}
    while queue:
        current = queue.pop()
        for reference in scan_references(current):
            if escapes(folder, reference, base=current.parent):
                outside.append(reference)
                continue
            target = Path(os.path.normpath(os.path.join(current.parent, unquote(reference).replace("\\", "/").strip("\"'"))))
            if (target.suffix.lower() in FOLLOWED.get(current.suffix.lower(), ()) and target not in seen
                    and len(seen) < MAX_FOLLOWED and target.is_file()):
                seen.add(target)
                queue.append(target)
    return outside
