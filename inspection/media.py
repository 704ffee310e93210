"""Small previews of videos as sprite sheets: one WebP strip per video, animated by the page's JS.

A sprite sheet is the video's frames scaled to ``size`` pixels high and laid side by side
(frame i at x = i * frame_width). WebP keeps the alpha channel and every Chromium decodes it
without proprietary codecs; a strip plays in lockstep with the other videos of the same asset
(dynamic frame i next to static frame i, same camera), which a <video> element cannot promise.

Files are named by a key of their content (a shard row's content hash, or the source files'
path, size and modification time), so a rerun over the same data reuses them instead of
decoding and encoding again; ``MediaStore.prune`` removes the ones the new page no longer uses.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Preview height in pixels.
PREVIEW_SIZE = 128
#: WebP stores at most 16383 pixels per side; longer videos are subsampled evenly to this many frames.
MAX_FRAMES = 96
WEBP_QUALITY = 75
#: libwebp effort 0..6; 2 encodes a 24-frame strip about 5x faster than 4 for about 15% more bytes.
WEBP_METHOD = 2
#: Lossy alpha: lossless alpha made encoding about 5x slower and strips about 2x larger (a
#: 24-frame 128 px strip: 0.03 s and about 20 KB instead of 0.15 s and 50 KB).
WEBP_ALPHA_QUALITY = 50


@dataclass(frozen=True)
class Sprite:
    """One preview: ``src`` (relative URL or data URI), ``frames`` and the ``width``/``height`` of a frame, pixels."""

    src: str
    frames: int
    width: int
    height: int

    def to_json(self) -> dict:
        return {"src": self.src, "frames": self.frames, "w": self.width, "h": self.height}


def frame_indices(count: int, limit: int = MAX_FRAMES) -> np.ndarray:
    """Indices of at most ``limit`` frames spread evenly over ``count`` (all of them when count <= limit)."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(int))


def sprite_sheet(frames: np.ndarray, size: int = PREVIEW_SIZE) -> tuple[bytes, int, int, int]:
    """Encode a video as a WebP sprite strip.

    Args:
        frames: uint8 [T, H, W, 3] or [T, H, W, 4] (straight alpha kept).
        size: preview height in pixels; width follows the aspect ratio.

    Returns:
        (WebP bytes, frames in the strip, frame width, frame height).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (3, 4) or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [T>0, H, W, 3|4], got {frames.dtype} {list(frames.shape)}")
    frames = frames[frame_indices(frames.shape[0])]
    height = size
    width = max(1, round(frames.shape[2] * size / frames.shape[1]))
    mode = "RGBA" if frames.shape[-1] == 4 else "RGB"
    sheet = Image.new(mode, (width * len(frames), height))
    for i, frame in enumerate(frames):
        sheet.paste(Image.fromarray(frame, mode).resize((width, height), Image.BILINEAR), (i * width, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD, alpha_quality=WEBP_ALPHA_QUALITY)
    return buffer.getvalue(), len(frames), width, height


def file_key(*paths: Path) -> str:
    """A cache key for previews made from files: their paths, sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` and move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class MediaStore:
    """Where a report's previews go: files in ``media_dir`` (linked as ``media_url/NAME``) or data URIs.

    Args:
        media_dir: folder next to the page; created on first write.
        media_url: how the page refers to that folder (relative to the page).
        embed: True puts each preview into the page as a data URI and writes no files.
    """

    def __init__(self, media_dir: Path, media_url: str, embed: bool = False, size: int = PREVIEW_SIZE):
        self.media_dir = Path(media_dir)
        self.media_url = media_url
        self.embed = embed
        self.size = size
        self.used: set[str] = set()
        self.reused = 0
        self.written = 0
        self._existing: dict[str, str] | None = None

    def _name(self, key: str) -> str:
        return hashlib.sha256(f"{key}|{self.size}|q{WEBP_QUALITY}|m{WEBP_METHOD}|a{WEBP_ALPHA_QUALITY}".encode()).hexdigest()[:24]

    def cached(self, key: str) -> Sprite | None:
        """The preview stored under ``key`` by an earlier run, if its file is still there."""
        if self.embed:
            return None
        if self._existing is None:  # list the folder once, not once per preview
            files = self.media_dir.glob("*-*x*x*.webp") if self.media_dir.is_dir() else []
            self._existing = {p.name.split("-")[0]: p.name for p in files}
        filename = self._existing.get(self._name(key))
        if filename is None:
            return None
        frames, width, height = (int(v) for v in filename[: -len(".webp")].split("-")[1].split("x"))
        self.used.add(filename)
        self.reused += 1
        return Sprite(f"{self.media_url}/{filename}", frames, width, height)

    def put(self, key: str, data: bytes, frames: int, width: int, height: int) -> Sprite:
        """Store a sprite strip made by ``sprite_sheet`` (its four return values) under ``key``."""
        self.written += 1
        if self.embed:
            return Sprite("data:image/webp;base64," + base64.b64encode(data).decode(), frames, width, height)
        filename = f"{self._name(key)}-{frames}x{width}x{height}.webp"
        write_atomic(self.media_dir / filename, data)
        self.used.add(filename)
        return Sprite(f"{self.media_url}/{filename}", frames, width, height)

    def prune(self) -> int:
        """Delete previews in ``media_dir`` that this run did not use; returns how many."""
        if self.embed or not self.media_dir.is_dir():
            return 0
        stale = [p for p in self.media_dir.glob("*.webp") if p.name not in self.used]
        for path in stale:
            path.unlink()
        return len(stale)
