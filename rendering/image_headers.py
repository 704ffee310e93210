"""How much memory an image will take once decoded, read from its header alone. Pure Python.

A 2.6 MB PNG can declare 43,000 x 43,000 pixels: Blender would decode it into 7 GiB. d4d reads
the header (a few bytes; JPEG: its segment headers) and bounds the decoded size before any
decoder runs (``too_large``). The size is counted as Blender holds an image: 4 channels, one
byte each for 8-bit formats and a 4-byte float each for 16-bit PNG, EXR and Radiance HDR.

Formats read: PNG, JPEG, BMP, WebP, DDS, OpenEXR, Radiance HDR, and TGA (which has no magic:
by its name). Other formats (TIFF, ...) are not bounded here; the worker's memory bound still is.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

#: Channels of Blender's decoded image buffer, whatever the file holds.
DECODED_CHANNELS = 4
#: Bytes read of an image's start (every format here declares its size in them, JPEG aside).
HEAD_BYTES = 4096
#: JPEG segments walked at most before giving up on finding the frame header.
MAX_JPEG_SEGMENTS = 4096


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, walking segment headers (not their data)."""
    f.seek(2)
    for _ in range(MAX_JPEG_SEGMENTS):
        marker = f.read(2)
        while len(marker) == 2 and marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
            marker = marker[1:] + f.read(1)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0x01, *range(0xD0, 0xD8)):  # no length
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            frame = f.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        if length < 2:
            return None
        f.seek(length - 2, 1)
    return None


def _exr_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of an OpenEXR's dataWindow attribute."""
    pos = 8
    while pos < len(head):
        end = head.find(b"\0", pos)
        if end <= pos:
            return None
        name = head[pos:end]
        type_end = head.find(b"\0", end + 1)
        if type_end < 0 or type_end + 4 > len(head):
            return None
        size = struct.unpack("<i", head[type_end + 1:type_end + 5])[0]
        value = head[type_end + 5:type_end + 5 + size]
        if name == b"dataWindow" and len(value) == 16:
            x0, y0, x1, y1 = struct.unpack("<4i", value)
            return x1 - x0 + 1, y1 - y0 + 1
        pos = type_end + 5 + max(size, 0)
    return None


def _hdr_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a Radiance HDR's resolution line (``-Y h +X w``)."""
    for line in head.split(b"\n")[1:64]:
        parts = line.split()
        if len(parts) == 4 and parts[0][1:] == b"Y" and parts[2][1:] == b"X":
            try:
                return int(parts[3]), int(parts[1])
            except ValueError:
                return None
    return None


def decoded_size(f: BinaryIO, name: str = "") -> tuple[int, int, int] | None:
    """(width, height, bytes per channel) an image file declares, or None when its format is not
    one read here. ``f`` is a binary file (or io.BytesIO of packed data) at any position;
    ``name`` is used only to recognise TGA."""
    f.seek(0)
    head = f.read(HEAD_BYTES)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 26 and head[12:16] == b"IHDR":
        width, height, depth = struct.unpack(">IIB", head[16:25])
        return width, height, 4 if depth == 16 else 1
    if head.startswith(b"\xff\xd8"):
        size = _jpeg_size(f)
        return (*size, 1) if size else None
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height), 1
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1, 1
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", head[26:30])
            return width & 0x3FFF, height & 0x3FFF, 1
        return None
    if head.startswith(b"DDS ") and len(head) >= 20:
        height, width = struct.unpack("<II", head[12:20])
        return width, height, 1
    if head.startswith(b"\x76\x2f\x31\x01"):
        size = _exr_size(head)
        return (*size, 4) if size else None
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        size = _hdr_size(head)
        return (*size, 4) if size else None
    if name.lower().endswith(".tga") and len(head) >= 18:
        width, height = struct.unpack("<HH", head[12:16])
        return width, height, 1
    return None


def decoded_bytes(f: BinaryIO, name: str = "") -> int | None:
    """Bytes Blender's decoded buffer of the image will take (width x height x 4 channels x bytes
    per channel), or None when the format is not read here."""
    size = decoded_size(f, name)
    if size is None:
        return None
    width, height, per_channel = size
    return max(width, 0) * max(height, 0) * DECODED_CHANNELS * per_channel
