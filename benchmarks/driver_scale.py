"""The curation driver's own cost per asset at 10K, 100K and 300K journaled results, against
the code before issue 19 (commit ``REFERENCE_COMMIT``, extracted with ``git archive`` and
imported from that tree in its own process), in the same run.

    nice -n 10 python -m benchmarks.driver_scale            # about 6 minutes of CPU
    python -m benchmarks.driver_scale --scales 2000 --assets 50   # a quick look

For each scale N a journal of N finished assets is written (one clip each, 2 KB result
lines like a real run's: the measures of a built-in's pre-pass reject, every eighth a kept
clip, sharded in batches of 8). Then, in a fresh process per tree and scale, on a copy of it:

- ``open_s``: ``Manifest.open`` as a rerun pays it, with the tables' rows (for d4d, from the
  tables the previous run wrote: ``open_whole_s`` is reading the journal whole, without them);
- ``asset_ms``: the driver's bookkeeping per asset with a zero-cost step, over ``--assets``
  more assets: the runner's own dispatch (``SpaceGuard.check``, ``clips_of``, the ``WorkItem``)
  and ``Run._finish`` (journal appends with fsync, ``asset_done``, the progress line), the
  step itself replaced by a clip outcome made up front;
- ``refresh_s``: one ``Run._refresh_tables`` (stats.json, decisions.parquet, failures.parquet);
- ``driver_assets_per_s``: what the driver sustains with a table refresh every
  ``pipelines.console.SUMMARY_EVERY_S`` (30 s): per period of P seconds it spends ``refresh_s`` on the
  tables and the rest on assets (a refresh longer than P runs after every asset);
- ``peak_rss_mb``: the process's peak resident memory (the journal's copy and the records
  included).

Results: benchmarks/results/driver_scale.json and the table printed (benchmarks/DRIVER_RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
#: The tree before issue 19's driver work: the reference.
REFERENCE_COMMIT = "bb430e8"
#: The package folders of the d4d namespace (pyproject's package-dir).
PACKAGES = {"d4d": "d4d", "d4d.rendering": "rendering", "d4d.curation": "curation", "d4d.shards": "shards", "d4d.pipelines": "pipelines",
            "d4d.training": "training", "d4d.reconstruction": "reconstruction", "d4d.inspection": "inspection", "d4d.evaluation": "evaluation"}
#: A pre-pass reject's measures as a real run journals them (the demo's late-start clip).
MEASURES = {"animation_frames": 22.0, "border_max_fraction": 0.0, "coverage_max": 0.15234375, "coverage_median": 0.1376953125, "coverage_min": 0.1201171875,
            "empty_frames": 0, "frames_total": 24, "frames_touching_border": 0, "geometric_max_displacement": 0.5298136603596997,
            "geometric_max_rms": 0.5298136603596997, "geometric_mean_displacement": 0.2631483119464742, "has_animation": True,
            "motion_magnitude": 4542.850006763851, "rules_fired": ["distorted"], "rules_fired_by": ["front_ssim"], "rules_skipped": {}, "size_bytes": 9372,
            "ssim": [0.47277515575307744, 0.23703018378945415], "ssim_frame_pairs": [[0, 2], [0, 4]], "ssim_source": "front"}
TIMINGS = {"fetch": 0.00043807200017909054, "precheck": 1.1525737069987372, "prepass": 0.44019517499873473, "quality": 0.513601683998786}


def uid_of(i: int) -> str:
    return f"{i:064x}"


def write_journal(path: Path, assets: int, folder: str) -> None:
    """A journal of ``assets`` finished assets, one clip each (see the module doc)."""
    with open(path, "w") as out:
        out.write(json.dumps({"event": "run", "assets": assets, "config": {}, "source": {"kind": "local", "path": folder}, "time": 1.0}, sort_keys=True) + "\n")
        kept = []
        for i in range(assets):
            uid = uid_of(i)
            keep = i % 8 == 0
            event = {"event": "result", "uid": uid, "asset_uid": uid, "action": "Action", "window_start_s": 0.0, "window_end_s": 1.0, "window_rank": 0,
                     "name": f"asset{i}.glb", "source": "local", "file_identifier": f"{folder}/asset{i}.glb", "local_path": f"{folder}/asset{i}.glb",
                     "sha256": uid, "license": None, "caption": "a small cube, orange on one side and light blue on the other",
                     "decision": "keep" if keep else "reject", "reason": None if keep else "distorted",
                     "detail": "front SSIM 0-2: 0.473, 0-4: 0.237; any < 0.4", "stage": "quality", "error_kind": None, "attempts": 1,
                     "render_dir": f"{folder}-out/{'renders' if keep else 'previews'}/{uid}", "worker": "node:12345", "measures": MEASURES,
                     "timings": TIMINGS, "time": 2.0 + i * 1e-3}
            out.write(json.dumps(event, sort_keys=True) + "\n")
            out.write(json.dumps({"event": "asset_done", "uid": uid, "clips": [uid], "time": 2.0 + i * 1e-3}, sort_keys=True) + "\n")
            kept += [uid] if keep else []
            if len(kept) == 8:
                out.write(json.dumps({"event": "sharded", "uids": kept, "shards": ["part-00000.parquet"], "time": 2.0 + i * 1e-3}, sort_keys=True) + "\n")
                kept = []


class _Tree(importlib.abc.MetaPathFinder):
    """Imports the d4d namespace's packages from another tree (the reference)."""

    def __init__(self, tree: Path):
        self.tree = tree

    def find_spec(self, name, path, target=None):
        if name not in PACKAGES:
            return None  # submodules are found through their package's __path__
        folder = self.tree / PACKAGES[name]
        return importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])


def prepare(out: Path) -> dict:
    """What a rerun finds: the tables the previous run wrote from ``out``'s journal (d4d only:
    the reference reads its journal whole either way). Returns the time to read it whole."""
    from d4d.pipelines.manifest import Manifest
    from d4d.pipelines.tables import DecisionRows, run_stats, write_tables

    clock = time.perf_counter()
    with Manifest(out, rows=DecisionRows) as manifest:
        whole_s = time.perf_counter() - clock
        write_tables(out, manifest.state, run_stats(manifest.state, len(manifest.state.assets_done), 0.0, 1.0, 1))
    return {"open_whole_s": whole_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(tree: str, out: Path, assets: int) -> dict:
    """In this process: open ``out``'s journal, then ``assets`` more assets and one table refresh."""
    if tree != "d4d":
        sys.meta_path.insert(0, _Tree(Path(tree)))
    from d4d.curation.decision import Decision
    from d4d.curation.procedure import ClipOutcome
    from d4d.curation.sources import SourceRecord
    from d4d.pipelines import runner, tables
    from d4d.pipelines.config import PipelineConfig
    from d4d.pipelines.manifest import Manifest
    from d4d.pipelines.sources import SourceSpec
    from d4d.pipelines.work import WorkItem

    assert Path(runner.__file__).is_relative_to(REPO if tree == "d4d" else Path(tree)), runner.__file__
    done = sum(1 for line in open(out / "manifest.jsonl", "rb") if b'"asset_done"' in line)
    folder = str(out / "assets")
    records = [SourceRecord(uid=uid_of(i), source="local", file_identifier=f"{folder}/asset{i}.glb", sha256=uid_of(i), license=None,
                            metadata={"relative_path": f"asset{i}.glb"}) for i in range(done + assets)]
    rows = getattr(tables, "DecisionRows", None)  # the reference's Manifest keeps whole events itself
    clock, cpu = time.perf_counter(), time.process_time()
    manifest = Manifest(out, rows=rows) if rows else Manifest(out)  # the reference has no rows
    manifest.open()
    open_s, open_cpu_s = time.perf_counter() - clock, time.process_time() - cpu
    rss_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    layout = runner.Layout(out)
    config = PipelineConfig(min_free_gb=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        run = runner.Run(SourceSpec("local", folder), config, layout, manifest, records, {})
    outcomes = {record.uid: ClipOutcome(record.uid, "Action", {"rank": 0, "start_s": 0.0, "end_s": 1.0},
                                        Decision("reject", "distorted", dict(MEASURES), "front SSIM"), "quality", timings=dict(TIMINGS))
                for record, _ in list(run.queue)}
    per_asset = []
    cpu = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        while run.queue:
            clock = time.perf_counter()
            run.space.check()
            record, attempt = run.queue.popleft()
            item = WorkItem(record, caption=None, done_clips=manifest.state.clips_of(record.uid))
            item.judged([outcomes[record.uid]])  # the zero-cost step
            run._finish(item, attempt, "bench:1")
            per_asset.append(time.perf_counter() - clock)
        asset_cpu_s = (time.process_time() - cpu) / len(per_asset)
        clock, cpu = time.perf_counter(), time.process_time()
        run._refresh_tables()
        refresh_s, refresh_cpu_s = time.perf_counter() - clock, time.process_time() - cpu
    manifest.close()
    written = json.loads((out / "stats.json").read_text())
    assert written["finished"] == done + assets, written["finished"]
    per_asset.sort()
    asset_s = sum(per_asset) / len(per_asset)
    return {"journaled_assets": done, "open_s": open_s, "open_cpu_s": open_cpu_s, "asset_cpu_ms": 1e3 * asset_cpu_s, "refresh_cpu_s": refresh_cpu_s,
            "asset_ms": 1e3 * asset_s, "asset_ms_median": 1e3 * per_asset[len(per_asset) // 2],
            "refresh_s": refresh_s, "driver_assets_per_s": sustained(asset_s, refresh_s, summary_every_s(runner)),
            "bookkeeping_assets_per_s": 1.0 / asset_s, "rss_after_open_mb": rss_open,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def summary_every_s(runner) -> float:
    """Seconds between table refreshes: ``runner.SUMMARY_EVERY_S`` in the reference tree,
    ``pipelines.console.SUMMARY_EVERY_S`` since the console moved there."""
    if hasattr(runner, "SUMMARY_EVERY_S"):
        return runner.SUMMARY_EVERY_S
    from d4d.pipelines.console import SUMMARY_EVERY_S

    return SUMMARY_EVERY_S


def reference_tree(root: Path) -> Path:
    """The d4d tree at REFERENCE_COMMIT, extracted under ``root``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", REFERENCE_COMMIT, *PACKAGES.values()], check=True, capture_output=True).stdout
    tree = root / f"d4d-{REFERENCE_COMMIT}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def in_process(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.driver_scale", *args], cwd=REPO, check=True, capture_output=True, text=True, timeout=3600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def one(tree: str, journal: Path, assets: int) -> dict:
    """A fresh output directory with a copy of ``journal`` (and, for d4d, the previous run's
    tables), then ``measure`` in a fresh process."""
    out = journal.with_name(f"out-{'d4d' if tree == 'd4d' else 'reference'}")
    out.mkdir()
    try:
        shutil.copyfile(journal, out / "manifest.jsonl")
        prepared = in_process("--prepare", str(out)) if tree == "d4d" else {}
        return {**in_process("--measure", tree, "--journal", str(out), "--assets", str(assets)), **{k: v for k, v in prepared.items() if k == "open_whole_s"}}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def sustained(asset_s: float, refresh_s: float, period: float = 30.0) -> float:
    """Assets per second of a driver that refreshes the tables every ``period`` seconds (the
    runner's SUMMARY_EVERY_S): per period it spends ``refresh_s`` on them, the rest on assets; a
    refresh longer than the period runs after every asset."""
    cycle = max(period, refresh_s + asset_s)
    return max(1.0, (cycle - refresh_s) / asset_s) / cycle


def table(results: dict) -> str:
    """The results as a Markdown table. Rates from CPU time: the machine was shared, and wall
    time measured the other jobs as much as this one."""
    lines = ["| journaled assets | journal MB | open, CPU s (reference / d4d) | per asset, CPU ms | per asset, median wall ms | table refresh, CPU s "
             "| driver assets/s (CPU) | speed-up | peak MB |", "|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        ref, new = row["reference"], row["d4d"]
        rates = [sustained(r["asset_cpu_ms"] / 1e3, r["refresh_cpu_s"]) for r in (ref, new)]
        lines.append(f"| {row['scale']:,} | {row['journal_mb']:.0f} | {ref['open_cpu_s']:.1f} / {new['open_cpu_s']:.1f} "
                     f"| {ref['asset_cpu_ms']:.2f} / {new['asset_cpu_ms']:.2f} | {ref['asset_ms_median']:.1f} / {new['asset_ms_median']:.1f} "
                     f"| {ref['refresh_cpu_s']:.2f} / {new['refresh_cpu_s']:.2f} "
                     f"| {rates[0]:.0f} / {rates[1]:.0f} | {rates[1] / rates[0]:.1f}x | {ref['peak_rss_mb']:.0f} / {new['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", type=int, nargs="+", default=[10_000, 100_000, 300_000], help="journaled assets before the measured ones")
    p.add_argument("--assets", type=int, default=200, help="assets measured at each scale")
    p.add_argument("--out", type=Path, default=RESULTS / "driver_scale.json")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    p.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--table", type=Path, help="only print the table of a results file")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if args.prepare:
        print(json.dumps(prepare(args.prepare)))
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.journal, args.assets)))
        return 0
    with tempfile.TemporaryDirectory(prefix="d4d-driver-scale-") as tmp:
        root = Path(tmp)
        reference = reference_tree(root)
        results = {"settings": {"scales": args.scales, "assets": args.assets, "reference_commit": REFERENCE_COMMIT,
                                "load_1min_at_start": os.getloadavg()[0], "cpus": os.cpu_count()}, "rows": []}
        for scale in args.scales:
            journal = root / f"journal-{scale}.jsonl"
            write_journal(journal, scale, str(root / "assets"))
            row = {"scale": scale, "journal_mb": journal.stat().st_size / 1e6}
            for name, tree in (("d4d", "d4d"), ("reference", str(reference))):
                row[name] = one(tree, journal, args.assets)
                print(f"{scale} {name}: {json.dumps(row[name])}", flush=True)
            journal.unlink()
            results["rows"].append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
