"""Shards read from object storage: ShardDataset, d4d-shards verify, d4d-train --shards and Ray
Data (tests/test_shards_ray.py) read s3:// URIs from a local S3-compatible server (moto, on
127.0.0.1), exactly as they read the same shards from disk; locations d4d cannot use are refused
in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from d4d import storage
from d4d.shards.cli import main as shards_main
from d4d.shards.dataset import ShardDataset
from d4d.shards.files import list_shards
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render

pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")

from d4d.testing.s3_server import s3_server  # noqa: E402

BUCKET = "d4d"
REMOTE = f"s3://{BUCKET}/runs/a/shards"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server (a bucket ``d4d``), and four clips written to disk and uploaded to REMOTE."""
    root = tmp_path_factory.mktemp("storage")
    renders = [make_shard_render(root / "r", f"ball{i}", frames=4, size=16, caption=f"ball {i}") for i in range(4)]
    report = write_shards(renders, root / "s", ShardWriteConfig(codec="lossless", rows_per_group=2, max_shard_mb=0.02))
    assert not report.failed and len(report.shards) >= 2
    with s3_server(buckets=(BUCKET,)):
        for path in report.shards:
            storage.upload(path, storage.join(REMOTE, path.name))
        yield root / "s"


def samples(dataset):
    return {s["uid"]: s for s in dataset}


def test_shard_dataset_reads_a_uri_as_it_reads_the_directory(s3):
    remote = list_shards(REMOTE)
    assert [Path(u).name for u in remote] == [p.name for p in list_shards(s3)] and all(u.startswith(REMOTE + "/") for u in remote)
    local = samples(ShardDataset(s3, videos=("dynamic", "static"), shuffle=False))
    read = samples(ShardDataset(REMOTE, videos=("dynamic", "static"), shuffle=False))
    assert sorted(read) == sorted(local) and len(read) == 4
    for uid, sample in read.items():
        for key, value in sample.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, local[uid][key]), key
            else:
                assert value == local[uid][key], key
    # A single shard object, and the shuffled, split order of the directory.
    assert len(samples(ShardDataset(remote[0], videos=("static",)))) == pq.read_metadata(list_shards(s3)[0]).num_rows
    shuffled = [s["uid"] for s in ShardDataset(REMOTE, videos=(), seed=3, rank=1, world_size=2)]
    assert shuffled == [s["uid"] for s in ShardDataset(s3, videos=(), seed=3, rank=1, world_size=2)]


def test_verify_checks_a_uri_and_names_the_damaged_object(s3, capsys):
    assert shards_main(["verify", REMOTE]) == 0
    assert f"4 rows checked, 0 problems; {REMOTE} is valid" in capsys.readouterr().out
    damaged = "s3://d4d/runs/damaged"
    first = list_shards(s3)[0]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in a page: its CRC no longer matches
    broken = first.parent.parent / "broken.parquet"
    broken.write_bytes(bytes(data))
    storage.upload(broken, f"{damaged}/{first.name}")
    assert shards_main(["verify", damaged]) == 1
    err = capsys.readouterr().err
    assert f"{damaged}/{first.name}" in err and "unreadable" in err


def test_unusable_locations_are_refused_in_one_line(s3, capsys):
    for argv, reason in ((["verify", "s3://no-such-bucket/shards"], "no such bucket 'no-such-bucket'"),
                         (["verify", "nosuch://b/shards"], "unknown URI scheme 'nosuch'"),
                         (["verify", "s3://d4d/runs/none"], "no such directory")):
        assert shards_main(argv) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="no such bucket"):
        ShardDataset("s3://no-such-bucket/shards")
    with pytest.raises(ValueError, match="slash missing .meant s3://d4d/x"):
        storage.location("s3:/d4d/x", "--shards")
    assert storage.location("file:///tmp/x") == Path("/tmp/x") and storage.location("rel/x") == Path("rel/x")
    assert storage.location(REMOTE) == REMOTE
    with pytest.raises(ValueError, match="no such bucket 'no-such-bucket'"):
        write_shards([], "s3://no-such-bucket/shards")
    assert not Path("s3:").exists() and not Path("s3://no-such-bucket/shards").exists()


@pytest.fixture
def one_thread():
    from d4d.testing.train_fixtures import single_thread

    yield from single_thread()


@pytest.mark.slow
def test_d4d_train_reads_shards_from_a_uri(s3, tmp_path, one_thread, capsys):
    from accelerate.state import AcceleratorState, GradientState

    from d4d.training.cli import main as train_main

    with pytest.raises(SystemExit) as exited:
        train_main(["--shards", "s3:/d4d/x", "--output", str(tmp_path / "bad"), "--config", "tiny-text"])
    assert exited.value.code == 2 and "s3:/d4d/x: looks like a URI with a slash missing" in capsys.readouterr().err
    assert train_main(["--shards", REMOTE, "--output", str(tmp_path / "cached"), "--config", "tiny-text", "--cache-latents"]) == 2
    assert not (tmp_path / "cached").exists()
    run = tmp_path / "run"
    try:
        assert train_main(["--shards", REMOTE, "--output", str(run), "--config", "tiny-text", "--max-steps", "2", "--validation-steps", "0",
                                "--autoencoder-steps", "2"]) == 0
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    assert (run / "model" / "model_index.json").is_file() and json.loads((run / "train_config.json").read_text())["max_steps"] == 2
