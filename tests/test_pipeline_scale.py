"""The driver's bookkeeping at scale, checked against brute force on random journals: the
manifest's per-asset index and the tables' incremental rows (no Blender, no Ray)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq

from d4d.pipelines.manifest import Manifest, ManifestState
from d4d.pipelines.tables import DECISIONS_SCHEMA, DecisionRows, decision_row, run_stats, write_tables


def random_journal(seed: int, assets: int) -> list[dict]:
    """Results of several clips per asset, some replaced later (shard_failed), some failed and
    then retried (--retry-failed), attempts, and sharded events, in a random order per asset."""
    rng = random.Random(seed)
    events = []
    for a in range(assets):
        asset = f"asset{a:05d}"
        clips = [f"{asset}--c{c}" for c in range(rng.randint(1, 4))] if rng.random() < 0.8 else [asset]
        if rng.random() < 0.25:  # an attempt that failed before this one
            events.append({"event": "attempt_failed", "uid": asset, "attempt": 1, "stage": "curate", "reason": "render_failed", "error_kind": "crashed",
                           "detail": "crashed", "time": 1.0 + a})
        mine = []
        for uid in clips:
            decision = rng.choice(["keep", "reject", "failed"])
            mine.append({"event": "result", "uid": uid, "asset_uid": asset, "decision": decision, "reason": None if decision == "keep" else "r" + str(rng.randint(0, 3)),
                           "stage": "quality", "whole_asset": uid == asset, "render_dir": f"/out/renders/{uid}", "detail": "d", "time": 1.0 + a,
                           "measures": {"motion_magnitude": rng.random(), "ssim": [rng.random()]}, "timings": {"quality": rng.random()}})
        events += mine + [{"event": "asset_done", "uid": asset, "clips": clips, "time": 1.5 + a}]
        if rng.random() < 0.3:
            events.append({"event": "sharded", "uids": [u for u in clips if rng.random() < 0.7], "shards": []})
        keeps = [e for e in mine if e["decision"] == "keep"]
        if keeps and rng.random() < 0.2:  # a kept clip whose render could not be sharded
            events.append({**keeps[0], "decision": "failed", "reason": "shard_failed"})
        if rng.random() < 0.1:
            events.append({"event": "retry", "uids": [asset], "reasons": []})
    return events


def brute_force(events: list[dict]) -> tuple[dict, set]:
    """The latest result per uid and the sharded uids, as the old full scans computed them."""
    latest, sharded = {}, set()
    for event in events:
        if event["event"] == "result":
            latest[event["uid"]] = event
        elif event["event"] == "sharded":
            sharded.update(event["uids"])
        elif event["event"] == "retry":
            for uid in [u for u, e in latest.items() if e["asset_uid"] in event["uids"] and e["decision"] == "failed"]:
                del latest[uid]
    return latest, sharded


def test_the_index_and_the_incremental_tables_equal_a_full_scan(tmp_path):
    events = random_journal(seed=7, assets=200)
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    live = ManifestState(rows=DecisionRows())
    live.rows.CHUNK = 37  # several converted batches, rows replaced and dropped after their conversion
    for i, event in enumerate(events):
        live.apply(event)
        if i % 150 == 0:  # a table refresh mid-run converts what is new so far
            live.rows.decisions(live.sharded)
    write_tables(tmp_path, live, run_stats(live, 200, 0.0, 1.0, 1))
    latest, sharded = brute_force(events)
    assert any(e["event"] == "retry" for e in events) and any(e.get("reason") == "shard_failed" for e in events)
    for state in (live, Manifest(tmp_path, rows=DecisionRows).open()):  # as applied, and as the next run reads it
        assert set(state.results) == set(latest) and state.sharded == sharded
        for asset in {e["asset_uid"] for e in latest.values()} | {"asset99999"}:
            assert state.clips_of(asset) == {u for u, e in latest.items() if e["asset_uid"] == asset}
        assert {e["uid"] for e in state.unsharded_keeps()} == {u for u, e in latest.items() if e["decision"] == "keep" and u not in sharded}
        assert all(state.results[u].decision == e["decision"] and state.results[u].reason == e["reason"] for u, e in latest.items())
    expected = [{**decision_row(e), "in_shards": uid in sharded} for uid, e in sorted(latest.items())]
    written = pq.read_table(tmp_path / "decisions.parquet")
    assert written.equals(pa.Table.from_pylist(expected, schema=DECISIONS_SCHEMA))
    failures = pq.read_table(tmp_path / "failures.parquet").column("uid").to_pylist()
    assert failures == sorted(u for u, e in latest.items() if e["decision"] == "failed")


def test_a_rerun_starts_from_the_tables_checkpoint_and_reads_the_same_state(tmp_path):
    events = random_journal(seed=11, assets=200)
    lines = [json.dumps(e, sort_keys=True) + "\n" for e in events]
    cut = len(lines) * 2 // 3
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    run.mkdir(), fresh.mkdir()
    (run / "manifest.jsonl").write_text("".join(lines[:cut]))
    with Manifest(run, rows=DecisionRows) as manifest:  # a run wrote its tables, then more events came
        write_tables(run, manifest.state, run_stats(manifest.state, 200, 0.0, 1.0, 1))
    with open(run / "manifest.jsonl", "a") as journal:
        journal.write("".join(lines[cut:]))
    (fresh / "manifest.jsonl").write_text("".join(lines))  # the same journal without tables: read whole
    resumed, whole = Manifest(run, rows=DecisionRows).open(), Manifest(fresh, rows=DecisionRows).open()
    assert resumed.head == whole.head and resumed.journal_bytes == whole.journal_bytes == len("".join(lines))
    assert DecisionRows().resume(run, whole.head, resumed.journal_bytes) is not None  # the checkpoint was there to use
    assert DecisionRows().resume(run, "another journal", resumed.journal_bytes) is None
    assert any(e["event"] == "retry" for e in events[cut:]) and any(e["event"] == "attempt_failed" for e in events[:cut])
    for name in ("results", "clips", "assets_done", "failed_attempts", "errors", "sharded"):
        assert getattr(resumed, name) == getattr(whole, name), name
    assert resumed.unsharded.keys() == whole.unsharded.keys()
    for state, folder in ((resumed, run), (whole, fresh)):
        write_tables(folder, state, run_stats(state, 200, 0.0, 1.0, 1))
    for table in ("decisions.parquet", "failures.parquet"):
        assert pq.read_table(run / table).equals(pq.read_table(fresh / table)), table


def test_a_folder_listed_with_parallel_hashing_gives_the_same_records_in_order(tmp_path):
    import hashlib

    from d4d.curation.sources import LocalFolderSource

    rng = random.Random(3)
    blobs = [rng.randbytes(rng.randint(1, 300_000)) for _ in range(12)]
    for i in range(40):  # some files share bytes (duplicates), one format differs, one link dangles
        (tmp_path / f"{i:02d}.{'obj' if i == 7 else 'glb'}").write_bytes(blobs[rng.randrange(len(blobs))])
    (tmp_path / "zz.glb").symlink_to(tmp_path / "absent.glb")
    one = list(LocalFolderSource(tmp_path, hash_threads=1).records())
    many = LocalFolderSource(tmp_path, hash_threads=4).records()
    assert [(r.uid, r.sha256, r.problem) for r in one] == [(r.uid, r.sha256, r.problem) for r in many]
    assert [r.metadata["relative_path"] for r in one] == sorted(p.name for p in tmp_path.iterdir())
    for record in one:
        if record.problem is None or record.problem.reason == "duplicate":
            assert record.sha256 == hashlib.sha256((tmp_path / record.metadata["relative_path"]).read_bytes()).hexdigest()
    assert {r.problem.reason for r in one if r.problem} == {"duplicate", "dangling_link"}
    cut = LocalFolderSource(tmp_path, hash_threads=2).records()
    assert next(cut).uid == one[0].uid
    cut.close()  # a listing cut short (--limit) stops its hashing threads


def test_sharded_renders_are_removed_unless_kept_and_only_inside_renders(tmp_path):
    from dataclasses import replace

    from d4d.pipelines.config import PipelineConfig
    from d4d.pipelines.runner import Layout, Run
    from d4d.pipelines.sources import SourceSpec

    layout = Layout(tmp_path / "out")
    for keep in (False, True):
        dirs = [layout.renders / "a", layout.renders / "b", tmp_path / "elsewhere" / "c"]
        for path in dirs:
            path.mkdir(parents=True, exist_ok=True)
            (path / "asset.json").write_text("{}")
        with Manifest(layout.root, rows=DecisionRows) as manifest:
            run = Run(SourceSpec("local", str(tmp_path)), replace(PipelineConfig(), keep_renders=keep), layout, manifest, [], {})
            run._remove_sharded_renders([str(p) for p in dirs], {"a", "c"})  # "c" is not under renders/: never removed
        assert [p.exists() for p in dirs] == [keep, True, True]


def test_a_finished_blender_log_is_gzipped_in_place(tmp_path):
    import gzip

    from d4d.rendering.api import compress_log

    log = tmp_path / "worker-0.log"
    text = b"".join(b"Fra:%d Mem:12.3M | Sample %d/128\n" % (i, i % 128) for i in range(20_000))
    log.write_bytes(text)
    compress_log(log)
    packed = tmp_path / "worker-0.log.gz"
    assert not log.exists() and gzip.decompress(packed.read_bytes()) == text and packed.stat().st_size < len(text) / 5
    compress_log(tmp_path / "absent.log")  # nothing there: nothing done, no error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker-0.log.gz"]
