"""Shards written by d4d 0.1 (schema version 1) stay usable: read, verified, given tensor columns,
reconstructed from, trained on."""

import pyarrow.parquet as pq
import pytest
import torch

from d4d.shards.dataset import ShardDataset
from d4d.shards.schema import HASH_COLUMN, schema_version
from d4d.shards.tensors import add_tensor_columns
from d4d.shards.verify import verify_shards
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import downgrade_to_v1, make_shard_render


@pytest.fixture
def v1_dir(tmp_path):
    renders = [make_shard_render(tmp_path / "r", f"asset{i}") for i in range(3)]
    write_shards(renders, tmp_path / "v2", ShardWriteConfig(codec="lossless"))
    (tmp_path / "v1").mkdir()
    [shard] = sorted((tmp_path / "v2").glob("part-*.parquet"))
    downgrade_to_v1(shard, tmp_path / "v1" / shard.name)
    return tmp_path / "v1"


def test_a_version_1_shard_is_read_and_verified(v1_dir):
    [path] = list(v1_dir.glob("*.parquet"))
    assert schema_version(pq.read_schema(path)) == 1 and "asset_uid" not in pq.read_schema(path).names
    assert verify_shards(v1_dir) == (3, [])
    samples = list(ShardDataset(v1_dir, videos=("dynamic", "static"), second_orbit=0.5))
    assert len(samples) == 3 and {s["orbit"] for s in samples} == {1}
    assert samples[0]["dynamic_video"].shape == (8, 3, 32, 32)


def test_tensor_columns_added_to_a_version_1_shard_keep_it_version_1(v1_dir):
    [path] = list(v1_dir.glob("*.parquet"))
    hashes = pq.read_table(path, columns=["uid", HASH_COLUMN]).to_pylist()
    uids = [h["uid"] for h in hashes]
    latents = {uid: torch.randn(8, 4, 4, 4) for uid in uids}
    assert add_tensor_columns(v1_dir, {u: {"latents_dynamic": latents[u]} for u in uids}, {"latents_dynamic": "random"}) == [path]
    assert schema_version(pq.read_schema(path)) == 1
    assert pq.read_table(path, columns=["uid", HASH_COLUMN]).to_pylist() == hashes
    assert verify_shards(v1_dir) == (3, [])
    for sample in ShardDataset(v1_dir, videos=("dynamic",)):
        assert torch.equal(sample["latents_dynamic"], latents[sample["uid"]])


def test_a_version_1_row_is_a_reconstruction_input(v1_dir):
    from d4d.reconstruction.inputs import load_input

    [path] = list(v1_dir.glob("*.parquet"))
    sample = load_input(f"{path}#1")
    assert set(sample.videos) == {"dynamic", "static"} and sample.videos["dynamic"].rgba.shape == (8, 32, 32, 4)
