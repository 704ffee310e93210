"""Every node checked before it takes work: it must see OUT and the source as the driver does.

A node set up differently from the driver (no Objaverse cache, its own copy of the asset folder
with other bytes, an OUT that is not the shared one) would fail every asset it takes, or
write renders no shard writer finds. So before a worker takes an asset it checks its node
against a ``NodeProbe`` the driver made:

- OUT: the driver writes a random token into OUT's local folder (``TOKEN_NAME``); the worker
  must read the same token there;
- the source: up to ``PROBE_RECORDS`` of the run's records, the smallest the driver itself
  could fetch, must fetch on the node too (the source's own check: the sha256 the listing
  recorded, the cache entry, a complete .glb). Content, not modification times, decides
  (``LocalFolderSource.fetch_many``). Sources that download (``--online``) are not probed:
  each node downloads what it lacks.

A worker whose node fails says why (``check_node``); the runner then places no worker on that
node (pipelines.runner). How many records are probed is our choice; the paper's pipeline
ran on one machine.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from d4d.curation.sources import FetchError
from d4d.files import write_bytes_atomic
from d4d.untrusted import printable

#: The driver's token file in OUT's local folder.
TOKEN_NAME = ".node-check"
#: Records each worker fetches before it takes work.
PROBE_RECORDS = 2
#: Records the driver tries when choosing the probe (some may be broken assets).
PROBE_CANDIDATES = 8


@dataclass(frozen=True)
class NodeProbe:
    """What a worker checks on its node.

    Attributes:
        token_path: the token file the driver wrote in OUT's local folder.
        token: its content.
        records: source records the driver fetched itself (``SourceRecord``).
    """

    token_path: str
    token: str
    records: tuple = ()


def make_probe(root: Path, records: Iterable, fetch: Callable | None, count: int = PROBE_RECORDS) -> NodeProbe:
    """Write the token into ``root`` and choose the probe records: the smallest of ``records``
    (curatable ones; their listed size, when the source knows it) that ``fetch`` (the driver's
    source's ``fetch``) accepts, at most ``PROBE_CANDIDATES`` tried; none when ``fetch`` is None."""
    token = secrets.token_hex(16)
    path = write_bytes_atomic(Path(root) / TOKEN_NAME, token.encode())
    chosen = []
    if fetch is not None:
        candidates = sorted((r for r in records if r.problem is None), key=lambda r: r.metadata.get("size_bytes") or 0)
        for record in candidates[:PROBE_CANDIDATES]:
            try:
                fetch(record)
            except FetchError:
                continue  # a broken asset: its own row will say so; it says nothing about nodes
            chosen.append(record)
            if len(chosen) == count:
                break
    return NodeProbe(str(path), token, tuple(chosen))


def check_node(probe: NodeProbe, fetch: Callable | None) -> str | None:
    """On a worker: None when its node sees OUT and the probe records as the driver does, else
    one line saying what differs. ``fetch``: the worker's source's ``fetch`` (None: a chain
    without a fetch step checks OUT only)."""
    try:
        seen = Path(probe.token_path).read_text()
    except OSError as exc:
        return f"OUT is not visible here ({probe.token_path}: {exc.strerror or exc}); OUT must be a folder every node shares"
    if seen != probe.token:
        return f"OUT here is another folder than the driver's ({probe.token_path} has another token); OUT must be a folder every node shares"
    for record in probe.records if fetch is not None else ():
        try:
            fetch(record)
        except FetchError as exc:
            return f"the source differs from the driver's: {printable(record.file_identifier, 120)}: {exc.kind}: {printable(str(exc), 200)}"
    return None
