"""Ray Data reads the same shards and decodes them to the same tensors as ShardDataset."""

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from d4d.shards.dataset import ShardDataset
from d4d.shards.ray_data import DecodeBatch, read_shards_ray, torch_collate
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    renders = [make_shard_render(root / "r", f"asset{i}", caption=f"ball {i}") for i in range(4)]
    write_shards(renders, root / "s", ShardWriteConfig(codec="lossy", rows_per_group=2, max_shard_mb=0.06))
    return root / "s"


def test_decode_batch_without_ray_matches_the_torch_reader(shard_dir):
    table = pq.read_table(shard_dir)
    batch = DecodeBatch(videos=("dynamic", "front"))(table)
    assert batch["dynamic_video"].shape == (4, 8, 3, 32, 32) and batch["dynamic_video"].dtype == np.float32
    assert batch["front_alpha"].shape == (4, 8, 1, 32, 32) and batch["dynamic_c2w"].shape == (4, 8, 4, 4)
    assert list(batch["uid"]) == table.column("uid").to_pylist()
    by_uid = {s["uid"]: s for s in ShardDataset(shard_dir, videos=("dynamic", "front"), shuffle=False)}
    for i, uid in enumerate(batch["uid"]):
        np.testing.assert_array_equal(batch["dynamic_video"][i], by_uid[uid]["dynamic_video"].numpy())
        np.testing.assert_array_equal(batch["motion_magnitude"][i], by_uid[uid]["motion_magnitude"].numpy())


@pytest.mark.slow
def test_ray_data_reads_and_filters_the_shards(shard_dir):
    ray = pytest.importorskip("ray")
    from d4d.storage import upload
    from d4d.testing.s3_server import s3_server

    with s3_server(buckets=("d4d",)):  # started before Ray, whose workers inherit its endpoint and credentials
        for shard in shard_dir.glob("part-*.parquet"):
            upload(shard, f"s3://d4d/shards/{shard.name}")
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            batches = list(read_shards_ray(shard_dir, videos=("static",)).iter_torch_batches(batch_size=4, collate_fn=torch_collate))
            rows = {uid: i for batch in batches for i, uid in enumerate(batch["uid"])}
            assert sorted(rows) == sorted(pq.read_table(shard_dir, columns=["uid"]).column("uid").to_pylist())
            video = torch.cat([b["static_video"] for b in batches])
            assert video.shape == (4, 8, 3, 32, 32) and video.dtype == torch.float32
            assert -1 <= video.min() and video.max() <= 1
            reference = {s["uid"]: s for s in ShardDataset(shard_dir, videos=("static",), shuffle=False)}
            for batch in batches:
                for i, uid in enumerate(batch["uid"]):
                    assert torch.equal(batch["static_video"][i], reference[uid]["static_video"])
                    assert torch.equal(batch["static_c2w"][i], reference[uid]["static_c2w"])
            kept = read_shards_ray(shard_dir, videos=(), filter=pc.field("caption").isin(["ball 1", "ball 2"])).take_all()
            assert sorted(r["caption"] for r in kept) == ["ball 1", "ball 2"]
            # The same shards from object storage (a local S3 server): the same rows, the same pixels.
            remote = read_shards_ray("s3://d4d/shards", videos=("static",)).take_all()
            assert sorted(r["uid"] for r in remote) == sorted(reference)
            assert all(torch.equal(torch.tensor(r["static_video"]), reference[r["uid"]]["static_video"]) for r in remote)
        finally:
            ray.shutdown()
