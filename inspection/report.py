"""write_report(path, out): inspect a curation output, a training run, an evaluation, a reconstruction or a d4d-sample output as one page.

    from d4d.inspection.report import write_report
    page = write_report("runs/curate-001", "reports/curate.html")

The page is ``out`` (an ``.html`` path; any other path is a folder that gets ``index.html``);
its previews go to ``<page stem>_files/`` next to it, or into the page itself as data URIs
with ``ReportConfig(embed=True)``. Previews from an earlier report at the same place are reused when their
source is unchanged, and ones no longer used are deleted. The page is written to a temporary
file and moved into place, so a reader never sees half a page.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from d4d.inspection.curation_data import InspectError
from d4d.inspection.curation_view import curation_report
from d4d.inspection.detect import KINDS, detect_kind
from d4d.inspection.evaluation_view import evaluation_report
from d4d.inspection.media import PREVIEW_SIZE, MediaStore, write_atomic
from d4d.inspection.model import Report
from d4d.inspection.page import render_html
from d4d.inspection.reconstruction_view import reconstruction_report
from d4d.inspection.sample_view import sample_report
from d4d.inspection.training_view import training_report

log = logging.getLogger("d4d.inspect")


def page_paths(out: str | Path) -> tuple[Path, Path]:
    """(page file, media folder) for ``out``."""
    out = Path(out)
    page = out if out.suffix.lower() in (".html", ".htm") else out / "index.html"
    return page, page.with_name(f"{page.stem}_files")


def build_report(path: str | Path, store: MediaStore, kind: str | None = None, curation_config: dict | None = None,
                 workers: int = 1, per_page: int = 50) -> Report:
    """The Report of ``path`` (kind detected from the layout unless given)."""
    path = Path(path)
    kind = kind or detect_kind(path)
    if kind not in KINDS:
        raise InspectError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "curation":
        report = curation_report(path, store, curation_config, workers)
    elif kind == "training":
        report = training_report(path, store)
    elif kind == "evaluation":
        report = evaluation_report(path, store)
    elif kind == "sample":
        report = sample_report(path, store, workers)
    else:
        report = reconstruction_report(path, store, workers)
    report.per_page = per_page
    return report


@dataclass(frozen=True)
class ReportConfig:
    """How a report is made (d4d-inspect's options)."""

    kind: Literal["curation", "training", "evaluation", "reconstruction", "sample"] | None = None
    """What PATH is; none: detected from its layout."""
    embed: bool = False
    """Put previews into the page as data URIs (a single file; for small inputs)."""
    workers: int | None = None
    """Processes decoding and encoding previews; none: the CPU count, at most 8."""
    per_page: int = 50
    """Cards per page."""
    preview_size: int = PREVIEW_SIZE
    """Preview height, pixels."""

    def __post_init__(self) -> None:
        if self.per_page < 1 or self.preview_size < 8 or (self.workers is not None and self.workers < 1):
            raise ValueError(f"per_page and workers must be >= 1, preview_size >= 8; got {self.per_page}, {self.workers}, {self.preview_size}")


def write_report(path: str | Path, out: str | Path, config: ReportConfig = ReportConfig(), curation_config: dict | None = None) -> Path:
    """Inspect ``path`` and write the page; returns the page's path.

    Args:
        path: a curation output, a training run directory, a d4d-eval output, a reconstruction output
            or a d4d-sample output (with its comparison.json and beside_render.mp4, when there).
        out: the page (``*.html``) or a folder for ``index.html``.
        config: how (kind, previews, paging).
        curation_config: CurationConfig fields used when render directories are decided here.
    """
    start = time.perf_counter()
    page, media_dir = page_paths(out)
    workers = config.workers if config.workers is not None else min(os.cpu_count() or 1, 8)
    store = MediaStore(media_dir, media_dir.name, embed=config.embed, size=config.preview_size)
    report = build_report(path, store, config.kind, curation_config, workers, config.per_page)
    write_atomic(page, render_html(report).encode())
    pruned = store.prune()
    log.info("%s: %s report of %d items, %d previews written, %d reused, %d stale removed, %.1f s",
             page, report.kind, len(report.items), store.written, store.reused, pruned, time.perf_counter() - start)
    return page
