"""Which asset source a curation run reads: parsed from ``--source``, rebuilt on every worker.

    local:PATH              every 3D file under PATH (curation.sources.LocalFolderSource)
    builtin                 d4d's built-in animated assets, generated into OUT/assets first
    objaverse[:BASE_DIR]    Objaverse 1.0 from the objaverse cache (default ~/.objaverse)
    objaverse-xl[:BASE_DIR] Objaverse-XL from the same cache

The Objaverse sources are offline by default (nothing touches the network; what the cache
lacks is reported); ``online`` downloads what the cache lacks, within ``DownloadLimits``. A ``SourceSpec`` is
small and picklable: the driver lists records with it, and every worker opens its own source
from it to fetch files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from d4d.curation.sources.download import DownloadLimits
from d4d.curation.sources.objaverse_xl import XLEndpoints
from d4d.rendering.api import Limits
from d4d.storage import FOLDED_URI, is_uri

KINDS = ("local", "builtin", "objaverse", "objaverse-xl")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``.

    Attributes:
        kind: one of KINDS.
        path: the folder (local, builtin: where the built-ins are generated) or the objaverse
            download dir (None: ``~/.objaverse``).
        online: Objaverse only: download what the cache lacks.
        id_list: Objaverse only: keep only the ids in this file (curation.sources.load_id_list:
            1.0 uids for objaverse, sha256 / fileIdentifier / save_uid for objaverse-xl).
        limits: Objaverse online: the bounds of every download.
        endpoints: Objaverse online: where files are downloaded from.
        max_file_mb: local and builtin: larger files are ``too_large`` rows, never read or
            hashed (the render's ``Limits.max_file_mb``).
    """

    kind: str
    path: str | None = None
    online: bool = False
    id_list: str | None = None
    limits: DownloadLimits = DownloadLimits()
    endpoints: XLEndpoints = XLEndpoints()
    max_file_mb: float = Limits.max_file_mb


def parse_source(text: str, out_dir: Path, online: bool = False, id_list: str | None = None,
                 limits: DownloadLimits = DownloadLimits(), max_file_mb: float = Limits.max_file_mb) -> SourceSpec:
    """``--source`` text -> SourceSpec. Raises ValueError naming the text and what is valid."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise ValueError(f"--source {text!r}: unknown kind {kind!r}; use local:PATH, builtin, objaverse[:DIR] or objaverse-xl[:DIR]")
    if (online or id_list) and kind not in ("objaverse", "objaverse-xl"):
        raise ValueError(f"--online / --id-list apply to objaverse sources, not {kind}")
    if is_uri(rest) or FOLDED_URI.match(rest):
        raise ValueError(f"--source {text!r}: sources read local folders and caches, not URIs; copy the assets "
                         "(or the objaverse cache) to a local or shared folder first. Only --out may be a URI")
    if kind == "local":
        if not rest:
            raise ValueError(f"--source {text!r}: local needs a folder, e.g. local:/data/assets")
        if not Path(rest).expanduser().is_dir():
            raise ValueError(f"--source {text!r}: {rest} is not a folder")
        return SourceSpec("local", str(Path(rest).expanduser().resolve()), max_file_mb=max_file_mb)
    if kind == "builtin":
        if rest:
            raise ValueError(f"--source {text!r}: builtin takes no path (assets are generated into OUT/assets)")
        return SourceSpec("builtin", str((out_dir / "assets").resolve()), max_file_mb=max_file_mb)
    return SourceSpec(kind, str(Path(rest).expanduser()) if rest else None, online=online, id_list=id_list, limits=limits)


def open_source(spec: SourceSpec, digest_cache: Path | None = None):
    """The curation source object for ``spec`` (records(), fetch(), missing); a local folder
    reuses the digests of unchanged files recorded in ``digest_cache`` (the driver's listing)."""
    from d4d.curation.sources import LocalFolderSource, ObjaverseV1Source, ObjaverseXLSource, V1Filter, XLFilter, load_id_list

    if spec.kind in ("local", "builtin"):
        return LocalFolderSource(spec.path, max_file_mb=spec.max_file_mb, digest_cache=digest_cache)
    base = spec.path or "~/.objaverse"
    ids = frozenset(load_id_list(spec.id_list)) if spec.id_list else None
    if spec.kind == "objaverse":
        return ObjaverseV1Source(base, V1Filter(uids=ids), offline=not spec.online, limits=spec.limits, base_url=spec.endpoints.sketchfab)
    return ObjaverseXLSource(base, XLFilter(ids=ids), offline=not spec.online, limits=spec.limits, endpoints=spec.endpoints)


def prepare_source(spec: SourceSpec) -> None:
    """Driver-side preparation: generate the built-in assets (needs bpy) for ``builtin``."""
    if spec.kind == "builtin":
        from d4d.rendering.builtin_assets import ensure_builtin_assets

        ensure_builtin_assets(spec.path)
