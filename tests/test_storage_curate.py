"""d4d-curate with an OUT URI, against a local S3 server (moto on 127.0.0.1): shards and tables go
to the URI (whole objects), the journal and renders stay in the work folder; an OUT d4d cannot
use is refused in one line before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import requires_bpy

from d4d import storage
from d4d.pipelines.output import BINDING, default_work_dir, publish_tables, run_folders
from d4d.pipelines.space import OutOfSpace
from d4d.pipelines.steps import WriteShards
from d4d.shards.files import ShardNames, list_shards
from d4d.shards.verify import verify_shards
from d4d.testing.shards_helpers import make_shard_render

pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")

from d4d.testing.s3_server import s3_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3():
    with s3_server(buckets=("d4d",)) as endpoint:
        yield endpoint


def storage_text(uri: str) -> str:
    fs, path = storage.resolve(uri)
    return fs.open_input_stream(path).read().decode()


def uids_at(uri: str) -> list[str]:
    return [uid for path in list_shards(uri) for uid in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()]


def test_the_shard_writer_step_uploads_whole_shards_once(s3, tmp_path):
    renders = [make_shard_render(tmp_path / "renders", f"clip{i}", frames=4, size=16) for i in range(3)]
    uri = "s3://d4d/step/shards"
    step = WriteShards(uri, "lossless", 0.02, staging=tmp_path / "staging")
    step.setup()
    first = step.process([str(r) for r in renders[:2]])
    assert sorted(first["written"]) == ["clip0", "clip1"] and first["stop"] is None
    assert first["shards"] and all(s.startswith(uri + "/part-") for s in first["shards"])
    again = step.process([str(r) for r in renders])  # a batch written again after an interruption
    assert again["written"] == ["clip2"] and sorted(again["skipped"]) == ["clip0", "clip1"]
    assert len(uids_at(uri)) == 3 == len(set(uids_at(uri)))
    assert verify_shards(uri) == (3, [])
    assert "_README.md" in storage.list_names(uri)
    assert not list((tmp_path / "staging").glob("part-*.parquet"))  # uploaded shards leave staging
    gone = WriteShards("s3://no-such-bucket/shards", "lossless", 0.02, staging=tmp_path / "staging2")
    stop = gone.process([str(renders[0])])["stop"]
    assert stop and "no such bucket 'no-such-bucket'" in stop and "rerun" in stop


def test_two_shard_writer_steps_upload_to_one_uri_at_once_under_names_of_their_own(s3, tmp_path):
    renders = [str(make_shard_render(tmp_path / "renders", f"clip{i}", frames=4, size=16)) for i in range(6)]
    uri = "s3://d4d/two/shards"
    steps = [WriteShards(uri, "lossless", 0.02, staging=tmp_path / f"staging-{k}", names=ShardNames(k, 2)) for k in range(2)]
    reports = {}

    def write(k):  # each in two batches, so that each lists the other's shards before naming its next
        steps[k].setup()
        reports[k] = [steps[k].process(renders[k::2][:2]), steps[k].process(renders[k::2][2:])]

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for k in range(2):
        shards = [s for report in reports[k] for s in report["shards"]]
        assert len(shards) >= 2 and all(int(s.rsplit("part-", 1)[1][:5]) % 2 == k for s in shards)
    assert sorted(uid for k in range(2) for report in reports[k] for uid in report["written"]) == [f"clip{i}" for i in range(6)]
    assert len(uids_at(uri)) == 6 == len(set(uids_at(uri))) and verify_shards(uri) == (6, [])


def test_work_folder_is_bound_to_its_uri_and_tables_are_published(s3, tmp_path):
    root, remote = run_folders("s3://d4d/runs/one", tmp_path / "work")
    assert (root, remote) == (tmp_path / "work", "s3://d4d/runs/one")
    assert (root / BINDING).read_text().strip() == remote
    assert run_folders("s3://d4d/runs/one", tmp_path / "work") == (root, remote)  # a rerun
    with pytest.raises(ValueError, match="holds the run of s3://d4d/runs/one, not s3://d4d/runs/two"):
        run_folders("s3://d4d/runs/two", tmp_path / "work")
    with pytest.raises(ValueError, match="--work-dir applies to an --out URI"):
        run_folders(tmp_path / "out", tmp_path / "work")
    assert run_folders(tmp_path / "out", None) == (tmp_path / "out", None)
    os.environ["D4D_WORK_ROOT"] = str(tmp_path / "cache")
    try:
        folder = default_work_dir("s3://d4d/a/../b c?region=x")
    finally:
        del os.environ["D4D_WORK_ROOT"]
    assert folder.is_relative_to(tmp_path / "cache" / "s3") and ".." not in folder.parts and folder.name == "b_c"
    (root / "stats.json").write_text(json.dumps({"finished": 1}))
    publish_tables(root, remote)
    fs, path = storage.resolve("s3://d4d/runs/one/stats.json")
    assert json.loads(fs.open_input_stream(path).read()) == {"finished": 1}
    with pytest.raises(OutOfSpace, match="OUT cannot be written: uploading stats.json to s3://no-such-bucket/x failed .*rerun"):
        publish_tables(root, "s3://no-such-bucket/x")  # the run stops in one line (exit 3), not with a traceback


@pytest.mark.parametrize("out, reason", [
    ("s3://no-such-bucket/run", "--out s3://no-such-bucket/run: cannot be written (no such bucket 'no-such-bucket')"),
    ("nosuch://bucket/run", "unknown URI scheme 'nosuch'"),
    ("s3:/d4d/run", "looks like a URI with a slash missing"),
])
def test_an_out_that_cannot_be_used_is_refused_in_one_line(s3, tmp_path, out, reason):
    (tmp_path / "assets").mkdir()
    done = subprocess.run([sys.executable, "-m", "d4d.pipelines.curate", "--source", f"local:{tmp_path / 'assets'}", "--out", out,
                           "--work-dir", str(tmp_path / "work")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(reason) or reason in done.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.glob("*:*")) and not (tmp_path / "work").exists()  # nothing written anywhere


@requires_bpy
@pytest.mark.blender
@pytest.mark.slow
def test_curation_into_a_uri_end_to_end(s3, builtin_assets, tmp_path):
    from test_pipeline_run import SMALL, Runs

    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "rigid.glb").write_bytes(builtin_assets["rigid"].read_bytes())
    out, work = "s3://d4d/curated", tmp_path / "work"
    runs = Runs()  # its environment holds the S3 server's endpoint and credentials
    try:
        for attempt in range(2):  # the second run resumes from the work folder's journal: nothing to do, no row twice
            log = runs.run(["--source", f"local:{assets}", "--out", out, "--work-dir", str(work), *SMALL, "--shard-writers", "2"], tmp_path / f"run{attempt}.log",
                           timeout=400)
    finally:
        runs.close()
    assert "nothing left to do this run" in log and f"tables in {out}" in log
    kept = uids_at(f"{out}/shards")
    assert kept and len(kept) == len(set(kept)) and verify_shards(f"{out}/shards")[1] == []
    fs, path = storage.resolve(f"{out}/decisions.parquet")
    rows = pq.read_table(fs.open_input_file(path)).to_pylist()
    assert sorted(r["uid"] for r in rows if r["decision"] == "keep") == sorted(kept)
    assert (work / "manifest.jsonl").is_file() and not (work / "shards").exists()
    assert not list((work / "shards-staging").glob("*/part-*.parquet"))  # each writer's own staging folder
    assert "| clips (rows) | 1 |" in storage_text(f"{out}/shards/_README.md")  # the card, rewritten once both writers are done


@pytest.mark.parametrize("source", ["local:s3://d4d/assets", "objaverse-xl:gs://bucket/cache", "objaverse:s3:/d4d/cache"])
def test_a_source_at_a_uri_is_refused_in_one_line(source, tmp_path):
    from d4d.pipelines.sources import parse_source

    with pytest.raises(ValueError, match="sources read local folders and caches, not URIs") as refused:
        parse_source(source, tmp_path)
    assert source in str(refused.value) and "\n" not in str(refused.value)
