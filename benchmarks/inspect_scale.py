"""d4d-inspect at scale: report time (first run and rerun), page size, and headless Chromium
load time of a large curation report, against Chromium loading an empty page.

    python -m benchmarks.inspect_scale                          # 2,000 decision rows, 100 with previews
    python -m benchmarks.inspect_scale --rows 2000 --rendered 500 --workers 2

The input is a curation output laid out as d4d-curate writes it, built with the real components:
``--rendered`` synthetic render directories (``d4d.testing.shards_helpers.make_shard_render``: a
shaded, striped ball drawn with numpy, written through the render contract; 24 frames, 64 px,
three videos) decided with ``curation.procedure.decide_render`` and written to shards with
``shards.writer.write_shards`` (the report decodes their VP9 for previews), plus render-free
pre-pass decisions up to ``--rows``, the tables written by ``pipelines.tables.write_tables``.
Building the input is not timed.

Measured, in one run:
- ``inspection.report.write_report``: first run (every preview decoded and encoded) and rerun
  (previews reused), wall seconds; page HTML bytes and preview bytes;
- headless Chromium (the flags of tests/test_inspect.py, ``--dump-dom``, 5 s of virtual time):
  wall seconds from launch to exit for the report at page 1 and at ``#page=LAST``; the page's
  status marker (``data-ready``, ``data-errors``, ``data-cards``) is checked in the dumped DOM.
  The reference is the same command on an empty local HTML page (browser start-up and exit),
  interleaved with the report loads, best and median of ``--repeats``.
Results: printed as a Markdown table and written to benchmarks/results/inspect_scale.json;
see benchmarks/INSPECT_RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from d4d.curation.config import CurationConfig
from d4d.curation.decision import decide
from d4d.curation.procedure import decide_render
from d4d.inspection.browser import CHROMIUM, load_page
from d4d.inspection.report import ReportConfig, page_paths, write_report
from d4d.pipelines.manifest import ManifestState
from d4d.pipelines.tables import DecisionRows, run_stats, write_tables
from d4d.rendering.contract import AssetInfo, load_render, read_asset
from d4d.shards.from_render import render_uid
from d4d.shards.writer import write_shards
from d4d.testing.shards_helpers import make_shard_render

RESULTS = Path(__file__).parent / "results" / "inspect_scale.json"


# ---------------------------------------------------------------- input: a synthetic curation output


def result_event(uid: str, name: str, decision: dict, stage: str, render_dir: Path | None, timings: dict, caption: str | None) -> dict:
    """A d4d-curate manifest result event (the fields pipelines/tables.py ``result_event`` writes)."""
    return {"event": "result", "uid": uid, "name": name, "source": "builtin", "file_identifier": f"{name}.glb", "local_path": None,
            "sha256": None, "license": None, "caption": caption, "decision": decision["decision"], "reason": decision["reason"],
            "detail": decision["detail"], "stage": stage, "error_kind": decision["measures"].get("error_kind"), "attempts": 1,
            "render_dir": None if render_dir is None else str(render_dir), "worker": "w0", "measures": decision["measures"],
            "timings": timings, "time": time.time()}


def curation_output(root: Path, rows: int, rendered: int, frames: int, size: int) -> dict:
    """decisions.parquet + stats.json + shards/ under ``root``: ``rendered`` assets with renders (kept ones
    in shards, rejected ones linking their render directory), the rest render-free pre-pass rejects and
    failures (as d4d-curate, whose pre-pass keeps go on to be rendered)."""
    state, kept, captions, counts, rules = ManifestState(rows=DecisionRows()), [], {}, {}, CurationConfig()
    started = time.time()
    for i in range(rendered):
        render_dir = make_shard_render(root / "renders", f"bench{i:05d}", frames=frames, size=size)
        uid = render_uid(render_dir, read_asset(render_dir))
        decision = decide_render(load_render(render_dir), rules).to_json()
        captions[uid] = f"a striped ball rolling to the right, benchmark asset {i}"
        stage = "motion" if decision["decision"] == "keep" else "quality"
        state.apply(result_event(uid, render_dir.name, decision, stage, render_dir, {"fetch": 0.01, "prepass": 5.5, "quality": 1.0, "motion": 0.001},
                                 captions[uid]))
        counts[decision["decision"]] = counts.get(decision["decision"], 0) + 1
        if decision["decision"] == "keep":
            kept.append(render_dir)
    for i in range(rows - rendered):
        asset = ({"error": {"kind": "import_failed", "reason": "truncated glTF", "asset": f"{i}.glb"}} if i % 10 == 0
                 else {"animation": {"has_animation": i % 2 == 0, "frame_range": [1, 4]}})  # failed, no_animation, too_short
        decision = decide(AssetInfo.parse(asset, "benchmark asset.json"), None, rules).to_json()
        state.apply(result_event(f"{i:032x}", f"a{i}", decision, "prepass", None, {"fetch": 0.01, "precheck": 0.2}, None))
        counts[decision["decision"]] = counts.get(decision["decision"], 0) + 1
    report = write_shards(kept, root / "shards", captions=captions)
    if report.failed:
        raise SystemExit(f"write_shards failed: {report.failed}")
    state.apply({"event": "sharded", "uids": [render_uid(d, read_asset(d)) for d in kept]})
    write_tables(root, state, run_stats(state, len(state.results), started, time.time() - started, 1))
    return {"rows": rows, "rendered": rendered, "in_shards": len(kept), "decisions": counts}


# ---------------------------------------------------------------- Chromium


def chromium_load(url: str, profile: Path) -> tuple[float, dict | None]:
    """Wall seconds from launching headless Chromium on ``url`` to its exit, and the page's status marker."""
    try:
        return load_page(url, profile)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="decision rows in decisions.parquet (default 2000)")
    parser.add_argument("--rendered", type=int, default=100, help="of which assets with renders and previews (default 100)")
    parser.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    parser.add_argument("--size", type=int, default=64, help="render size, pixels (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="write_report preview workers (default 2)")
    parser.add_argument("--per-page", type=int, default=50, help="cards per page (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="Chromium loads of each page, interleaved (default 5)")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 0 <= args.rendered <= args.rows:
        parser.error("--rendered must be in 0..--rows")
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is not installed")

    with tempfile.TemporaryDirectory(prefix="d4d-bench-inspect-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = work / "run"
        run.mkdir()
        t0 = time.perf_counter()
        built = curation_output(run, args.rows, args.rendered, args.frames, args.size)
        build_s = time.perf_counter() - t0
        print(f"input: {built}, built in {build_s:.1f} s (not timed below)")

        out = work / "report" / "report.html"
        t0 = time.perf_counter()
        page = write_report(run, out, ReportConfig(workers=args.workers, per_page=args.per_page))
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_report(run, out, ReportConfig(workers=args.workers, per_page=args.per_page))
        rerun_s = time.perf_counter() - t0
        _, media_dir = page_paths(out)
        html_bytes, preview_bytes = page.stat().st_size, folder_bytes(media_dir)
        previews = sum(1 for _ in media_dir.iterdir())
        pages = max(1, math.ceil(args.rows / args.per_page))

        empty = work / "empty.html"
        empty.write_text("<!doctype html><html><head><meta charset=utf-8><title>empty</title></head><body></body></html>")
        urls = {"empty page (reference)": empty.as_uri(), "report, page 1": page.as_uri(), f"report, #page={pages}": page.as_uri() + f"#page={pages}"}
        chromium_load(empty.as_uri(), work / "chromium-profile")  # warm the disk cache and create the profile, untimed
        walls: dict[str, list[float]] = {name: [] for name in urls}
        statuses: dict[str, dict | None] = {}
        for _ in range(args.repeats):
            for name, url in urls.items():
                wall, status = chromium_load(url, work / "chromium-profile")
                walls[name].append(wall)
                statuses[name] = status
        for name, status in statuses.items():
            if name.startswith("report") and (status is None or status.get("ready") != "1" or status.get("errors")):
                raise SystemExit(f"{name}: page not ready or has errors: {status}")

    ref = walls["empty page (reference)"]
    ref_best, ref_median = min(ref), statistics.median(ref)
    browser = {}
    for name, values in walls.items():
        best, median = min(values), statistics.median(values)
        status = statuses[name] or {}
        browser[name] = {"best_s": best, "median_s": median, "all_s": values, "best_over_reference": best / ref_best,
                         "median_over_reference": median / ref_median, "page_own_median_s": median - ref_median,
                         "status": {k: status.get(k) for k in ("ready", "page", "pages", "items", "cards", "first-card", "sprites",
                                                               "sprites-loaded", "plots", "errors", "layout")}}
    load = os.getloadavg()
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} at the end",
        "command": " ".join(["python -m benchmarks.inspect_scale", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "input": built, "input_build_s": build_s,
        "write_report": {"first_s": first_s, "rerun_s": rerun_s, "first_over_rerun": first_s / rerun_s,
                         "first_s_per_preview": first_s / max(previews, 1), "html_bytes": html_bytes, "previews": previews,
                         "preview_bytes": preview_bytes},
        "chromium": browser,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{results['date']}, {results['machine']}; {args.rows} decision rows, {built['in_shards']} in shards with previews "
          f"({args.frames} frames, {args.size} px), {args.workers} workers\n")
    print("| write_report | seconds | vs rerun |\n|---|---|---|")
    print(f"| first run ({previews} previews made) | {first_s:.2f} | {first_s / rerun_s:.0f}x |")
    print(f"| rerun (previews reused; reference) | {rerun_s:.2f} | 1x |")
    print(f"\npage: {html_bytes / 1e3:.0f} KB HTML + {preview_bytes / 1e6:.2f} MB previews ({previews} WebP strips)\n")
    print(f"| headless Chromium, launch to exit ({args.repeats} loads each, interleaved) | best s | median s | median vs reference | page's own (median - reference) | cards | sprites loaded | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in browser.items():
        s = row["status"]
        print(f"| {name} | {row['best_s']:.2f} | {row['median_s']:.2f} | {row['median_over_reference']:.2f}x | "
              f"{row['page_own_median_s']:+.2f} s | {s['cards'] or '-'} | {s['sprites-loaded'] or '-'} | {s['errors'] or '-'} |")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
