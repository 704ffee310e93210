"""d4d-shards write: rows read back as rendered, bounded shards, atomic and resumable writes."""

import hashlib
import json
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

from d4d.measures import motion_magnitude_per_frame
from d4d.rendering.contract import load_render, read_asset
from d4d.shards.cli import main
from d4d.shards.files import SHARD_PATTERN, TEMP_PREFIX, ShardNames
from d4d.shards.from_render import render_uid
from d4d.shards.schema import META_VERSION, SCHEMA_VERSION
from d4d.shards.video import decode_rgba
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import LOSSY_MAX_ALPHA_MEAN_ERROR, LOSSY_MIN_PSNR_DB, make_shard_render, premultiplied_psnr


def read_rows(shard_dir):
    return {row["uid"]: row for path in sorted(shard_dir.glob("part-*.parquet")) for row in pq.read_table(path).to_pylist()}


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("renders")
    return [make_shard_render(root, f"asset{i}", caption=f"a ball number {i}") for i in range(5)]


def test_lossless_rows_read_back_identical(renders, tmp_path):
    assert main(["write", *map(str, renders), "--out", str(tmp_path / "s"), "--codec", "lossless"]) == 0
    rows = read_rows(tmp_path / "s")
    assert len(rows) == len(renders)
    for render_dir in renders:
        sample, asset = load_render(render_dir), json.loads((render_dir / "asset.json").read_text())
        row = rows[asset["source"]["sha256"]]
        assert row["caption"] == asset["caption"] and row["source"] == asset["source"]["path"]
        assert (row["width"], row["height"], row["num_frames"]) == (32, 32, 8)
        np.testing.assert_array_equal(np.reshape(row["K"], (3, 3)), sample.K)
        assert (row["frame_start"], row["frame_end"], row["fps"]) == (1.0, 17.0, 24.0)
        assert row["motion_magnitude"] == asset["motion_magnitude"] > 0
        assert row["motion_magnitude_per_frame"] == asset["motion_magnitude_per_frame"]
        assert json.loads(row["asset_json"]) == asset
        assert row["video_codec"] == "ffv1-bgra-mkv"
        for name, video in sample.videos.items():
            np.testing.assert_array_equal(decode_rgba(row[f"{name}_video"]), video.rgba)
            np.testing.assert_array_equal(np.reshape(row[f"{name}_c2w"], (-1, 4, 4)), video.c2w)
            assert row[f"{name}_times"] == video.times.tolist()
            assert row[f"{name}_azimuth_deg"] == video.azimuths_deg.tolist()
    metadata = pq.read_schema(next((tmp_path / "s").glob("part-*.parquet"))).metadata
    assert metadata[META_VERSION] == str(SCHEMA_VERSION).encode()


def test_lossy_rows_within_tolerance(tmp_path):
    render_dir = make_shard_render(tmp_path / "r", "big", size=64)
    write_shards([render_dir], tmp_path / "s", ShardWriteConfig(codec="lossy"))
    (row,) = read_rows(tmp_path / "s").values()
    assert row["video_codec"] == "vp9-yuva420p-webm"
    for name, video in load_render(render_dir).videos.items():
        decoded = decode_rgba(row[f"{name}_video"])
        assert premultiplied_psnr(decoded, video.rgba) >= LOSSY_MIN_PSNR_DB
        assert np.abs(decoded[..., 3].astype(int) - video.rgba[..., 3]).mean() <= LOSSY_MAX_ALPHA_MEAN_ERROR


def test_shards_are_size_bounded_with_small_row_groups(renders, tmp_path):
    # A row is about 30 KB here: a 0.1 MB bound fits two one-row groups (and their footer) per shard, not three.
    report = write_shards(renders, tmp_path, ShardWriteConfig(codec="lossless", max_shard_mb=0.1, rows_per_group=1))
    shards = sorted(tmp_path.glob("part-*.parquet"))
    assert report.shards == shards and len(shards) >= 2
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in shards) == len(renders)
    assert any(pq.ParquetFile(p).metadata.num_row_groups >= 2 for p in shards)
    for path in shards:
        assert path.stat().st_size <= 0.1e6
        metadata = pq.ParquetFile(path).metadata
        assert all(metadata.row_group(g).num_rows <= 1 for g in range(metadata.num_row_groups))


def test_rerun_skips_written_uids_and_appends_new_ones(renders, tmp_path):
    first = write_shards(renders[:3], tmp_path, ShardWriteConfig(codec="lossless"))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*.parquet")}
    second = write_shards(renders, tmp_path, ShardWriteConfig(codec="lossless"))
    assert len(first.written) == 3 and second.skipped == list(map(str, renders[:3]))
    assert second.written == list(map(str, renders[3:]))
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*.parquet") if p.name in before} == before
    assert len(read_rows(tmp_path)) == len(renders)


class CrashingCaptions(dict):
    """A caption table that interrupts the run (as Ctrl-C would) at its ``crash_at``-th lookup."""

    def __init__(self, crash_at):
        super().__init__({"unrelated": "caption"})
        self.lookups, self.crash_at = 0, crash_at

    def __contains__(self, key):
        self.lookups += 1
        if self.lookups == self.crash_at:
            raise KeyboardInterrupt
        return False


def test_interrupted_write_leaves_only_complete_shards_and_resumes(renders, tmp_path):
    # Each render looks up 4 caption keys: the crash hits the fifth render, after four rows went
    # into small shards (rows_per_group=1, a bound of a few rows), the last of them still open.
    with pytest.raises(KeyboardInterrupt):
        write_shards(renders, tmp_path, ShardWriteConfig(codec="lossless", rows_per_group=1, max_shard_mb=0.04), captions=CrashingCaptions(crash_at=4 * 4 + 1))
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))
    partial = read_rows(tmp_path)
    assert 0 < len(partial) < len(renders)
    for path in tmp_path.glob("part-*.parquet"):
        pq.read_table(path)  # every visible shard is complete
    report = write_shards(renders, tmp_path, ShardWriteConfig(codec="lossless", rows_per_group=1, max_shard_mb=0.04))
    assert len(report.skipped) == len(partial) and len(report.written) == len(renders) - len(partial)
    assert len(read_rows(tmp_path)) == len(renders)


class MeetingCaptions(dict):
    """A caption table whose ``meet_at``-th lookup waits at ``barrier`` (each render looks up 4 keys)."""

    def __init__(self, barrier, meet_at):
        super().__init__({"unrelated": "caption"})
        self.barrier, self.lookups, self.meet_at = barrier, 0, meet_at

    def __contains__(self, key):
        self.lookups += 1
        if self.lookups == self.meet_at:
            self.barrier.wait()
        return False


def test_shard_names_of_several_writers_never_meet():
    assert [ShardNames(1, 3).after(i) for i in (-1, 0, 1, 3, 4)] == [1, 1, 4, 4, 7]
    assert ShardNames().next_index(["part-00007.parquet", "_README.md"]) == 8
    assert ShardNames(0, 2).next_index(["part-00007.parquet", "part-00003.parquet"]) == 8
    taken = [sorted(ShardNames(k, 3).after(i) for i in range(12)) for k in range(3)]
    assert not set(taken[0]) & set(taken[1]) | set(taken[1]) & set(taken[2]) | set(taken[0]) & set(taken[2])
    with pytest.raises(ValueError, match="writer 2 of 2"):
        ShardNames(2, 2)


def test_two_writers_write_one_directory_at_once_under_names_of_their_own(renders, tmp_path):
    # Small shards (rows_per_group=1, a bound of a few rows): both writers meet while each has a
    # shard open (at the lookups of their second render), and a lone writer is refused meanwhile.
    refused = []

    def lone_writer():
        try:
            write_shards(renders[:1], tmp_path, ShardWriteConfig(codec="lossless"))
        except RuntimeError as exc:
            refused.append(str(exc))

    barrier = threading.Barrier(2, action=lone_writer, timeout=60)
    config = ShardWriteConfig(codec="lossless", rows_per_group=1, max_shard_mb=0.04)
    shares = {0: renders[:3], 1: renders[3:]}
    reports = {}

    def write(k):
        reports[k] = write_shards(shares[k], tmp_path, config, captions=MeetingCaptions(barrier, 4 + 1), names=ShardNames(k, 2))

    threads = [threading.Thread(target=write, args=(k,)) for k in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert refused and "another d4d-shards writer holds" in refused[0]
    for k, report in reports.items():
        assert len(report.written) == len(shares[k]) and report.shards and not report.failed
        for shard in report.shards:  # writer k's shards carry its rows and an index of its own
            assert int(SHARD_PATTERN.match(shard.name).group(1)) % 2 == k
            assert set(pq.read_table(shard, columns=["uid"]).column("uid").to_pylist()) <= {render_uid(r, read_asset(r)) for r in shares[k]}
    rows = [uid for path in sorted(tmp_path.glob("part-*.parquet")) for uid in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()]
    assert len(rows) == len(renders) == len(set(rows)) and not list(tmp_path.glob(f"{TEMP_PREFIX}*"))
    assert (tmp_path / "_README.md").is_file()


def test_captions_csv_uid_fallbacks_and_computed_motion(tmp_path):
    by_sha = make_shard_render(tmp_path / "r", "with_sha")
    by_dir = make_shard_render(tmp_path / "r", "0123456789abcdef0123456789abcdef", source_sha256=None, with_motion=False)
    sha = hashlib.sha256(b"asset:with_sha").hexdigest()
    (tmp_path / "cap3d.csv").write_text(f'{sha},"a ball, rolling"\n0123456789abcdef0123456789abcdef,a striped ball\n')
    assert main(["write", str(by_sha), str(by_dir), "--out", str(tmp_path / "s"), "--captions", str(tmp_path / "cap3d.csv")]) == 0
    rows = read_rows(tmp_path / "s")
    assert rows[sha]["caption"] == "a ball, rolling"
    row = rows["0123456789abcdef0123456789abcdef"]
    assert row["caption"] == "a striped ball" and row["source_sha256"] is None
    sample = load_render(by_dir)
    expected = motion_magnitude_per_frame(sample.videos["dynamic"].rgba, sample.videos["static"].rgba)
    np.testing.assert_allclose(row["motion_magnitude_per_frame"], expected)
    assert row["motion_magnitude"] == pytest.approx(expected.mean()) and row["motion_magnitude_version"] == 1


def test_missing_videos_are_null_and_motion_unknown(tmp_path):
    render_dir = make_shard_render(tmp_path / "r", "front_only", videos=("front",))
    write_shards([render_dir], tmp_path / "s", ShardWriteConfig(codec="lossless"))
    (row,) = read_rows(tmp_path / "s").values()
    assert row["front_video"] is not None and row["dynamic_video"] is None and row["static_c2w"] is None
    assert row["motion_magnitude"] is None and row["motion_magnitude_per_frame"] is None


def test_broken_and_duplicate_render_dirs_fail_without_stopping_the_run(tmp_path, capsys):
    good = make_shard_render(tmp_path / "r", "good")
    twin = make_shard_render(tmp_path / "r2", "good")  # same source sha256
    broken = make_shard_render(tmp_path / "r", "broken")
    (broken / "dynamic" / "003.png").write_bytes(b"not a png")
    code = main(["write", str(good), str(broken), str(twin), str(tmp_path / "nowhere"), "--out", str(tmp_path / "s")])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken/dynamic/003.png: cannot read frame" in err
    assert f"{twin}: duplicate uid" in err and "nowhere/transforms.json: missing" in err
    assert len(read_rows(tmp_path / "s")) == 1


def test_cli_reports_bad_arguments(tmp_path, capsys):
    assert main(["write", str(tmp_path), "--out", str(tmp_path / "s"), "--captions", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: caption file not found" in capsys.readouterr().err
    assert main(["write", str(tmp_path), "--out", str(tmp_path / "s"), "--crf", "99"]) == 2
    assert "crf must be in 0..63, got 99" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["write", str(tmp_path), "--out", str(tmp_path / "s"), "--codec", "h264"])
