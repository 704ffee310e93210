"""Asset sources against a local objaverse cache laid out exactly as objaverse 0.1.7 expects,
read through the real objaverse package, with the network blocked."""

import hashlib
import os
import socket
from pathlib import Path

import objaverse
import objaverse.xl as oxl
import pytest
from objaverse.utils import get_uid_from_str

from d4d.curation.sources import (
    ChecksumMismatch,
    IdIndex,
    InvalidAsset,
    LocalFolderSource,
    MissingFromCache,
    ObjaverseV1Source,
    ObjaverseXLSource,
    V1Filter,
    XLFilter,
    identifier_kind,
    load_id_list,
    save_uid,
)
from d4d.testing.objaverse_cache import animated_triangle_glb, build_v1_cache, v1_annotation, write_json_gz, write_xl_parquet

SHARED = Path(__file__).resolve().parents[2] / "shared" / "assets" / "objaverse-xl-test-files"

A, B, C, D, E = (f"{c * 8}{'0' * 24}" for c in "abcde")  # 32-hex uids
GROUPS = {A: "000-000", B: "000-000", C: "000-001", D: "000-002", E: "000-001"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails the test at once."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture()
def v1_cache(tmp_path):
    objects = {
        A: v1_annotation(A, 2, "by"),
        B: v1_annotation(B, 0, "by"),
        C: v1_annotation(C, 1, "by-nc", faces=5000),
        D: v1_annotation(D, 3, "cc0"),
        E: v1_annotation(E, 1, "by", age_restricted=True),
    }
    written = build_v1_cache(tmp_path, objects, GROUPS, cached={A, B}, skip_groups={"000-002"})
    return tmp_path, written


def test_v1_records_filter_annotations_and_report_missing_groups(v1_cache):
    base, _ = v1_cache
    source = ObjaverseV1Source(base)
    records = {r.uid: r for r in source.records()}
    assert set(records) == {A, C}
    assert source.dropped == {"animation": 1, "age": 1}
    [line] = source.missing
    assert "000-002" in line and str(base / "hf-objaverse-v1" / "metadata" / "000-002.json.gz") in line and "1 uids" in line
    a = records[A]
    assert a.source == "objaverse-1.0" and a.license == "by" and a.sha256 is None
    assert a.metadata["animationCount"] == 2 and "thumbnails" not in a.metadata
    assert a.local_path == base / "hf-objaverse-v1" / "glbs" / "000-000" / f"{A}.glb"
    assert records[C].local_path is None  # not cached

    strict = ObjaverseV1Source(base, V1Filter(licenses=("by",), max_face_count=1000))
    assert [r.uid for r in strict.records()] == [A]
    assert [r.uid for r in ObjaverseV1Source(base, V1Filter(min_animation_count=0, uids=frozenset({B}))).records()] == [B]


def test_v1_fetch_verifies_cached_glbs_and_names_missing_ones(v1_cache):
    base, written = v1_cache
    source = ObjaverseV1Source(base)
    records = {r.uid: r for r in source.records()}
    fetched = source.fetch(records[A])
    assert fetched.sha256 == hashlib.sha256(written[A]).hexdigest()
    with pytest.raises(MissingFromCache) as err:
        source.fetch(records[C])
    expected = base / "hf-objaverse-v1" / "glbs" / "000-001" / f"{C}.glb"
    assert C in str(err.value) and str(expected) in str(err.value) and "\n" not in str(err.value)
    assert source.missing[-1] == str(err.value)
    # A truncated download is caught by the glTF header's declared length.
    expected.parent.mkdir(parents=True, exist_ok=True)
    expected.write_bytes(written[A][:-8])
    with pytest.raises(InvalidAsset, match="truncated"):
        source.fetch(records[C])
    expected.write_bytes(b"")
    with pytest.raises(InvalidAsset, match="empty"):
        source.fetch(records[C])


def test_v1_cache_layout_is_the_one_the_objaverse_package_reads(v1_cache, monkeypatch):
    base, _ = v1_cache
    monkeypatch.setattr(objaverse, "_VERSIONED_PATH", str(base / "hf-objaverse-v1"))
    paths = objaverse.load_objects([A, B])
    source = ObjaverseV1Source(base)
    assert {uid: Path(p) for uid, p in paths.items()} == {A: source.local_path(A), B: source.local_path(B)}
    assert objaverse.load_annotations([A])[A]["animationCount"] == 2


def test_v1_without_object_paths_says_which_file_is_missing(tmp_path):
    with pytest.raises(MissingFromCache, match="object-paths.json.gz"):
        list(ObjaverseV1Source(tmp_path).records())


def xl_rows(base, written_v1):
    """Write one object per XL source at the path objaverse.xl's downloader uses; return rows."""
    glb_smith = animated_triangle_glb(shift=7.0)
    smith_id = "https://3d-api.si.edu/content/document/3d_package:d8c6/model-150k.glb"
    smith_path = base / "smithsonian" / "objects" / f"{get_uid_from_str(smith_id)}.glb"
    smith_path.parent.mkdir(parents=True)
    smith_path.write_bytes(glb_smith)
    stl = b"solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid t\n"
    thing_id = "https://www.thingiverse.com/thing:12345/files?fileId=678"
    (base / "thingiverse").mkdir()
    (base / "thingiverse" / "thing-12345-file-678.stl").write_bytes(stl)
    gh_glb = animated_triangle_glb(shift=9.0)
    gh_id = "https://github.com/someorg/somerepo/blob/0123abcd/models/walk.glb"
    gh_path = base / "github" / "repos" / "someorg" / "somerepo" / "models" / "walk.glb"
    gh_path.parent.mkdir(parents=True)
    gh_path.write_bytes(gh_glb)
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    return {
        "sketchfab": [
            dict(fileIdentifier=f"https://sketchfab.com/3d-models/{A}", source="sketchfab", license="by", fileType="glb", sha256=sha(written_v1[A]), metadata="{}"),
            dict(fileIdentifier=f"https://sketchfab.com/3d-models/{C}", source="sketchfab", license="by-nc", fileType="glb", sha256="f" * 64, metadata="{}"),
        ],
        "smithsonian": [
            dict(fileIdentifier=smith_id, source="smithsonian", license="CC0", fileType="glb", sha256=sha(glb_smith), metadata="{}"),
            dict(fileIdentifier=smith_id.replace("d8c6", "e9d7"), source="smithsonian", license="CC0", fileType="glb", sha256="0" * 64, metadata="{}"),
        ],
        "thingiverse": [
            dict(fileIdentifier=thing_id, source="thingiverse", license="cc-by", fileType="stl", sha256=sha(stl), metadata="{}"),
        ],
        "github": [
            dict(fileIdentifier=gh_id, source="github", license="MIT", fileType="glb", sha256=sha(gh_glb), metadata='{"repo_stars": 3}'),
            dict(fileIdentifier=gh_id.replace("walk", "run"), source="github", license="MIT", fileType="glb", sha256="1" * 64, metadata="{}"),
        ],
    }


@pytest.fixture()
def xl_cache(v1_cache):
    base, written = v1_cache
    rows = xl_rows(base, written)
    for source, source_rows in rows.items():
        write_xl_parquet(base, source, source_rows)
    return base, rows


def test_xl_records_fetch_and_verify_every_source(xl_cache):
    base, rows = xl_cache
    source = ObjaverseXLSource(base)
    records = list(source.records())
    assert len(records) == 7 and source.missing == []
    by_id = {r.file_identifier: r for r in records}
    results = {r.file_identifier: (f, e) for r, (f, e) in zip(records, source.fetch_many(records))}
    ok = {fid for fid, (_, e) in results.items() if e is None}
    assert ok == {rows[s][0]["fileIdentifier"] for s in rows}
    for fid in ok:
        fetched, _ = results[fid]
        assert fetched.sha256 == by_id[fid].sha256 and fetched.local_path.is_file()
        assert fetched.uid == get_uid_from_str(fid)
    gh = results[rows["github"][0]["fileIdentifier"]][0]
    assert gh.local_path == base / "github" / "repos" / "someorg" / "somerepo" / "models" / "walk.glb"
    assert gh.metadata == {"repo_stars": 3, "fileType": "glb"}
    errors = {fid: e for fid, (_, e) in results.items() if e is not None}
    assert isinstance(errors[rows["smithsonian"][1]["fileIdentifier"]], MissingFromCache)
    assert isinstance(errors[rows["sketchfab"][1]["fileIdentifier"]], MissingFromCache)
    assert "run.glb" in str(errors[rows["github"][1]["fileIdentifier"]])


def test_xl_sketchfab_rows_without_the_1_0_object_paths_are_missing_not_bad(xl_cache):
    """Offline, a cache with XL's sketchfab annotations but not Objaverse 1.0's object paths:
    the rows are good records whose fetch names what the cache lacks."""
    base, rows = xl_cache
    (base / "hf-objaverse-v1" / "object-paths.json.gz").unlink()
    source = ObjaverseXLSource(base, XLFilter(sources=("sketchfab",)))
    records = list(source.records())
    assert len(records) == len(rows["sketchfab"]) and all(r.problem is None for r in records)
    [(_, error)] = list(source.fetch_many(records[:1]))
    assert isinstance(error, MissingFromCache) and "object-paths.json.gz" in str(error)


def test_xl_paths_agree_with_objaverse_xl_downloaders(xl_cache):
    """For files already cached, objaverse.xl's own downloaders return the same paths (no download)."""
    import pandas as pd

    base, rows = xl_cache
    source = ObjaverseXLSource(base)
    records = {r.file_identifier: r for r in source.records()}
    for name in ("sketchfab", "smithsonian", "thingiverse"):
        row = rows[name][0]
        frame = pd.DataFrame([row])
        paths = oxl.downloaders[name].download_objects(frame, download_dir=str(base), processes=1)
        assert Path(paths[row["fileIdentifier"]]) == source.expected_path(records[row["fileIdentifier"]])


def test_xl_checksum_mismatch_is_reported(xl_cache):
    base, rows = xl_cache
    source = ObjaverseXLSource(base, XLFilter(sources=("smithsonian",)))
    record = next(r for r in source.records() if r.file_identifier == rows["smithsonian"][0]["fileIdentifier"])
    record.local_path.write_bytes(animated_triangle_glb(shift=8.0))
    with pytest.raises(ChecksumMismatch, match="differs from annotated"):
        source.fetch(record)


def test_xl_filters_and_missing_annotations(xl_cache):
    base, rows = xl_cache
    gh = rows["github"][0]
    listed = frozenset({gh["sha256"], save_uid(rows["thingiverse"][0]["fileIdentifier"]).replace("-", "")})
    source = ObjaverseXLSource(base, XLFilter(ids=listed))
    assert sorted(r.source for r in source.records()) == ["objaverse-xl/github", "objaverse-xl/thingiverse"]
    assert source.dropped["id_list"] == 5
    assert {r.source for r in ObjaverseXLSource(base, XLFilter(file_types=("stl",))).records()} == {"objaverse-xl/thingiverse"}
    assert len(list(ObjaverseXLSource(base, XLFilter(licenses=("MIT",))).records())) == 2
    (base / "github" / "github.parquet").unlink()
    partial = ObjaverseXLSource(base)
    assert len(list(partial.records())) == 5
    [line] = partial.missing
    assert line == f"objaverse-xl/github annotations: not in cache, expected {base / 'github' / 'github.parquet'}"
    with pytest.raises(ValueError, match="unknown"):
        XLFilter(sources=("polyhaven",))


def test_identifiers_map_onto_each_other(xl_cache):
    base, rows = xl_cache
    records = list(ObjaverseXLSource(base).records()) + list(ObjaverseV1Source(base).records())
    index = IdIndex(records)
    smith = rows["smithsonian"][0]
    su = get_uid_from_str(smith["fileIdentifier"])
    assert save_uid(smith["fileIdentifier"]) == su and len(su) == 36
    for key in (su, su.replace("-", ""), su.upper(), smith["sha256"], smith["fileIdentifier"]):
        assert index.get(key).file_identifier == smith["fileIdentifier"]
    assert index.get(A).source == "objaverse-1.0"
    assert index.get("nope") is None
    assert [identifier_kind(k) for k in (A, smith["sha256"], su, smith["fileIdentifier"], "x")] == [
        "v1_uid", "sha256", "save_uid", "file_identifier", "unknown"
    ]


def test_load_id_list_txt_and_csv(tmp_path):
    txt = tmp_path / "ObjV1_curated.txt"
    txt.write_text(f"{A}\n\n# comment\n{B}  \n")
    assert load_id_list(txt) == [A, B]
    csv_file = tmp_path / "meta.csv"
    csv_file.write_text('fileIdentifier,sha256,license\n"https://x/y,z",' + "a" * 64 + ",by\n")
    assert load_id_list(csv_file) == ["a" * 64]
    with pytest.raises(FileNotFoundError, match="id list not found"):
        load_id_list(tmp_path / "absent.txt")
    # Diffusion4D's XL metadata layout: file_identifier, sha256, meta (a Python dict literal).
    meta_csv = tmp_path / "meta_xl_animation_tot.csv"
    meta_csv.write_text(
        "file_identifier,sha256,meta\n"
        + "https://a,"
        + "1" * 64
        + ",\"{'animation_count': 2, 'save_uid': 'x'}\"\n"
        + "https://b,"
        + "2" * 64
        + ",\"{'animation_count': 0}\"\n"
        + "https://c,"
        + "3" * 64
        + ",not a dict\n"
    )
    assert load_id_list(meta_csv) == ["1" * 64, "2" * 64, "3" * 64]
    assert load_id_list(meta_csv, min_animation_count=1) == ["1" * 64]
    with pytest.raises(ValueError, match="needs a 'meta' column"):
        load_id_list(csv_file, min_animation_count=1)


def test_local_folder_source(tmp_path):
    root = tmp_path / "assets"
    (root / "nested").mkdir(parents=True)
    glb = animated_triangle_glb()
    (root / "walk.glb").write_bytes(glb)
    (root / "nested" / "copy.glb").write_bytes(glb)
    (root / "nested" / "Box.OBJ").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (root / "notes.txt").write_text("not an asset")
    source = LocalFolderSource(root)
    records = list(source.records())
    assert [r.metadata["relative_path"] for r in records] == ["nested/Box.OBJ", "nested/copy.glb", "walk.glb"]
    assert records[1].uid == records[1].sha256 == hashlib.sha256(glb).hexdigest() and records[1].problem is None
    duplicate = records[2]  # same bytes and format as nested/copy.glb: a row of its own that names it
    assert (duplicate.problem.decision, duplicate.problem.reason) == ("reject", "duplicate")
    assert "nested/copy.glb" in duplicate.problem.detail and duplicate.metadata["duplicate_of"] == records[1].uid
    assert all(e is None for _, e in source.fetch_many(records[:2]))
    (root / "nested" / "Box.OBJ").write_text("changed")
    with pytest.raises(ChecksumMismatch):
        source.fetch(records[0])
    assert [r.metadata["format"] for r in LocalFolderSource(root, extensions=("obj",)).records()] == ["obj"]
    with pytest.raises(FileNotFoundError, match="asset folder not found"):
        list(LocalFolderSource(tmp_path / "absent").records())


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/assets not present")
def test_local_folder_on_objaverse_xl_test_files(tmp_path):
    records = list(LocalFolderSource(SHARED).records())
    assert sorted(r.metadata["format"] for r in records) == sorted(
        ["abc", "blend", "dae", "fbx", "glb", "gltf", "gltf", "obj", "ply", "stl"]
    )
    results = list(LocalFolderSource(SHARED).fetch_many(records))
    assert all(e is None for _, e in results)
    # The example glb passes the glTF-binary check; a truncated copy does not.
    broken = tmp_path / "cut.glb"
    broken.write_bytes((SHARED / "example.glb").read_bytes()[:1000])
    [(_, error)] = list(LocalFolderSource(tmp_path).fetch_many(LocalFolderSource(tmp_path).records()))
    assert isinstance(error, InvalidAsset)



def test_a_local_file_with_another_mtime_is_the_same_asset_when_its_bytes_are(tmp_path):
    """A node's own copy of the folder (same bytes, other modification times) fetches what the
    driver listed; other bytes of the same size, or another size, are changes."""
    glb = animated_triangle_glb()
    (tmp_path / "copied.glb").write_bytes(glb)
    (tmp_path / "edited.glb").write_bytes(glb)
    (tmp_path / "grown.glb").write_bytes(glb)
    source = LocalFolderSource(tmp_path)
    records = list(source.records())
    for name in ("copied.glb", "edited.glb", "grown.glb"):
        os.utime(tmp_path / name, ns=(0, 10**18))  # a copy: another modification time
    edited = bytearray(glb)
    edited[-1] ^= 0xFF  # same size, other bytes (the last byte of the binary chunk)
    (tmp_path / "edited.glb").write_bytes(bytes(edited))
    (tmp_path / "grown.glb").write_bytes(glb + b"\0" * 4)
    errors = {Path(r.local_path).name: e for r, e in source.fetch_many(records)}
    assert errors["copied.glb"] is None
    assert isinstance(errors["edited.glb"], ChecksumMismatch) and "sha256 differs" in str(errors["edited.glb"])
    assert isinstance(errors["grown.glb"], ChecksumMismatch) and "bytes, listed" in str(errors["grown.glb"])


def test_a_relisted_folder_reads_only_new_or_changed_files(tmp_path, caplog):
    """The digest cache: an unchanged file (same size and modification time) keeps its recorded
    digest without being read, a touched or new file is hashed, a removed one leaves the cache."""
    from d4d.curation.sources.local import read_digests

    assets, cache = tmp_path / "assets", tmp_path / "out" / "listing_digests.parquet"
    assets.mkdir()
    for name, shift in (("a.glb", 1.0), ("b.glb", 2.0), ("c.glb", 3.0)):
        (assets / name).write_bytes(animated_triangle_glb(shift))
    first = {Path(r.local_path).name: r.sha256 for r in LocalFolderSource(assets, digest_cache=cache).records()}
    assert {rel: row[2] for rel, row in read_digests(cache).items()} == first

    stat = (assets / "a.glb").stat()  # rewritten in place, same size, its time put back: the quick check cannot see it
    (assets / "a.glb").write_bytes(animated_triangle_glb(9.0))
    os.utime(assets / "a.glb", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(assets / "b.glb", ns=(0, 10**18))  # touched: hashed again, same bytes
    (assets / "c.glb").unlink()
    (assets / "d.glb").write_bytes(animated_triangle_glb(4.0))
    second = {Path(r.local_path).name: r.sha256 for r in LocalFolderSource(assets, digest_cache=cache).records()}
    assert second["a.glb"] == first["a.glb"] != hashlib.sha256((assets / "a.glb").read_bytes()).hexdigest()  # not read again
    assert second["b.glb"] == first["b.glb"] and second["d.glb"] == hashlib.sha256((assets / "d.glb").read_bytes()).hexdigest()
    assert sorted(read_digests(cache)) == ["a.glb", "b.glb", "d.glb"]  # c.glb is gone

    cache.write_bytes(b"not parquet")  # an unreadable cache: every file hashed, the listing goes on
    third = {Path(r.local_path).name: r.sha256 for r in LocalFolderSource(assets, digest_cache=cache).records()}
    assert third["a.glb"] == hashlib.sha256((assets / "a.glb").read_bytes()).hexdigest()
    assert "unreadable digest cache" in caplog.text and sorted(read_digests(cache)) == ["a.glb", "b.glb", "d.glb"]
    written = cache.stat().st_mtime_ns
    list(LocalFolderSource(assets, digest_cache=cache).records())  # nothing changed: the cache is not rewritten
    assert cache.stat().st_mtime_ns == written


def test_every_entry_of_a_local_folder_gets_exactly_one_record(tmp_path):
    """Directories and broken links named like assets, content-addressed links, the same bytes
    under two formats, hostile names: each entry is one record, none vanishes silently."""
    root = tmp_path / "assets"
    blobs = tmp_path / "blobs"  # a content-addressed cache: targets have no extension
    (root / "snapshot").mkdir(parents=True)
    blobs.mkdir()
    glb = animated_triangle_glb()
    (blobs / hashlib.sha256(glb).hexdigest()).write_bytes(glb)
    (root / "snapshot" / "model.glb").symlink_to(blobs / hashlib.sha256(glb).hexdigest())
    (root / "folder.fbx").mkdir()  # a directory with an asset's name
    (root / "gone.glb").symlink_to(tmp_path / "nowhere.glb")
    (root / "loop.glb").symlink_to(root / "loop.glb")
    (root / "same.obj").write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (root / "same.ply").write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")  # same bytes, another format
    (root / "line\nbreak.glb").write_bytes(glb + b"  ")  # a hostile name (and other bytes)
    records = {r.metadata["relative_path"]: r for r in LocalFolderSource(root).records()}
    assert sorted(records) == sorted(["snapshot/model.glb", "folder.fbx", "gone.glb", "loop.glb", "same.obj", "same.ply", "line\nbreak.glb"])
    problems = {path: (r.problem.decision, r.problem.reason) for path, r in records.items() if r.problem}
    assert problems == {"folder.fbx": ("failed", "not_a_file"), "gone.glb": ("failed", "dangling_link"), "loop.glb": ("failed", "link_loop")}
    assert all("\n" not in r.problem.detail for r in records.values() if r.problem), "a detail must stay on one line"
    linked = records["snapshot/model.glb"]
    assert linked.local_path == root / "snapshot" / "model.glb" and linked.uid == hashlib.sha256(glb).hexdigest()  # imported by the link's name
    assert records["same.obj"].uid != records["same.ply"].uid and {records["same.obj"].problem, records["same.ply"].problem} == {None}
    uids = [r.uid for r in records.values()]
    assert len(set(uids)) == len(uids) and uids == [r.uid for r in LocalFolderSource(root).records()]  # stable across listings
    from d4d.untrusted import check_identifier

    assert all(check_identifier(uid) for uid in uids)


HOSTILE_V1 = {"../../somewhere": "glbs/000-000/x.glb", "a" * 31 + "\0": "glbs/000-000/y.glb", "f" * 32: "../../../etc/passwd", "e" * 32: "/etc/passwd"}


def test_hostile_objaverse_1_identifiers_become_bad_identifier_records(tmp_path):
    """uids and object paths from the cache's JSON that climb out, are absolute or hold NUL bytes
    never become paths: each is a record with a safe uid and the reason, and listing goes on."""
    from d4d.curation.sources.objaverse_v1 import ObjaverseV1Source
    from d4d.untrusted import check_identifier

    objects = {A: v1_annotation(A, 2)} | {uid: v1_annotation(uid, 2) for uid in HOSTILE_V1}
    build_v1_cache(tmp_path, {A: objects[A]}, {A: "000-000"}, cached={A})
    root = tmp_path / "hf-objaverse-v1"
    write_json_gz(root / "object-paths.json.gz", {A: f"glbs/000-000/{A}.glb", **HOSTILE_V1})
    write_json_gz(root / "metadata" / "000-000.json.gz", objects)  # the annotations name them too
    records = list(ObjaverseV1Source(tmp_path).records())
    good = [r for r in records if r.problem is None]
    bad = [r for r in records if r.problem is not None]
    assert [r.uid for r in good] == [A] and len(bad) == len(HOSTILE_V1)
    for record in bad:
        assert record.problem.reason == "bad_identifier" and record.local_path is None and "\n" not in record.problem.detail
        check_identifier(record.uid)  # what the pipeline turns into a path is safe
    assert not any(str(tmp_path.parent) not in str(r.local_path) for r in good)


def test_hostile_objaverse_xl_identifiers_become_bad_identifier_records(xl_cache):
    base, rows = xl_cache
    hostile = [
        dict(fileIdentifier="https://github.com/org/repo/blob/0123abcd/../../../../etc/passwd.glb", source="github", license="MIT", fileType="glb", sha256="2" * 64, metadata="{}"),
        dict(fileIdentifier="https://github.com/../repo/blob/0123abcd/a.glb", source="github", license="MIT", fileType="glb", sha256="3" * 64, metadata="{}"),
        dict(fileIdentifier="https://github.com/org/repo/blob/0123abcd/a\0.glb", source="github", license="MIT", fileType="glb", sha256="4" * 64, metadata="{}"),
        dict(fileIdentifier="https://github.com/org/repo/blob/0123abcd/ok.glb", source="github", license="MIT", fileType="glb", sha256="../../x", metadata="{}"),
    ]
    write_xl_parquet(base, "github", rows["github"] + hostile)
    write_xl_parquet(base, "thingiverse", rows["thingiverse"] + [dict(fileIdentifier="https://www.thingiverse.com/malformed", source="thingiverse",
                                                                       license="cc", fileType="stl", sha256="5" * 64, metadata="{}")])
    records = list(ObjaverseXLSource(base).records())  # a malformed thingiverse id used to raise IndexError here
    bad = [r for r in records if r.problem is not None]
    assert len(bad) == len(hostile) + 1 and all(r.problem.reason == "bad_identifier" for r in bad)
    assert all(r.local_path is None and "\0" not in r.file_identifier for r in bad)
    good = [r for r in records if r.problem is None and r.local_path is not None]
    assert good and all(r.local_path.resolve().is_relative_to(base.resolve()) for r in good)
