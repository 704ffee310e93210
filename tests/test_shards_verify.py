"""d4d-shards verify: passes valid shards, names the file (and row) of every problem."""

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from d4d.shards.cli import main
from d4d.shards.schema import HASH_COLUMN, META_VERSION, content_hash, shard_schema
from d4d.shards.verify import verify_shards
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    renders = [make_shard_render(root / "r", f"asset{i}") for i in range(4)]
    write_shards(renders, root / "s", ShardWriteConfig(codec="lossy", rows_per_group=2))
    (shard,) = (root / "s").glob("part-*.parquet")
    return shard


@pytest.fixture
def shard(pristine, tmp_path):
    (tmp_path / "s").mkdir()
    return shutil.copy(pristine, tmp_path / "s" / pristine.name)


def rewrite(shard, edit, schema=None):
    """Rewrite ``shard`` as valid Parquet after ``edit(rows)`` changed its rows in place."""
    table = pq.read_table(shard)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema or table.schema), shard, row_group_size=2)


def verify_cli(shard, capsys):
    code = main(["verify", str(shard.parent)])
    return code, capsys.readouterr()


def test_valid_shards_pass(shard, capsys):
    code, out = verify_cli(shard, capsys)
    assert code == 0 and "4 rows checked, 0 problems" in out.out


def test_truncated_shard_is_named(shard, capsys):
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    code, out = verify_cli(shard, capsys)
    assert code == 1 and f"{shard}: cannot open as Parquet" in out.err


def test_flipped_byte_in_a_video_is_caught(shard, capsys):
    column = pq.ParquetFile(shard).schema_arrow.get_field_index("dynamic_video")
    chunk = pq.ParquetFile(shard).metadata.row_group(1).column(column)
    data = bytearray(shard.read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, out = verify_cli(shard, capsys)
    assert code == 1 and f"{shard}: row group 1 (rows 2-3) unreadable" in out.err


def test_edited_content_fails_its_hash_and_names_the_row(shard, capsys):
    def edit(rows):
        rows[3]["caption"] = "something else"

    rewrite(shard, edit)
    uid = pq.read_table(shard).column("uid")[3].as_py()
    code, out = verify_cli(shard, capsys)
    assert code == 1 and f"{shard}: row 3 (uid {uid}): {HASH_COLUMN} does not match" in out.err
    assert "row 0" not in out.err


def test_undecodable_video_and_wrong_frame_counts_are_named(shard):
    def edit(rows):
        rows[1]["front_video"] = rows[1]["front_video"][:300]
        rows[2]["static_times"] = rows[2]["static_times"][:-1]
        for row in rows:
            row[HASH_COLUMN] = content_hash(row)  # well-formed rows, broken content

    rewrite(shard, edit)
    checked, problems = verify_shards(shard.parent)
    assert checked == 4
    assert [(p.row, p.message.split(":")[0]) for p in problems] == [(1, "front video"), (2, "static")]
    assert "per-frame columns" in problems[1].message


def test_wrong_schema_version_and_duplicates(shard, tmp_path):
    table = pq.read_table(shard)
    pq.write_table(table.replace_schema_metadata({META_VERSION: b"99"}), shard)
    problems = verify_shards(shard.parent)[1]
    assert [str(p) for p in problems] == [f"{shard}: schema version '99', this reader knows 1, 2"]
    pq.write_table(table.cast(shard_schema()), shard)  # restore, then duplicate it
    twin = shutil.copy(shard, shard.with_name("part-00001.parquet"))
    problems = verify_shards(shard.parent)[1]
    assert len(problems) == 4 and all(p.path == twin and "duplicate uid" in p.message for p in problems)


def test_missing_directory_and_empty_directory(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert verify_shards(tmp_path)[1][0].message == "no shards (part-*.parquet)"
