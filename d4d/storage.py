"""Where d4d reads and writes: a local path or a URI (``s3://``, ``gs://``, ``file://``, ...).

A location is either a plain path (a ``Path``: local, handled as before) or a URI, kept as
the string given (``Path`` would fold its ``//``). URIs go through pyarrow.fs
(``FileSystem.from_uri``): ``s3://BUCKET/PREFIX`` (S3 and S3-compatible stores), ``gs://``
(Google Cloud Storage), ``abfs://`` (Azure), ``hdfs://``; ``file:///PATH`` is a plain path.
Options may ride in the URI's query (``s3://b/x?region=eu-west-1&endpoint_override=...``).
Credentials and endpoints come from the standard environment: for S3, ``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY`` (or a profile), ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL``
or ``AWS_ENDPOINT_URL_S3`` to point at MinIO, moto or another S3-compatible server
(pyarrow's S3 client honours both; the filesystem it builds carries the endpoint along
when pickled to Ray workers).

A location d4d cannot use is refused with one line (ValueError naming it and the reason):
an unknown scheme, a scheme whose filesystem is not available here, a URI with a slash
missing (``s3:/b/x``, what ``Path("s3://b/x")`` makes), a missing bucket. Nothing is ever
written to a local path made from a URI.

Object stores have no rename and no append, but a single object appears whole when its
upload completes: d4d writes a file locally and ``upload``s it (an atomic publish), and keeps
append-only files (journals, logs) on local disk (docs/pipelines.md, "Storage").
"""

from __future__ import annotations

import argparse
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

#: ``scheme://rest``; a scheme is two or more characters (``C:/`` is not one).
URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://(.*)$", re.DOTALL)
#: A URI that lost a slash (``Path("s3://b")`` is ``s3:/b``).
FOLDED_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)")
#: Bytes per write when uploading or downloading.
CHUNK_BYTES = 8 << 20


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` is a URI string (a ``Path`` never is)."""
    return isinstance(location, str) and URI.match(location) is not None


def scheme(uri: str) -> str:
    return URI.match(uri).group(1).lower()


def location(text: str | Path, what: str = "location") -> Path | str:
    """A path or URI as given on a command line: a ``Path`` for a plain path or a ``file://``
    URI, the URI string (checked: its filesystem is available) otherwise. ValueError, one
    line naming ``what`` and the text, for a URI d4d cannot use."""
    if isinstance(text, Path):
        return text
    if FOLDED_URI.match(text):
        meant = FOLDED_URI.sub(r"\1://", text)
        raise ValueError(f"{_named(what, text)}: looks like a URI with a slash missing (meant {meant}?)")
    if not is_uri(text):
        return Path(text)
    if scheme(text) == "file":
        return Path(resolve(text, what)[1])
    resolve(text, what)
    return text


def location_arg(text: str) -> Path | str:
    """``location`` as an argparse ``type``: a refused URI is argparse's one-line error."""
    try:
        return location(text, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _named(what: str, text: str) -> str:
    return f"{what} {text}" if what else text


def resolve(uri: str, what: str = "location") -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) of a URI; ValueError, one line, when it cannot be used."""
    if not is_uri(uri):
        raise ValueError(f"{_named(what, uri)}: not a URI")
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unrecognized filesystem type" in first:
            raise ValueError(f"{_named(what, uri)}: unknown URI scheme {scheme(uri)!r} (pyarrow.fs reads s3://, gs://, abfs://, hdfs://, file://)") from None
        raise ValueError(f"{_named(what, uri)}: filesystem unavailable for {scheme(uri)}:// ({first[:200]})") from None


def join(uri: str, *names: str) -> str:
    """``uri`` with path parts appended (before its ``?query``, if any)."""
    base, query = (uri.split("?", 1) + [""])[:2]
    joined = "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])
    return f"{joined}?{query}" if query else joined


def file_type(uri: str) -> pafs.FileType:
    """What is at ``uri`` (File, Directory or NotFound; an object store's prefix is a Directory).
    ValueError naming a missing bucket or an unreadable location."""
    fs, path = resolve(uri)
    try:
        found = fs.get_file_info(path).type
    except OSError as exc:
        raise ValueError(f"{uri}: cannot be read ({str(exc).strip().splitlines()[0][:200]})") from None
    if found == pafs.FileType.NotFound and "/" in path.strip("/") and scheme(uri) in ("s3", "gs", "gcs"):
        bucket = path.strip("/").split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ValueError(f"{uri}: no such bucket {bucket!r}")
    return found


def size(location: str | Path) -> int:
    """Bytes of the file at a path or URI."""
    if not is_uri(location):
        return Path(location).stat().st_size
    fs, path = resolve(location)
    return fs.get_file_info(path).size


def list_names(uri: str) -> list[str]:
    """Names of the files directly under the directory (or prefix) ``uri``, sorted.
    FileNotFoundError naming it when there is nothing there; ValueError when it cannot be read."""
    found = file_type(uri)
    if found != pafs.FileType.Directory:
        raise FileNotFoundError(f"{uri}: no such directory")
    fs, path = resolve(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as exc:
        raise ValueError(f"{uri}: cannot be listed ({str(exc).strip().splitlines()[0][:200]})") from None
    return sorted(info.base_name for info in infos if info.type == pafs.FileType.File)


def upload(local: str | Path, uri: str) -> str:
    """Copy the local file ``local`` to ``uri``; returns ``uri``. On an object store the object
    appears only once its upload completes (whole or not at all), so this is an atomic publish."""
    fs, path = resolve(uri)
    with open(local, "rb") as source, fs.open_output_stream(path) as sink:
        while block := source.read(CHUNK_BYTES):
            sink.write(block)
    return uri


def check_writable(uri: str, what: str = "location") -> None:
    """Prove d4d can write under ``uri`` before a run relies on it: a small hidden object is
    written and removed. ValueError, one line, naming it and the reason (missing bucket, no
    permission, unreachable endpoint)."""
    probe = join(uri, f".d4d-write-check-{uuid.uuid4().hex[:12]}")
    fs, path = resolve(probe, what)
    try:
        file_type(uri)
        with fs.open_output_stream(path) as sink:
            sink.write(b"d4d")
        fs.delete_file(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise ValueError(f"{_named(what, uri)}: cannot be written ({reason.removeprefix(uri + ': ')})") from None
