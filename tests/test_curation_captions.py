"""Cap3D captions joined onto records, with the paper's prefix."""

import pytest

from d4d.curation.captions import DYNAMIC_PREFIX, caption, join_captions, load_cap3d
from d4d.curation.sources import SourceRecord

V1 = "0123456789abcdef0123456789abcdef"
SHA = "ab" * 32


def write_cap3d(path):
    # Cap3D's format: no header, identifier and caption; csv quoting for commas and quotes.
    path.write_text(
        f'{V1},"A red robot, waving its arm"\n'
        f'{SHA},"A ""flying"" saucer with lights, beams and a dome"\n'
        "B0AF,a captioned ABO-style id\n"
        f"{'cd' * 32},plain caption without quotes\n"
    )
    return path


def records():
    return [
        SourceRecord(V1, "objaverse-1.0", f"https://sketchfab.com/3d-models/{V1}", None, "by"),
        SourceRecord("s-uid", "objaverse-xl/github", "https://github.com/o/r/blob/c/a.glb", SHA, "MIT"),
        SourceRecord(SHA, "local", "/data/a.glb", SHA, None),
        SourceRecord("x-uid", "objaverse-xl/sketchfab", f"https://sketchfab.com/3d-models/{V1}", "ef" * 32, "by"),
        SourceRecord("nothing", "objaverse-xl/smithsonian", "https://si/x.glb", "99" * 32, "CC0"),
    ]


def test_loads_quoted_captions_by_identifier_length(tmp_path):
    caps = load_cap3d(write_cap3d(tmp_path / "Cap3D.csv"))
    assert caps.v1 == {V1: "A red robot, waving its arm"}
    assert caps.xl[SHA] == 'A "flying" saucer with lights, beams and a dome'
    assert caps.other == {"b0af": "a captioned ABO-style id"}
    assert len(caps) == 4
    only = load_cap3d(tmp_path / "Cap3D.csv", keys={SHA})
    assert len(only) == 1 and SHA in only.xl


def test_join_prefixes_and_matches_by_uid_or_sha256(tmp_path):
    caps = load_cap3d(write_cap3d(tmp_path / "Cap3D.csv"))
    joined = [c for _, c in join_captions(records(), caps)]
    assert joined == [
        "a dynamic asset, A red robot, waving its arm",
        'a dynamic asset, A "flying" saucer with lights, beams and a dome',
        'a dynamic asset, A "flying" saucer with lights, beams and a dome',
        "a dynamic asset, A red robot, waving its arm",  # XL sketchfab row: found by its 1.0 uid
        None,
    ]
    assert DYNAMIC_PREFIX == "a dynamic asset, "
    assert caption(records()[0], caps, prefix="") == "A red robot, waving its arm"


def test_malformed_rows_name_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{V1},fine\n{SHA},too,many,columns\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected 2 columns"):
        load_cap3d(bad)
