"""ShardDataset: tensors as documented, rank/worker split without overlap, deterministic order, exact resume."""

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from d4d.rendering.contract import load_render
from d4d.shards.dataset import ShardDataset
from d4d.shards.order import buffer_shuffle, epoch_order, rank_share, worker_share
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render

N = 10


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    renders = {}
    for i in range(N):
        path = make_shard_render(root / "r", f"asset{i}", caption=f"ball {i}")
        renders[load_render(path).asset.source.sha256] = path
    write_shards(list(renders.values()), root / "s", ShardWriteConfig(codec="lossless", rows_per_group=2, max_shard_mb=0.1))
    assert len(list((root / "s").glob("part-*.parquet"))) >= 2
    return root / "s", renders


def uids(samples):
    return [uid for s in samples for uid in (s["uid"] if isinstance(s["uid"], list) else [s["uid"]])]


def loader_uids(dataset, batch_size, num_workers):
    return uids(DataLoader(dataset, batch_size=batch_size, num_workers=num_workers))


def test_samples_have_documented_shapes_dtypes_and_values(data):
    shard_dir, renders = data
    sample = next(iter(ShardDataset(shard_dir, videos=("dynamic", "static", "front"), shuffle=False)))
    render = load_render(renders[sample["uid"]])
    assert sample["caption"] == render.asset.caption and sample["position"] == 0
    assert sample["K"].dtype == torch.float32 and torch.allclose(sample["K"], torch.tensor(render.K, dtype=torch.float32))
    assert sample["motion_magnitude"].shape == () and sample["motion_magnitude"].item() == pytest.approx(render.asset.motion_magnitude)
    assert sample["motion_magnitude_per_frame"].shape == (8,)
    for name, video in render.videos.items():
        frames, alpha = sample[f"{name}_video"], sample[f"{name}_alpha"]
        assert frames.shape == (8, 3, 32, 32) and alpha.shape == (8, 1, 32, 32)
        assert frames.dtype == alpha.dtype == torch.float32
        assert frames.min() >= -1 and frames.max() <= 1 and alpha.min() >= 0 and alpha.max() <= 1
        expected = torch.from_numpy(video.rgba).permute(0, 3, 1, 2).float() / 255
        torch.testing.assert_close(frames, expected[:, :3] * 2 - 1, atol=1e-6, rtol=0)
        torch.testing.assert_close(alpha, expected[:, 3:], atol=1e-6, rtol=0)
        torch.testing.assert_close(sample[f"{name}_c2w"], torch.tensor(video.c2w, dtype=torch.float32))
        torch.testing.assert_close(sample[f"{name}_times"], torch.tensor(video.times, dtype=torch.float32))


def test_background_composites_over_grey(data):
    shard_dir, _ = data
    straight = next(iter(ShardDataset(shard_dir, videos=("dynamic",), shuffle=False)))
    white = next(iter(ShardDataset(shard_dir, videos=("dynamic",), shuffle=False, background=1.0)))
    alpha = straight["dynamic_alpha"]
    expected = ((straight["dynamic_video"] + 1) / 2 * alpha + (1 - alpha)) * 2 - 1
    torch.testing.assert_close(white["dynamic_video"], expected)
    assert (white["dynamic_video"][(alpha == 0).expand(-1, 3, -1, -1)] == 1).all()


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_times_workers_cover_every_sample_once(data, world_size):
    shard_dir, renders = data
    per_rank = [
        loader_uids(ShardDataset(shard_dir, videos=("static",), rank=r, world_size=world_size, batch_size=2, seed=7), 2, num_workers=2)
        for r in range(world_size)
    ]
    padded = -(-N // world_size) * world_size
    assert {len(u) for u in per_rank} == {padded // world_size}
    flat = [u for rank in per_rank for u in rank]
    assert set(flat) == set(renders)  # full coverage
    assert len(flat) - len(set(flat)) == padded - N  # overlap only where DDP padding must repeat
    dropped = [
        loader_uids(ShardDataset(shard_dir, videos=("static",), rank=r, world_size=world_size, batch_size=2, seed=7, drop_last=True), 2, 2)
        for r in range(world_size)
    ]
    flat = [u for rank in dropped for u in rank]
    assert len(flat) == len(set(flat)) == N // world_size * world_size  # no overlap at all


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_dataloader_workers_deliver_the_rank_sequence_in_order(data):
    shard_dir, _ = data
    dataset = ShardDataset(shard_dir, videos=("static",), rank=0, world_size=1, batch_size=3, seed=1)
    reference = uids(iter(dataset))
    for num_workers in (2, 3):
        batches = list(DataLoader(dataset, batch_size=3, num_workers=num_workers))
        assert uids(batches) == reference
        assert torch.cat([b["position"] for b in batches]).tolist() == list(range(N))


def test_order_is_deterministic_per_seed_and_epoch_and_mixes_shards(data):
    shard_dir, _ = data
    dataset = ShardDataset(shard_dir, videos=(), seed=3)
    stored = uids(iter(ShardDataset(shard_dir, videos=(), shuffle=False)))
    first = uids(iter(dataset))
    assert uids(iter(ShardDataset(shard_dir, videos=(), seed=3))) == first
    dataset.set_epoch(1)
    second = uids(iter(dataset))
    assert sorted(first) == sorted(second) == sorted(stored)
    assert first != second and first != stored
    assert uids(iter(ShardDataset(shard_dir, videos=(), seed=4))) != first


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_resume_mid_epoch_continues_exactly(data, rank, world_size):
    shard_dir, _ = data
    make = lambda batch_size: ShardDataset(shard_dir, videos=("dynamic",), rank=rank, world_size=world_size, batch_size=batch_size, seed=5)  # noqa: E731
    dataset = make(2)
    dataset.set_epoch(2)
    full = loader_uids(dataset, 2, num_workers=2)
    loader = iter(DataLoader(dataset, batch_size=2, num_workers=2))
    consumed = uids([next(loader)]) if world_size > 1 else uids([next(loader), next(loader)])
    assert consumed == full[: len(consumed)]
    state = dataset.state_dict(consumed=len(consumed))
    del loader

    resumed = make(2)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the training loop calls it again: same epoch keeps the resume point
    assert loader_uids(resumed, 2, num_workers=2) == full[len(consumed) :]
    # another worker count and batch size resume to the same sequence
    other = make(1)
    other.load_state_dict(state)
    assert loader_uids(other, 1, num_workers=3) == full[len(consumed) :]
    other.set_epoch(3)  # the next epoch starts from its beginning
    assert len(loader_uids(other, 1, num_workers=0)) == len(full)


def test_in_process_iteration_counts_consumed_samples(data):
    shard_dir, _ = data
    dataset = ShardDataset(shard_dir, videos=(), seed=2)
    iterator = iter(dataset)
    taken = [next(iterator)["uid"] for _ in range(3)]
    state = dataset.state_dict()
    assert state["consumed"] == 3 and state["epoch"] == 0
    resumed = ShardDataset(shard_dir, videos=(), seed=2)
    resumed.load_state_dict(state)
    assert taken + uids(iter(resumed)) == uids(iter(ShardDataset(shard_dir, videos=(), seed=2)))
    with pytest.raises(ValueError, match="state has seed=2, this dataset seed=9"):
        ShardDataset(shard_dir, videos=(), seed=9).load_state_dict(state)


def test_filters_are_applied_before_the_split(data):
    shard_dir, _ = data
    table = pq.read_table(shard_dir, columns=["uid", "motion_magnitude", "caption"])
    threshold = float(np.median(table.column("motion_magnitude").to_numpy()))
    expected = {u for u, m in zip(table.column("uid").to_pylist(), table.column("motion_magnitude").to_pylist()) if m >= threshold}
    assert 0 < len(expected) < N
    kept = [
        loader_uids(ShardDataset(shard_dir, videos=(), min_motion_magnitude=threshold, rank=r, world_size=2, drop_last=True), 1, 0)
        for r in range(2)
    ]
    assert len(kept[0]) == len(kept[1]) and set(kept[0]) | set(kept[1]) <= expected
    by_caption = ShardDataset(shard_dir, videos=(), filter=pc.field("caption").isin(["ball 3", "ball 7"]))
    assert sorted(s["caption"] for s in by_caption) == ["ball 3", "ball 7"]


def test_bad_arguments_are_named(data, tmp_path):
    shard_dir, _ = data
    with pytest.raises(ValueError, match="no shards"):
        ShardDataset(tmp_path)
    with pytest.raises(ValueError, match="videos \\['side'\\]"):
        ShardDataset(shard_dir, videos=("side",))
    with pytest.raises(ValueError, match="has no tensor columns \\['latents_dynamic'\\]"):
        ShardDataset(shard_dir, tensors=("latents_dynamic",))
    with pytest.raises(ValueError, match="give both rank and world_size"):
        len(ShardDataset(shard_dir, rank=1))
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        len(ShardDataset(shard_dir, rank=2, world_size=2))


def test_order_building_blocks():
    rng = np.random.default_rng(0)
    stream = np.arange(1000)
    shuffled = buffer_shuffle(stream, 64, rng)
    assert sorted(shuffled) == list(stream) and not np.array_equal(shuffled, stream)
    assert np.abs(shuffled - stream).mean() < 200  # local: a window, not a global permutation
    groups = np.repeat(np.arange(50), 3)
    order = epoch_order(groups, seed=1, epoch=0, shuffle=True, buffer_size=1)
    assert sorted(order) == list(range(150))
    assert all(len(set(groups[order[i : i + 3]])) == 1 for i in range(0, 150, 3))  # whole row groups, permuted
    assert np.array_equal(rank_share(np.arange(7), 2, 3, drop_last=False), [2, 5, 1])
    assert np.array_equal(rank_share(np.arange(7), 2, 3, drop_last=True), [2, 5])
    positions, samples = worker_share(np.arange(10, 20), start=3, worker=1, num_workers=2, batch_size=2)
    assert positions.tolist() == [5, 6, 9] and samples.tolist() == [15, 16, 19]


def _distributed_worker(rank, shard_dir, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        dataset = ShardDataset(shard_dir, videos=(), seed=11)  # no rank arguments: taken from torch.distributed
        (out_dir / f"rank{rank}.txt").write_text("\n".join(uids(iter(dataset))))
    finally:
        dist.destroy_process_group()


def test_rank_defaults_to_torch_distributed(data, tmp_path):
    shard_dir, renders = data
    torch.multiprocessing.start_processes(
        _distributed_worker, args=(shard_dir, tmp_path / "init", tmp_path), nprocs=2, start_method="fork"
    )
    got = [(tmp_path / f"rank{r}.txt").read_text().split("\n") for r in range(2)]
    expected = [uids(iter(ShardDataset(shard_dir, videos=(), seed=11, rank=r, world_size=2))) for r in range(2)]
    assert got == expected and set(got[0]).isdisjoint(got[1]) and set(got[0]) | set(got[1]) == set(renders)


def test_second_orbit_augmentation_shows_the_second_orbit_under_the_first_names(tmp_path, data):
    """Rows rendered with --orbits 2: with second_orbit p, about p of the samples show dynamic2 /
    static2 (their own cameras) as dynamic / static, the same draw on every run; rows without a
    second orbit always show the first."""
    from d4d.rendering.orbits import OrbitLayout, layout_videos
    from d4d.shards.layout import shards_have_second_orbit

    layout = OrbitLayout(frames=8, second_start_deg=137.0)
    renders = [make_shard_render(tmp_path / "r", f"two{i}", layout=layout, videos=("dynamic", "static", "front", "dynamic2", "static2"))
               for i in range(6)]
    write_shards(renders, tmp_path / "s", ShardWriteConfig(codec="lossless"))
    assert shards_have_second_orbit(tmp_path / "s") and not shards_have_second_orbit(data[0])
    second_c2w = torch.tensor(layout_videos(layout, ("dynamic2",), np.linspace(0, 1, 8))["dynamic2"].c2w, dtype=torch.float32)
    first_c2w = torch.tensor(layout_videos(layout, ("dynamic",), np.linspace(0, 1, 8))["dynamic"].c2w, dtype=torch.float32)
    always = list(ShardDataset(tmp_path / "s", second_orbit=1.0, seed=3))
    assert len(always) == 6 and {s["orbit"] for s in always} == {2}
    for sample in always:
        assert torch.allclose(sample["dynamic_c2w"], second_c2w, atol=1e-5)
        assert torch.allclose(sample["static_c2w"], second_c2w, atol=1e-5)  # static2 shares dynamic2's cameras
    assert all(torch.allclose(s["dynamic_c2w"], first_c2w, atol=1e-5) for s in ShardDataset(tmp_path / "s", second_orbit=0.0))
    half = [s["orbit"] for s in ShardDataset(tmp_path / "s", second_orbit=0.5, seed=3)]
    assert set(half) == {1, 2} and half == [s["orbit"] for s in ShardDataset(tmp_path / "s", second_orbit=0.5, seed=3)]
    assert {s["orbit"] for s in ShardDataset(data[0], second_orbit=1.0)} == {1}
    with_front = list(ShardDataset(tmp_path / "s", videos=("dynamic", "front"), second_orbit=1.0))
    assert {s["orbit"] for s in with_front} == {2} and all(torch.allclose(s["dynamic_c2w"], second_c2w, atol=1e-5) for s in with_front)
    with pytest.raises(ValueError, match="probability"):
        ShardDataset(tmp_path / "s", second_orbit=1.5)
