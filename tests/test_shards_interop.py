"""Shards open in common readers: pandas, DuckDB and Hugging Face datasets."""

import duckdb
import pandas as pd
import pytest

from d4d.shards.video import decode_rgba
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop")
    renders = [make_shard_render(root / "r", f"asset{i}", caption=f"ball {i}") for i in range(5)]
    write_shards(renders, root / "s", ShardWriteConfig(codec="lossy", rows_per_group=2, max_shard_mb=0.05))
    assert len(list((root / "s").glob("part-*.parquet"))) >= 2
    return root / "s"


def test_pandas_reads_the_directory(shard_dir):
    frame = pd.read_parquet(shard_dir, columns=["uid", "caption", "motion_magnitude", "dynamic_video", "K"])
    assert len(frame) == 5 and frame["uid"].is_unique
    assert sorted(frame["caption"]) == [f"ball {i}" for i in range(5)]
    assert (frame["motion_magnitude"] > 0).all()
    assert decode_rgba(frame["dynamic_video"].iloc[0]).shape == (8, 32, 32, 4)
    assert len(frame["K"].iloc[0]) == 9


def test_duckdb_queries_the_shards(shard_dir):
    rows = duckdb.sql(
        f"SELECT caption, len(dynamic_times) AS t, octet_length(dynamic_video) AS nbytes "
        f"FROM read_parquet('{shard_dir}/part-*.parquet') WHERE motion_magnitude > 0 ORDER BY caption"
    ).fetchall()
    assert [r[0] for r in rows] == [f"ball {i}" for i in range(5)]
    assert all(t == 8 and nbytes > 100 for _, t, nbytes in rows)


def test_huggingface_datasets_loads_the_shards(shard_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    files = sorted(str(p) for p in shard_dir.glob("part-*.parquet"))
    data = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path))
    assert data.num_rows == 5
    assert sorted(data["caption"]) == [f"ball {i}" for i in range(5)]
    first = data[0]
    assert decode_rgba(first["static_video"]).shape == (8, 32, 32, 4)
    assert len(first["static_c2w"]) == 8 * 16
