"""A full OUT stops the run, not the asset: on a small tmpfs, the journal never tears, the run
ends with one line (exit 3) recording no asset as failed, and the rerun after freeing space
finishes every asset."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import join_cluster, requires_bpy
from test_pipeline_run import SMALL, decisions, manifest_events, runs, shard_uids  # noqa: F401 (runs: a fixture)

from d4d.pipelines.manifest import Manifest
from d4d.pipelines.space import OutOfSpace, SpaceGuard, write_error


@pytest.fixture
def small_fs(tmp_path):
    """mount(size_kb) -> a fresh tmpfs of that size (skips where mounting is not permitted)."""
    mounted = []

    def mount(size_kb: int) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(fs: Path, leave_bytes: int) -> Path:
    """A file that takes all but about ``leave_bytes`` of ``fs``'s free space."""
    filler = fs / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, SpaceGuard(fs, 0).free_bytes() - leave_bytes))
    return filler


def test_a_full_journal_keeps_whole_events_and_the_guard_names_the_space(small_fs):
    fs = small_fs(64)
    with Manifest(fs) as manifest:
        manifest.append({"event": "run", "n": 1})
        fill(fs, 0)
        with pytest.raises(OSError) as caught:
            manifest.append({"event": "run", "pad": "x" * 20000})
        assert write_error(caught.value) is not None and caught.value.errno == errno.ENOSPC
        guard = SpaceGuard(fs, 10_000)
        assert guard.stop_line(caught.value).startswith("OUT is full: 0.0 KB free, need 10.0 KB")
        with pytest.raises(OutOfSpace, match="OUT is full"):
            guard.check()
        # Only the first, whole event is there: no torn line for the next run to read.
        assert [json.loads(line)["n"] for line in (fs / "manifest.jsonl").read_text().splitlines()] == [1]
        (fs / "filler").unlink()
        manifest.append({"event": "run", "n": 2})
    assert [json.loads(line)["n"] for line in (fs / "manifest.jsonl").read_text().splitlines()] == [1, 2]
    # With room, a failure that names no write error is the asset's.
    assert SpaceGuard(fs, 1000).stop_line(ValueError("bad frame"), "cannot identify image file") is None
    # A failing disk, reported only as text from another process, is the run's.
    assert "OUT cannot be written" in SpaceGuard(fs, 0).stop_line(text=f"write failed: {os.strerror(errno.EIO)}")


@requires_bpy
@pytest.mark.blender
@pytest.mark.slow
def test_a_run_on_a_full_disk_stops_in_one_line_and_the_rerun_finishes_every_asset(builtin_assets, small_fs, runs, ray_cluster, tmp_path):  # noqa: F811
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "skinned", "shapekeys", "static"):
        (assets / f"{name}.glb").write_bytes(builtin_assets[name].read_bytes())
    fs = small_fs(4096)
    out = fs / "out"
    # A run of these four needs about 800 KB of OUT (renders, previews, Blender logs, shards, tables).
    filler = fill(fs, 350_000)
    args = ["--source", f"local:{assets}", "--out", str(out), *join_cluster(runs, ray_cluster), *SMALL, "--min-free-gb", "0.0001"]
    first = runs.start(args, tmp_path / "first.log")
    rc = first.wait(timeout=240)
    runs.kill_all()
    log = (tmp_path / "first.log").read_text()
    assert rc == 3, log[-3000:]
    assert "Traceback" not in log and log.strip().splitlines()[-1].startswith("d4d-curate: OUT is full: "), log[-3000:]
    events = manifest_events(out)
    assert not [e for e in events if e["event"] == "result" and e["decision"] == "failed"], "a write error was blamed on an asset"
    assert not [e for e in events if e["event"] == "attempt_failed"]
    finished = {e["uid"] for e in events if e["event"] == "asset_done"}
    assert len(finished) < 4

    filler.unlink()
    log = runs.run(args, tmp_path / "second.log")
    assert f"{len(finished)} already finished" in log
    events = manifest_events(out)
    results = Counter(e["uid"] for e in events if e["event"] == "result")
    assert set(results.values()) == {1}
    rows = decisions(out)
    assert sorted(rows) == ["rigid.glb", "shapekeys.glb", "skinned.glb", "static.glb"]
    assert not [r for r in rows.values() if r["decision"] == "failed"]
    assert sorted(shard_uids(out)) == sorted(r["uid"] for r in rows.values() if r["decision"] == "keep")

    # Checked up front: an OUT without the space asked for stops before Ray starts.
    full = runs.start([*args, "--min-free-gb", "1000"], tmp_path / "third.log")
    assert full.wait(timeout=120) == 3
    lines = (tmp_path / "third.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("d4d-curate: OUT is full: ") and f"MB free, need 1000.0 GB (--min-free-gb) on {out}; " in lines[0]
