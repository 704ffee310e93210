"""The run manifest (journal) and the tables rebuilt from it; no Blender, no Ray."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from d4d.curation.decision import Decision
from d4d.curation.procedure import ClipOutcome
from d4d.curation.sources import SourceRecord
from d4d.pipelines.manifest import Manifest, RunLocked
from d4d.pipelines.tables import DECISIONS_SCHEMA, FAILURES_SCHEMA, DecisionRows, clip_event, failure_event, run_stats, write_tables
from d4d.pipelines.work import WorkItem


def item(uid: str, decision: str, reason: str | None = None, **measures) -> WorkItem:
    record = SourceRecord(uid=uid, source="local", file_identifier=f"/data/{uid}.glb", sha256=uid, license="cc0")
    work = WorkItem(record, timings={"fetch": 0.5})
    if decision == "failed":
        work.timings["curate"] = 1.5
        return work.fail("curate", reason, "crashed", "crashed: Blender crashed (signal SIGABRT)", retryable=True)
    clip = ClipOutcome(uid, None, None, Decision(decision, reason, dict(measures)), "quality" if decision == "keep" else "precheck",
                       timings={"fetch": 0.5, "precheck": 1.5})
    return work.judged([clip])


def result_event(work: WorkItem, attempt: int, worker: str) -> dict:
    return failure_event(work, attempt, worker) if work.failure else clip_event(work, work.clips[0], attempt, worker)


def test_events_survive_a_reopen_and_the_latest_result_wins(tmp_path):
    kept = result_event(item("a", "keep", has_animation=True), 1, "w1")
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        manifest.append(kept)
        assert manifest.state.unsharded_keeps()[0]["measures"] == {"has_animation": True}
        manifest.append({"event": "attempt_failed", "uid": "b", "attempt": 1, "stage": "precheck", "reason": "render_failed", "error_kind": "timeout", "detail": "timed out"})
        manifest.append({"event": "sharded", "uids": ["a"], "shards": ["part-00000.parquet"]})
        manifest.append({**kept, "decision": "failed", "reason": "shard_failed"})
    state = Manifest(tmp_path).open()
    assert state.results["a"].decision == "failed" and state.results["a"].reason == "shard_failed"
    assert state.failed_attempts["b"] == 1 and "b" not in state.results
    assert state.sharded == {"a"} and state.unsharded_keeps() == []


def test_a_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        manifest.append(result_event(item("a", "reject", "no_animation"), 1, "w1"))
    path = tmp_path / "manifest.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"event": "result", "uid": "b", "deci')  # a kill -9 in the middle of a write
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        assert set(manifest.state.results) == {"a"}
        manifest.append(result_event(item("c", "keep"), 1, "w1"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["uid"] for line in lines] == ["a", "c"]


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "manifest.jsonl").write_text('{"event": "run"}\nnot json\n{"event": "run"}\n')
    with pytest.raises(ValueError, match=r"manifest.jsonl:2: not a JSON event"):
        Manifest(tmp_path).open()


def test_non_finite_and_numpy_measures_are_stored_as_json(tmp_path):
    import numpy as np

    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        manifest.append(result_event(item("a", "keep", coverage_min=float("nan"), frames_total=np.int64(24), ssim=(0.9, 0.8)), 1, "w"))
    measures = Manifest(tmp_path).open().unsharded["a"]["measures"]
    assert measures == {"coverage_min": None, "frames_total": 24, "ssim": [0.9, 0.8]}


def test_tables_have_one_row_per_asset_with_flattened_measures(tmp_path):
    started = time.time()
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        manifest.append(result_event(item("a", "keep", has_animation=True, motion_magnitude=12.5, ssim=[0.9, 0.8]), 1, "w1"))
        manifest.append(result_event(item("b", "reject", "no_animation", has_animation=False), 1, "w1"))
        manifest.append({"event": "attempt_failed", "uid": "c", "attempt": 1, "stage": "precheck", "reason": "render_failed", "error_kind": "crashed", "detail": "first crash"})
        manifest.append(result_event(item("c", "failed", "render_failed"), 2, "w2"))
        manifest.append(result_event(item("b", "reject", "no_animation", has_animation=False), 1, "w1"))  # a duplicate result
        manifest.append({"event": "sharded", "uids": ["a"], "shards": []})
        for uid in ("a", "b", "c"):
            manifest.append({"event": "asset_done", "uid": uid, "clips": [uid]})
        stats = run_stats(manifest.state, total=4, started=started, wall_s=2.0, workers=1)
        write_tables(tmp_path, manifest.state, stats)
    decisions = pq.read_table(tmp_path / "decisions.parquet")
    assert decisions.schema.equals(DECISIONS_SCHEMA)
    rows = {r["uid"]: r for r in decisions.to_pylist()}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["a"]["motion_magnitude"] == 12.5 and rows["a"]["in_shards"] and rows["a"]["has_animation"]
    assert json.loads(rows["a"]["measures_json"])["ssim"] == [0.9, 0.8]
    assert rows["b"]["reason"] == "no_animation" and rows["b"]["motion_magnitude"] is None
    assert rows["c"]["attempts"] == 2 and rows["c"]["fetch_s"] == 0.5 and rows["c"]["seconds"] == 2.0
    failures = pq.read_table(tmp_path / "failures.parquet")
    assert failures.schema.equals(FAILURES_SCHEMA) and failures.column("uid").to_pylist() == ["c"]
    errors = json.loads(failures.to_pylist()[0]["errors_json"])
    assert [e["attempt"] for e in errors] == [1, 2] and errors[0]["detail"] == "first crash"
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert saved["by_decision"] == {"keep": 1, "reject": 1, "failed": 1}
    assert saved["remaining"] == 1 and saved["finished_this_run"] == 3 and saved["assets_per_hour"] == pytest.approx(5400.0)
    assert saved["stage_seconds"] == {"fetch": 1.5, "precheck": 3.0, "curate": 1.5}


def test_clips_of_one_asset_are_rows_of_their_own_and_stats_count_assets_and_clips(tmp_path):
    record = SourceRecord(uid="robot", source="local", file_identifier="/data/robot.glb", sha256="f" * 64, license=None)
    window = {"rank": 0, "start_s": 1.0, "end_s": 3.875}
    clips = [
        ClipOutcome("robot--walk-1a2b3c-w0", "Walk", window, Decision("keep", None, {"motion_magnitude": 50.0}), "quality", timings={"quality": 2.0}),
        ClipOutcome("robot--tpose-4d5e6f-w0", "TPose", None, Decision("reject", "no_animation", {}), "precheck", timings={"precheck": 0.2}),
        ClipOutcome("robot--run-7a8b9c-w0", "Run", window, Decision("failed", "render_failed", {"error_kind": "timeout"}, "timeout: too slow"), "quality"),
    ]
    work = WorkItem(record).judged(clips)
    started = time.time()
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        for clip in clips[:2]:  # the third clip's result is not journaled yet (an interruption)
            manifest.append(clip_event(work, clip, 1, "w"))
        assert manifest.state.clips_of("robot") == {"robot--walk-1a2b3c-w0", "robot--tpose-4d5e6f-w0"}
        assert "robot" not in manifest.state.assets_done  # a rerun redoes the asset, skipping those two clips
        manifest.append(clip_event(work, clips[2], 2, "w"))
        manifest.append({"event": "asset_done", "uid": "robot", "clips": [c.clip_id for c in clips]})
        manifest.append(failure_event(item("broken", "failed", "import_failed"), 1, "w"))
        manifest.append({"event": "asset_done", "uid": "broken", "clips": ["broken"]})
        stats = run_stats(manifest.state, total=3, started=started, wall_s=1.0, workers=1)
        write_tables(tmp_path, manifest.state, stats)
    rows = {r["uid"]: r for r in pq.read_table(tmp_path / "decisions.parquet").to_pylist()}
    walk = rows["robot--walk-1a2b3c-w0"]
    assert (walk["asset_uid"], walk["action"], walk["window_start_s"], walk["window_end_s"], walk["window_rank"]) == ("robot", "Walk", 1.0, 3.875, 0)
    assert rows["robot--tpose-4d5e6f-w0"]["reason"] == "no_animation" and rows["broken"]["asset_uid"] == "broken"
    assert stats["assets"] == {"total": 3, "finished": 2, "with_kept_clip": 1, "failed_whole": 1, "not_curated": {}}
    assert stats["clips"]["judged"] == 3 and stats["clips"]["by_decision"] == {"keep": 1, "reject": 1, "failed": 1}
    assert stats["remaining"] == 1 and stats["finished_this_run"] == 2


def test_a_d4d_0_1_journal_reads_as_one_finished_asset_per_result(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"event": "result", "uid": "old", "decision": "keep", "reason": None, "time": 1.0}) + "\n")
    state = Manifest(tmp_path).open()
    assert state.assets_done == {"old"} and state.clips_of("old") == {"old"}


def test_one_run_per_output_directory(tmp_path):
    with Manifest(tmp_path):
        with pytest.raises(RunLocked, match="another d4d-curate run"):
            Manifest(tmp_path).open()
    with Manifest(tmp_path) as again:  # released on close
        assert again.state.results == {}


def test_retry_failed_forgets_only_the_failed_rows_of_the_chosen_reasons(tmp_path):
    record = SourceRecord(uid="robot", source="local", file_identifier="/data/robot.glb", sha256="f" * 64, license=None)
    walk = ClipOutcome("robot--walk-w0", "Walk", None, Decision("keep", None, {}), "quality")
    run = ClipOutcome("robot--run-w0", "Run", None, Decision("failed", "render_failed", {"error_kind": "timeout"}, "timeout"), "quality")
    robot = WorkItem(record).judged([walk, run])
    with Manifest(tmp_path, rows=DecisionRows) as manifest:
        for clip in (walk, run):
            manifest.append(clip_event(robot, clip, 2, "w"))
        manifest.append({"event": "asset_done", "uid": "robot", "clips": [walk.clip_id, run.clip_id]})
        for uid, reason in (("broken", "import_failed"), ("lost", "fetch_failed")):
            manifest.append({"event": "attempt_failed", "uid": uid, "attempt": 1, "stage": "curate", "reason": reason, "error_kind": "crashed", "detail": "x"})
            manifest.append(failure_event(item(uid, "failed", reason), 2, "w"))
            manifest.append({"event": "asset_done", "uid": uid, "clips": [uid]})
        manifest.append(result_event(item("fine", "keep"), 1, "w"))
        manifest.append({"event": "asset_done", "uid": "fine", "clips": ["fine"]})
        state = manifest.state
        assert state.failed_assets() == ["broken", "lost", "robot"]
        assert state.failed_assets(frozenset({"render_failed", "import_failed"})) == ["broken", "robot"]
        manifest.append({"event": "retry", "uids": ["broken", "robot"], "reasons": ["import_failed", "render_failed"]})
    for state in (manifest.state, Manifest(tmp_path).open()):  # as applied, and as read back by the next run
        assert set(state.results) == {"robot--walk-w0", "lost", "fine"}  # the kept clip stays; the failed rows are gone
        assert state.assets_done == {"lost", "fine"} and state.clips_of("robot") == {"robot--walk-w0"}
        assert state.failed_attempts["broken"] == 0 and state.failed_attempts["lost"] == 1  # a full budget again
