"""Downloads with bounds: every fetch from the network has a timeout and a size limit.

- ``download`` streams one URL to a file: refused when the server announces more than
  ``max_download_mb`` or sends more, given up when a read stalls ``stall_timeout_s`` or the
  whole transfer passes ``download_timeout_s``; the file appears only when complete. Only
  http(s) URLs are fetched.
- ``download_with_links`` fetches one file and the files it links beside it (a glTF's buffers
  and images, an OBJ's materials and textures) within one budget; a GitHub asset is fetched
  this way at its commit (``raw.githubusercontent.com``), never by cloning the repository, so
  no ``git`` child process exists to outlive its worker.

Errors are FetchErrors whose ``kind`` is the row's ``error_kind``: ``download_too_large``,
``timeout`` (may succeed later) or ``http_error`` (retryable for 429 and 5xx only).
"""

from __future__ import annotations

import posixpath
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from d4d.curation.sources.base import FetchError
from d4d.files import replace_with
from d4d.rendering.linked_files import linked_references
from d4d.untrusted import contained_path, printable

CHUNK_BYTES = 1 << 20
#: Linked files followed from one asset at most (a file listing more is cut off there).
MAX_LINKED_FILES = 1000


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds of one asset's download."""

    max_download_mb: float = 512.0
    """Larger downloads (the asset with the files it links) fail with ``download_too_large``."""
    stall_timeout_s: float = 60.0
    """A connection or read that stalls this long fails with ``timeout``."""
    download_timeout_s: float = 900.0
    """A whole download (a git fetch included) that takes longer fails with ``timeout``."""
    max_annotation_mb: float = 8192.0
    """Larger annotation files (Objaverse metadata and parquet tables) are refused."""
    annotation_timeout_s: float = 7200.0
    """An annotation file whose download takes longer fails with ``timeout``."""

    def __post_init__(self) -> None:
        for name in ("max_download_mb", "stall_timeout_s", "download_timeout_s", "max_annotation_mb", "annotation_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"download limits: {name} must be > 0, got {getattr(self, name)}")

    def for_annotations(self) -> DownloadLimits:
        """The bounds of an annotation file's download."""
        return replace(self, max_download_mb=self.max_annotation_mb, download_timeout_s=self.annotation_timeout_s)


class DownloadTooLarge(FetchError):
    """The asset with its linked files exceeds ``max_download_mb``."""

    kind = "download_too_large"
    retryable = False


class DownloadTimeout(FetchError):
    """A stalled connection or a download past its total time bound."""

    kind = "timeout"
    retryable = True


class HTTPRefused(FetchError):
    """The server answered with an HTTP error; retryable for 429 and 5xx only."""

    kind = "http_error"

    def __init__(self, url: str, status: int, message: str):
        super().__init__(f"{url}: HTTP {status} {message}")
        self.status = status
        self.retryable = status == 429 or status >= 500


def download(url: str, dest: Path, limits: DownloadLimits = DownloadLimits()) -> Path:
    """Stream ``url`` to ``dest`` (atomically) within ``limits``; FetchError naming the URL otherwise."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"{printable(url)}: only http and https downloads are made")
    max_bytes = int(limits.max_download_mb * 1e6)
    deadline = time.monotonic() + limits.download_timeout_s

    def write(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=limits.stall_timeout_s) as response, open(tmp, "wb") as out:
                announced = response.headers.get("Content-Length")
                if announced is not None and announced.isdigit() and int(announced) > max_bytes:
                    raise DownloadTooLarge(f"{printable(url)}: {int(announced) / 1e6:.1f} MB announced (limit {limits.max_download_mb:g} MB)")
                received = 0
                while block := response.read(CHUNK_BYTES):
                    received += len(block)
                    if received > max_bytes:
                        raise DownloadTooLarge(f"{printable(url)}: more than {limits.max_download_mb:g} MB sent")
                    if time.monotonic() > deadline:
                        raise DownloadTimeout(f"{printable(url)}: not complete after {limits.download_timeout_s:g} s")
                    out.write(block)
        except TimeoutError as exc:
            raise DownloadTimeout(f"{printable(url)}: no data for {limits.stall_timeout_s:g} s ({exc})") from None
        except urllib.error.HTTPError as exc:
            raise HTTPRefused(printable(url), exc.code, str(exc.reason)) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise DownloadTimeout(f"{printable(url)}: no answer within {limits.stall_timeout_s:g} s") from None
            raise FetchError(f"{printable(url)}: {exc.reason}") from None
        except OSError as exc:
            raise FetchError(f"{printable(url)}: {exc}") from None

    return replace_with(dest, write)


def download_with_links(base_url: str, path: str, dest_root: Path, limits: DownloadLimits = DownloadLimits()) -> Path:
    """Download ``<base_url>/<path>`` to ``dest_root/<path>``, then the files it links (glTF
    buffers and images, OBJ material libraries and their textures) that lie beside it under
    ``base_url``, within one budget of ``limits``. A linked file the server lacks is skipped (the
    importer reports it). Returns the file's local path."""
    deadline = time.monotonic() + limits.download_timeout_s
    budget = int(limits.max_download_mb * 1e6)
    what = f"{printable(base_url)}/{printable(path)}"
    written: dict[str, Path] = {}
    wanted, seen = [path], {path}
    while wanted:
        current = wanted.pop(0)
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise DownloadTimeout(f"{what}: not complete after {limits.download_timeout_s:g} s with the files it links")
        bounds = replace(limits, max_download_mb=max(budget, 1) / 1e6, download_timeout_s=remaining_s)
        try:
            local = download(f"{base_url.rstrip('/')}/{urllib.parse.quote(current)}", contained_path(dest_root, current, "file"), bounds)
        except HTTPRefused as exc:
            if current == path or exc.retryable:
                raise
            continue
        except DownloadTooLarge:
            raise DownloadTooLarge(f"{what}: more than {limits.max_download_mb:g} MB with the files it links") from None
        written[current] = local
        budget -= local.stat().st_size
        for linked in linked_paths(current, local):
            if linked not in seen and len(seen) < MAX_LINKED_FILES:
                seen.add(linked)
                wanted.append(linked)
    return written[path]


def linked_paths(path: str, local: Path) -> list[str]:
    """Paths (relative to the same root as ``path``) of the files ``local`` links that stay
    under that root; URLs, absolute paths and paths that climb out are left out."""
    found = []
    for reference in linked_references(local):
        if "://" in reference or reference.startswith("/") or reference.startswith("data:"):
            continue
        candidate = posixpath.normpath(posixpath.join(posixpath.dirname(path), urllib.parse.unquote(reference)))
        if candidate != ".." and not candidate.startswith("../") and not candidate.startswith("/"):
            found.append(candidate)
    return found
