"""``--retry-failed REASON``: a rerun redoes the failed rows of that reason (with a full attempt
budget), leaves every other row as it was, and each asset still has one row; logs are named by
node and worker."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import join_cluster, requires_bpy
from test_pipeline_run import SMALL, decisions, manifest_events, runs, shard_uids  # noqa: F401 (runs: a fixture)

pytestmark = [requires_bpy, pytest.mark.blender, pytest.mark.slow]


def test_retry_failed_redoes_only_the_failed_rows_of_the_reason_given(builtin_assets, runs, ray_cluster, tmp_path):  # noqa: F811
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "skinned", "static"):  # 7 KB, 226 KB, 71 KB
        (assets / f"{name}.glb").write_bytes(builtin_assets[name].read_bytes())
    out = tmp_path / "out"
    args = ["--source", f"local:{assets}", "--out", str(out), *join_cluster(runs, ray_cluster), *SMALL]  # three runs: one Ray start saved each
    runs.run([*args, "--max-faces", "100"], tmp_path / "first.log")  # rigid.glb has 48 faces, static.glb 968, skinned.glb 5820
    first = decisions(out)
    failed = sorted(n for n, r in first.items() if r["decision"] == "failed")
    assert "skinned.glb" in failed and "rigid.glb" not in failed
    assert {(first[n]["reason"], first[n]["error_kind"]) for n in failed} == {("import_failed", "too_large")}

    log = runs.run([*args, "--retry-failed", "render_failed"], tmp_path / "other.log")  # another reason: nothing redone
    assert "--retry-failed render_failed: 0 assets with failed rows redone" in log and "none to do (Ray not started)" in log
    assert all(decisions(out)[n]["decision"] == "failed" for n in failed)

    log = runs.run([*args, "--retry-failed", "import_failed"], tmp_path / "retry.log")  # with the default --max-faces now
    assert f"--retry-failed import_failed: {len(failed)} assets with failed rows redone" in log and f"{len(failed)} to do" in log
    rows = decisions(out)
    assert sorted(rows) == ["rigid.glb", "skinned.glb", "static.glb"]
    assert all(rows[n]["decision"] != "failed" and rows[n]["attempts"] == 1 for n in failed)
    assert rows["skinned.glb"]["decision"] == "keep"
    assert rows["rigid.glb"]["finished_at"] == first["rigid.glb"]["finished_at"]
    events = manifest_events(out)
    results = Counter(e["uid"] for e in events if e["event"] == "result")
    assert results[rows["skinned.glb"]["uid"]] == 2 and results[rows["rigid.glb"]["uid"]] == 1
    assert sorted(shard_uids(out)) == sorted(r["uid"] for r in rows.values() if r["decision"] == "keep")
    assert all(d.name.startswith("node-") and "-worker-" in d.name for d in (out / "logs").iterdir())
