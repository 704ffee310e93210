"""What a new user meets first: --help with the preset's values at once, the trainer's rule for
frames and resolution, one overwrite rule, progress as plain lines in a log, a dataset card
that Hugging Face ``datasets`` reads with typed videos."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from d4d.progress import StageProgress, bar
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render
from d4d.training.cli import ShardSummary, caption_warning, fit_to_shards, summarize_shards
from d4d.training.config import preset

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", ["d4d-train", "d4d-sample", "d4d-eval", "d4d-reconstruct"])
def test_help_answers_at_once_without_library_noise(command):
    started = time.perf_counter()
    done = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage:" in done.stdout
    assert done.stderr == ""  # no transformers / torchvision warning
    assert time.perf_counter() - started < 10  # no torch import (that alone takes seconds here)


def test_train_help_shows_the_chosen_presets_values():
    tiny = subprocess.run([str(BIN / "d4d-train"), "--config", "tiny-text", "--help"], capture_output=True, text=True, timeout=60).stdout
    paper = subprocess.run([str(BIN / "d4d-train"), "--help"], capture_output=True, text=True, timeout=60).stdout
    flat = " ".join(tiny.split())
    assert "--max-steps INT Optimizer steps (the paper: 6K iterations). (default: 20)" in flat
    assert "(preset tiny-text: 4)" in flat and "the preset's, 16," in flat
    assert "(default: 6000)" in " ".join(paper.split()) and "(preset paper-text: 24)" in " ".join(paper.split())


def summary(frames=(8,), side=32, rows=3, captioned=3) -> ShardSummary:
    return ShardSummary(rows=rows, frames=frames, smallest_side=side, captioned=captioned)


def test_frames_come_from_the_shards_and_resolution_is_never_upsampled():
    tiny = preset("tiny-text")  # 4 frames at 16 px
    config, said = fit_to_shards(tiny, set(), summary((8,), 32), Path("s"))
    assert (config.num_frames, config.resolution) == (8, 16)
    assert "8 frames, the shards' (the preset has 4)" in said[0] and "16 px, the preset's" in said[1]
    paper = preset("paper-text")  # 24 frames at 256 px, on 12-frame 128 px clips
    config, said = fit_to_shards(paper, set(), summary((12,), 128), Path("s"))
    assert (config.num_frames, config.resolution) == (12, 128) and "never upsampled" in said[1]
    given = preset("tiny-text", resolution=64)  # --resolution given: kept
    assert fit_to_shards(given, {"resolution"}, summary((4,), 32), Path("s"))[0].resolution == 64


def test_a_given_frame_count_that_the_shards_lack_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"--num-frames 4: the clips in s have 8 frames .* leave --num-frames out"):
        fit_to_shards(preset("tiny-text"), {"num_frames"}, summary((8,)), Path("s"))
    with pytest.raises(ValueError, match="clips of 4, 8 frames are mixed"):
        fit_to_shards(preset("tiny-text"), set(), summary((4, 8)), Path("s"))


def test_a_text_model_on_uncaptioned_clips_is_warned():
    warning = caption_warning(preset("tiny-text"), summary(rows=5, captioned=2), Path("s"))
    assert warning is not None and "3 of 5 clips have no caption" in warning and "--captions" in warning
    assert caption_warning(preset("tiny-text"), summary(rows=5, captioned=5), Path("s")) is None
    assert caption_warning(preset("tiny-image"), summary(rows=5, captioned=0), Path("s")) is None


def test_sample_refuses_an_existing_out_before_loading_anything(tmp_path, caplog):
    from d4d.training.sample_cli import main

    out = tmp_path / "sample"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--model", str(tmp_path / "no-model"), "--out", str(out), "--prompt", "x"]) == 2
    assert "exists; give --overwrite" in caplog.text and (out / "keep.txt").read_text() == "mine"


def test_progress_into_a_file_is_plain_lines_with_elapsed_and_time_left():
    stream = io.StringIO()
    with bar(5, "rendering dynamic", "frames", stream=stream) as progress:
        for _ in range(5):
            progress.update(1)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    last = text.splitlines()[-1]
    assert last.startswith("rendering dynamic: 5/5 frames [") and "elapsed, about 00:00 left" in last
    staged = io.StringIO()
    report = StageProgress("frames", stream=staged)
    for stage in ("dynamic", "static"):
        for done in (1, 2):
            report({"stage": stage, "done": done, "total": 2})
    lines = staged.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines if " 2/2 " in line] == ["dynamic", "static"]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    renders = [make_shard_render(root / "r", f"asset{i}", caption=None if i == 0 else f"ball {i}") for i in range(3)]
    write_shards(renders, root / "s", ShardWriteConfig(rows_per_group=1, max_shard_mb=0.02))
    return root / "s"


def test_the_card_counts_the_shards_and_summarize_reads_them(shard_dir):
    card = (shard_dir / "_README.md").read_text()
    assert card.startswith("---\n") and "| clips (rows) | 3 |" in card and "| clips with a caption | 2 of 3 |" in card
    assert "| frames per video | 8 (3 clips) |" in card and "| unknown | 3 |" in card
    assert summarize_shards(shard_dir) == ShardSummary(rows=3, frames=(8,), smallest_side=32, captioned=2)


def test_datasets_reads_the_cards_features_with_typed_videos(shard_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    from d4d.shards.card import hf_features
    from d4d.shards.video import decode_rgba

    published = tmp_path / "published"  # the folder as it would go to the Hub: the card as README.md
    published.mkdir()
    for path in shard_dir.glob("part-*.parquet"):
        (published / path.name).symlink_to(path)
    (published / "README.md").write_text((shard_dir / "_README.md").read_text())
    by_card = datasets.load_dataset(str(published), split="train", cache_dir=str(tmp_path / "a"))  # reads README.md's features
    files = sorted(str(p) for p in shard_dir.glob("part-*.parquet"))
    by_features = datasets.load_dataset("parquet", data_files=files, split="train", features=hf_features(shard_dir),
                                        cache_dir=str(tmp_path / "b"))
    assert by_card.features == by_features.features == hf_features(shard_dir)
    assert isinstance(by_card.features["dynamic_video"], datasets.Video)
    assert by_card.features["dynamic_c2w"] == datasets.List(datasets.Value("float64"))
    row = by_card[0]
    assert decode_rgba(row["dynamic_video"]["bytes"]).shape == (8, 32, 32, 4)
    assert by_card.num_rows == 3
    assert len(pd.read_parquet(shard_dir, columns=["uid"])) == 3  # directory readers skip the card


def test_reconstruct_help_shows_the_preset_this_run_uses():
    from d4d.reconstruction.cli import build_parser, shown_preset
    from d4d.reconstruction.config import preset as recon_preset

    assert shown_preset(["in", "--out", "o", "--preset", "fast"]) == "fast"
    assert shown_preset(["in", "--out", "o", "--device", "cpu"]) == "cpu"  # auto on a CPU
    # What --device auto picks, told without importing torch (for --help), is what torch picks.
    probe = subprocess.run([sys.executable, "-c", "import sys; from d4d.reconstruction.cli import auto_device_type; "
                            "print(auto_device_type(), 'torch' in sys.modules)"], capture_output=True, text=True, timeout=60)
    import torch

    assert probe.stdout.split() == ["cuda" if torch.cuda.is_available() else "cpu", "False"], probe.stderr[-2000:]
    text = " ".join(build_parser("fast").format_help().split())
    assert "preset fast's, the one this run uses" in text
    assert f"(default: {recon_preset('fast').coarse_iterations})" in text.rsplit("--coarse-iterations INT", 1)[1][:200]
