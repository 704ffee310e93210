"""Where a curation run writes when its OUT is a URI (docs/pipeline.md, "Object storage").

An object store takes whole objects: no append, no rename, no lock. So with ``--out
s3://bucket/run`` the shards (``s3://bucket/run/shards/part-*.parquet``, uploaded whole by
shards.remote) and the tables (``decisions.parquet``, ``failures.parquet``, ``stats.json``,
uploaded after each local rewrite) go to the URI, while everything appended or scratched
stays in a local work folder: the journal (``manifest.jsonl``, fsync'd per event), the lock,
the logs, the scratch and pre-pass renders, the kept quality renders waiting for the shard
writer, the shards being built, and the embedded Ray's session record. Reruns resume from the
work folder's journal; a rerun without it (another machine) redoes the assets, and the shard
writer skips every uid already under the URI, so no row is written twice.

The work folder is ``--work-dir``, by default ``~/.cache/d4d/curate/<scheme>/<bucket>/<prefix>``
(``D4D_WORK_ROOT`` replaces ``~/.cache/d4d/curate``). On a multi-node cluster it must be a folder
every node sees, as a local OUT must. A work folder remembers its URI and refuses another.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from d4d import storage
from d4d.files import write_bytes_atomic
from d4d.pipelines.space import OutOfSpace

#: The tables a run rewrites in its folder, uploaded after each rewrite.
TABLES = ("decisions.parquet", "failures.parquet", "stats.json")
#: The file in a work folder naming the URI it serves.
BINDING = "out-uri.txt"


def default_work_dir(uri: str) -> Path:
    """``$D4D_WORK_ROOT`` (default ``~/.cache/d4d/curate``) / scheme / the URI's path, each part
    made a safe folder name."""
    base = Path(os.environ.get("D4D_WORK_ROOT") or "~/.cache/d4d/curate").expanduser()
    scheme, rest = uri.split("://", 1)
    parts = [re.sub(r"[^A-Za-z0-9._=+-]", "_", p).lstrip(".") or "_" for p in rest.split("?", 1)[0].split("/") if p]
    return base.joinpath(scheme.lower(), *parts)


def local_folder(out: str | Path, work_dir: str | Path | None) -> Path:
    """The run's local folder: OUT itself when it is a path; for a URI, ``work_dir`` or the default."""
    if not storage.is_uri(out):
        return Path(out)
    return Path(work_dir).expanduser() if work_dir is not None else default_work_dir(out)


def run_folders(out: str | Path, work_dir: str | Path | None) -> tuple[Path, str | None]:
    """(local folder of the run, OUT's URI or None). A path OUT is the run's folder; a URI OUT
    is checked writable (a small object written and removed) and gets the work folder, which
    is bound to it. ValueError, one line, for an OUT d4d cannot use or a work folder of another URI."""
    if not storage.is_uri(out):
        if work_dir is not None:
            raise ValueError(f"--work-dir applies to an --out URI; with --out {out} everything is written under OUT")
        return Path(out), None
    storage.check_writable(out, "--out")
    root = local_folder(out, work_dir)
    binding = root / BINDING
    if binding.is_file() and binding.read_text().strip() != out:
        raise ValueError(f"--work-dir {root}: holds the run of {binding.read_text().strip()}, not {out}; give another --work-dir")
    if not binding.is_file():
        write_bytes_atomic(binding, f"{out}\n".encode())
    return root, out


def publish_tables(root: Path, uri: str) -> None:
    """Upload the tables of the run folder ``root`` to ``uri`` (each appears whole). OutOfSpace
    (the run stops, exit 3: OUT cannot be written) when an upload fails."""
    for name in TABLES:
        if (root / name).is_file():
            try:
                storage.upload(root / name, storage.join(uri, name))
            except OSError as exc:
                reason = str(exc).strip().splitlines()[0][:200]
                raise OutOfSpace(f"OUT cannot be written: uploading {name} to {uri} failed ({reason}); fix that and rerun the same command to finish") from None
