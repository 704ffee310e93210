"""Online Objaverse sources download through d4d's bounded downloads, here from a loopback HTTP
server: files land in objaverse's cache layout, and a server that sends too much, never stops
or stalls costs one row with its reason, never the run."""

import hashlib
import json
import time

import pytest

from d4d.curation.sources import (
    DownloadLimits,
    DownloadTimeout,
    DownloadTooLarge,
    FetchError,
    HTTPRefused,
    ObjaverseV1Source,
    ObjaverseXLSource,
    XLEndpoints,
    XLFilter,
    download,
    download_with_links,
    save_uid,
)
from d4d.pipelines.sources import SourceSpec
from d4d.testing.http_server import LoopbackServer
from d4d.testing.objaverse_cache import animated_triangle_glb, build_v1_cache, v1_annotation, write_xl_parquet

FAST = DownloadLimits(max_download_mb=1.0, stall_timeout_s=1.0, download_timeout_s=5.0)
A, B = "a" * 32, "b" * 32


@pytest.fixture()
def remote(tmp_path):
    """A folder served over HTTP on 127.0.0.1."""
    folder = tmp_path / "remote"
    folder.mkdir()
    with LoopbackServer(folder) as server:
        yield folder, server


def test_download_writes_the_file_whole_and_only_over_http(remote, tmp_path):
    folder, server = remote
    (folder / "x.bin").write_bytes(b"1234" * 1000)
    dest = tmp_path / "cache" / "x.bin"
    assert download(f"{server.url}/x.bin", dest, FAST).read_bytes() == b"1234" * 1000
    with pytest.raises(FetchError, match="only http and https"):
        download(f"file://{folder / 'x.bin'}", tmp_path / "y.bin", FAST)


@pytest.mark.parametrize(
    ("behaviour", "error", "kind", "retryable"),
    [
        ("huge", DownloadTooLarge, "download_too_large", False),  # announces 10 GB
        ("endless", DownloadTooLarge, "download_too_large", False),  # no length, never stops
        ("stall", DownloadTimeout, "timeout", True),  # a few bytes, then silence
    ],
)
def test_a_misbehaving_server_costs_one_error_with_its_reason_and_leaves_no_file(remote, tmp_path, behaviour, error, kind, retryable):
    _, server = remote
    server.misbehave("/x.glb", behaviour)
    dest = tmp_path / "cache" / "x.glb"
    start = time.monotonic()
    with pytest.raises(error) as caught:
        download(f"{server.url}/x.glb", dest, FAST)
    assert time.monotonic() - start < FAST.download_timeout_s + 2
    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert server.url in str(caught.value) and "\n" not in str(caught.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no partial file


def test_a_transfer_that_trickles_past_the_total_time_bound_times_out(remote, tmp_path):
    _, server = remote
    server.misbehave("/x.glb", "endless")
    limits = DownloadLimits(max_download_mb=10_000, stall_timeout_s=5, download_timeout_s=1)
    with pytest.raises(DownloadTimeout, match="not complete after 1 s"):
        download(f"{server.url}/x.glb", tmp_path / "x.glb", limits)


def test_http_errors_are_retryable_only_when_the_server_says_so(remote, tmp_path):
    _, server = remote
    with pytest.raises(HTTPRefused) as caught:
        download(f"{server.url}/absent.glb", tmp_path / "absent.glb", FAST)
    assert (caught.value.kind, caught.value.status, caught.value.retryable) == ("http_error", 404, False)


def test_online_objaverse_v1_fills_the_cache_layout_objaverse_reads(remote, tmp_path):
    """object-paths, the metadata groups and the glbs come from the server into
    hf-objaverse-v1/, read back by the objaverse package; a second pass asks for nothing."""
    folder, server = remote
    written = build_v1_cache(folder, {A: v1_annotation(A, 2), B: v1_annotation(B, 1)}, {A: "000-000", B: "000-001"}, cached={A, B})
    cache = tmp_path / "cache"
    source = ObjaverseV1Source(cache, offline=False, limits=FAST, base_url=f"{server.url}/hf-objaverse-v1")
    records = {r.uid: r for r in source.records()}
    assert set(records) == {A, B}
    fetched = {r.uid: r for r, error in source.fetch_many(records.values()) if error is None}
    assert fetched[A].local_path == cache / "hf-objaverse-v1" / "glbs" / "000-000" / f"{A}.glb"
    assert fetched[A].local_path.read_bytes() == written[A]
    assert fetched[B].sha256 == hashlib.sha256(written[B]).hexdigest()
    asked = len(server.requests)
    again = ObjaverseV1Source(cache, offline=False, limits=FAST, base_url=f"{server.url}/hf-objaverse-v1")
    assert all(error is None for _, error in again.fetch_many(again.records()))
    assert len(server.requests) == asked
    assert ObjaverseV1Source(cache).records()  # and the offline source reads the same cache


def test_online_objaverse_v1_turns_a_bad_server_into_rows_not_a_stopped_run(remote, tmp_path):
    folder, server = remote
    build_v1_cache(folder, {A: v1_annotation(A, 2), B: v1_annotation(B, 1)}, {A: "000-000", B: "000-001"}, cached={B})
    server.misbehave(f"/hf-objaverse-v1/glbs/000-000/{A}.glb", "huge")
    source = ObjaverseV1Source(tmp_path / "cache", offline=False, limits=FAST, base_url=f"{server.url}/hf-objaverse-v1")
    outcome = {r.uid: error for r, error in source.fetch_many(source.records())}
    assert outcome[A].kind == "download_too_large" and outcome[B] is None


def _xl_row(fid: str, source: str, data: bytes, file_type: str) -> dict:
    return {"fileIdentifier": fid, "source": source, "license": "by", "fileType": file_type,
            "sha256": hashlib.sha256(data).hexdigest(), "metadata": "{}"}


def _gltf_with_links(buffer: bytes, image: bytes) -> bytes:
    return json.dumps({
        "asset": {"version": "2.0"},
        "buffers": [{"uri": "mesh.bin", "byteLength": len(buffer)}],
        "images": [{"uri": "textures/skin%20tone.png"}, {"uri": "../../../../../etc/passwd"}, {"uri": "/etc/hostname"},
                   {"uri": "https://example.com/remote.png"}, {"uri": "missing.png"}],
    }).encode()


def test_online_objaverse_xl_downloads_each_source_from_its_endpoint(remote, tmp_path):
    """GitHub files come at their commit with the files they link (never files outside the
    repository, never the repository), Thingiverse and Smithsonian files from their hosts; a
    Smithsonian identifier naming another host is refused before anything is fetched."""
    folder, server = remote
    commit = "0123456789abcdef0123456789abcdef01234567"
    buffer, image = b"\x01" * 300, b"\x89PNG" + b"\x02" * 100
    gltf = _gltf_with_links(buffer, image)
    repo = folder / "raw" / "someone" / "robots" / commit
    (repo / "models" / "textures").mkdir(parents=True)
    (repo / "models" / "robot.gltf").write_bytes(gltf)
    (repo / "models" / "mesh.bin").write_bytes(buffer)
    (repo / "models" / "textures" / "skin tone.png").write_bytes(image)
    (repo / "big-unrelated.bin").write_bytes(b"\0" * 3_000_000)  # the repository is more than the limit
    stl = b"solid t\nendsolid t\n" + b" " * 100
    (folder / "thingiverse").mkdir()
    (folder / "thingiverse" / "download:77").write_bytes(stl)
    glb = animated_triangle_glb()
    (folder / "si" / "content" / "document").mkdir(parents=True)
    (folder / "si" / "content" / "document" / "model.glb").write_bytes(glb)
    rows = [
        _xl_row(f"https://github.com/someone/robots/blob/{commit}/models/robot.gltf", "github", gltf, "gltf"),
        _xl_row("https://www.thingiverse.com/thing:5/files?fileId=77", "thingiverse", stl, "stl"),
        _xl_row("https://3d-api.si.edu/content/document/model.glb", "smithsonian", glb, "glb"),
        _xl_row("https://evil.example.com/content/document/model.glb", "smithsonian", glb, "glb"),
    ]
    for source in ("github", "thingiverse", "smithsonian"):
        write_xl_parquet(folder / "xl", source, [r for r in rows if r["source"] == source])
    cache = tmp_path / "cache"
    endpoints = XLEndpoints(annotations=f"{server.url}/xl", github_raw=f"{server.url}/raw",
                            thingiverse=f"{server.url}/thingiverse", smithsonian=f"{server.url}/si")
    source = ObjaverseXLSource(cache, XLFilter(sources=("github", "thingiverse", "smithsonian")), offline=False, limits=FAST, endpoints=endpoints)
    records = list(source.records())
    refused = [r for r in records if r.problem is not None]
    assert [r.problem.reason for r in refused] == ["bad_identifier"] and "evil.example.com" in refused[0].problem.detail
    results = {r.source: (r, error) for r, error in source.fetch_many([r for r in records if r.problem is None])}
    assert all(error is None for _, error in results.values()), results

    github, _ = results["objaverse-xl/github"]
    assert github.local_path == cache / "github" / "repos" / "someone" / "robots" / "models" / "robot.gltf"
    assert (github.local_path.parent / "mesh.bin").read_bytes() == buffer
    assert (github.local_path.parent / "textures" / "skin tone.png").read_bytes() == image
    fetched = {p.relative_to(cache / "github" / "repos").as_posix() for p in (cache / "github" / "repos").rglob("*") if p.is_file()}
    assert fetched == {"someone/robots/models/robot.gltf", "someone/robots/models/mesh.bin", "someone/robots/models/textures/skin tone.png"}
    assert not any("passwd" in r or "hostname" in r or "big-unrelated" in r for r in server.requests)
    thing, _ = results["objaverse-xl/thingiverse"]
    assert thing.local_path == cache / "thingiverse" / "thing-5-file-77.stl"
    smithsonian, _ = results["objaverse-xl/smithsonian"]
    assert smithsonian.local_path == cache / "smithsonian" / "objects" / f"{save_uid(rows[2]['fileIdentifier'])}.glb"


def test_linked_files_share_the_budget_of_their_asset(remote, tmp_path):
    folder, server = remote
    buffer = b"\x01" * 800_000
    (folder / "a").mkdir()
    (folder / "a" / "robot.gltf").write_bytes(_gltf_with_links(buffer, b""))
    (folder / "a" / "mesh.bin").write_bytes(buffer)
    limits = DownloadLimits(max_download_mb=0.5, stall_timeout_s=1, download_timeout_s=5)
    with pytest.raises(DownloadTooLarge, match="with the files it links"):
        download_with_links(f"{server.url}/a", "robot.gltf", tmp_path / "cache", limits)


def test_the_fetch_step_records_a_download_failure_as_a_row_reason(remote, tmp_path):
    """Through the pipeline's Fetch step (as a worker runs it): a too-large download is the
    asset's fetch_failed row with error_kind download_too_large, not retried."""
    from d4d.pipelines.steps import Fetch
    from d4d.pipelines.work import WorkItem

    folder, server = remote
    build_v1_cache(folder, {A: v1_annotation(A, 2)}, {A: "000-000"}, cached=set())
    server.misbehave(f"/hf-objaverse-v1/glbs/000-000/{A}.glb", "endless")
    spec = SourceSpec("objaverse", str(tmp_path / "cache"), online=True, limits=FAST,
                      endpoints=XLEndpoints(sketchfab=f"{server.url}/hf-objaverse-v1"))
    step = Fetch(spec)
    step.setup(None)
    [record] = list(step.source.records())
    failure = step.process(WorkItem(record)).failure
    assert (failure.stage, failure.reason, failure.kind, failure.retryable) == ("fetch", "fetch_failed", "download_too_large", False)
    assert f"{A}.glb" in failure.detail
