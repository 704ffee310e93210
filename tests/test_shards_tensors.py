"""Optional tensor columns: added atomically to existing shards, carried by schema, verify and reader."""

import pyarrow.parquet as pq
import pytest
import torch

from d4d.shards.dataset import ShardDataset
from d4d.shards.schema import HASH_COLUMN, tensors_in
from d4d.shards.tensors import add_tensor_columns, tensor_from_columns, tensor_to_columns
from d4d.shards.verify import verify_shards
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render

PRODUCER = {"latents_dynamic": "tiny random VAE, scale 0.18215", "text_embedding": "random text encoder"}


@pytest.fixture
def shard_dir(tmp_path):
    renders = [make_shard_render(tmp_path / "r", f"asset{i}") for i in range(5)]
    write_shards(renders, tmp_path / "s", ShardWriteConfig(codec="lossy", rows_per_group=2, max_shard_mb=0.06))
    return tmp_path / "s"


def all_uids(shard_dir):
    return pq.read_table(shard_dir, columns=["uid"]).column("uid").to_pylist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8])
def test_tensor_columns_round_trip(dtype):
    tensor = (torch.randn(3, 4, 2, 5) * 50).to(dtype)
    raw, shape, name = tensor_to_columns(tensor)
    assert shape == [3, 4, 2, 5] and name == str(dtype).removeprefix("torch.")
    back = tensor_from_columns(raw, shape, name)
    assert back.dtype == dtype and torch.equal(back, tensor)
    with pytest.raises(ValueError, match="needs"):
        tensor_from_columns(raw[:-1], shape, name)
    with pytest.raises(ValueError, match="tensor dtype complex64"):
        tensor_to_columns(torch.zeros(2, dtype=torch.complex64))


def test_add_latents_keeps_hashes_and_readers_return_them(shard_dir):
    paths = sorted(shard_dir.glob("part-*.parquet"))
    assert len(paths) >= 2
    hashes = pq.read_table(shard_dir, columns=["uid", HASH_COLUMN]).to_pylist()
    uids = all_uids(shard_dir)
    generator = torch.Generator().manual_seed(0)
    latents = {uid: torch.randn(8, 4, 4, 4, generator=generator).to(torch.bfloat16) for uid in uids}
    text = {uid: torch.randn(7, 16, generator=generator) for uid in uids}
    rewritten = add_tensor_columns(shard_dir, {u: {"latents_dynamic": latents[u], "text_embedding": text[u]} for u in uids}, PRODUCER)
    assert rewritten == paths
    assert pq.read_table(shard_dir, columns=["uid", HASH_COLUMN]).to_pylist() == hashes
    assert tensors_in(pq.read_schema(paths[0])) == PRODUCER
    assert verify_shards(shard_dir) == (5, [])
    samples = list(ShardDataset(shard_dir, videos=("dynamic",)))  # present in every shard: loaded by default
    assert len(samples) == 5
    for sample in samples:
        assert sample["latents_dynamic"].dtype == torch.bfloat16
        assert torch.equal(sample["latents_dynamic"], latents[sample["uid"]])
        assert torch.equal(sample["text_embedding"], text[sample["uid"]])


def test_partial_updates_touch_only_their_shards(shard_dir):
    paths = sorted(shard_dir.glob("part-*.parquet"))
    first_uid = pq.read_table(paths[0], columns=["uid"]).column("uid")[0].as_py()
    untouched = {p: p.stat().st_mtime_ns for p in paths[1:]}
    assert add_tensor_columns(shard_dir, {first_uid: {"latents_dynamic": torch.ones(2, 2)}}, PRODUCER) == [paths[0]]
    assert {p: p.stat().st_mtime_ns for p in paths[1:]} == untouched
    column = pq.read_table(paths[0], columns=["uid", "latents_dynamic"]).to_pylist()
    assert [r["latents_dynamic"] is not None for r in column] == [r["uid"] == first_uid for r in column]
    with pytest.raises(ValueError, match="has no tensor columns"):
        ShardDataset(shard_dir, tensors=("latents_dynamic",))  # not every shard has it
    assert "latents_dynamic" not in next(iter(ShardDataset(shard_dir, videos=())))
    # a second update replaces the value and keeps the others
    add_tensor_columns(shard_dir, {first_uid: {"latents_dynamic": torch.zeros(3)}}, PRODUCER)
    row = [r for r in pq.read_table(paths[0]).to_pylist() if r["uid"] == first_uid][0]
    assert row["latents_dynamic_shape"] == [3] and verify_shards(shard_dir)[1] == []


def test_bad_updates_write_nothing(shard_dir):
    before = {p: p.read_bytes() for p in shard_dir.glob("part-*.parquet")}
    uid = all_uids(shard_dir)[0]
    with pytest.raises(ValueError, match="1 uids are in no shard"):
        add_tensor_columns(shard_dir, {uid: {"latents_static": torch.ones(1)}, "nope": {"latents_static": torch.ones(1)}}, {"latents_static": "x"})
    with pytest.raises(ValueError, match="not one of"):
        add_tensor_columns(shard_dir, {uid: {"latents_side": torch.ones(1)}}, {"latents_side": "x"})
    with pytest.raises(ValueError, match="no producer"):
        add_tensor_columns(shard_dir, {uid: {"latents_static": torch.ones(1)}}, {})
    assert {p: p.read_bytes() for p in shard_dir.glob("part-*.parquet")} == before
