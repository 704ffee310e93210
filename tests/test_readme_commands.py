"""README.md's smoke run, as written, on what ``d4d-curate`` makes of a real folder.

The train and sample commands are read from README.md's "Train and sample" block (the lines
before its first comment after the smoke run), with ``shards/`` pointed at the curated shards and
fewer steps appended (a later flag wins); each runs as its own process, as a user types it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import join_cluster, requires_bpy
from test_pipeline_run import SMALL, Runs

pytestmark = [requires_bpy, pytest.mark.blender, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEWER_STEPS = {"d4d-train": ["--max-steps", "2"], "d4d-sample": ["--steps", "2"]}


def readme_smoke_run() -> list[list[str]]:
    """The smoke-run commands of README.md's "Train and sample" block, as argument lists."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Train and sample", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands, started = [], False
    for line in block.splitlines():
        if line.startswith("#"):
            if started:
                break
            continue
        if line.strip():
            started = True
            commands.append(shlex.split(line))
    return commands


def test_the_readme_smoke_run_works_on_curated_shards(builtin_assets, ray_cluster, tmp_path):
    source = tmp_path / "assets"
    source.mkdir()
    shutil.copy(builtin_assets["rigid"], source)
    runs = Runs()
    try:
        runs.run(["--source", f"local:{source}", "--out", str(tmp_path / "cur_out"), *join_cluster(runs, ray_cluster), *SMALL], tmp_path / "curate.log")
    finally:
        runs.close()
    shards = tmp_path / "cur_out" / "shards"
    assert (shards / "_README.md").is_file()  # the dataset card

    commands = readme_smoke_run()
    assert [c[0] for c in commands] == ["d4d-train", "d4d-train", "d4d-sample"]
    logs = []
    for command in commands:
        argv = [str(shards) if arg == "shards/" else arg for arg in command] + FEWER_STEPS[command[0]]
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stderr[-3000:]}"
        logs.append(done.stdout + done.stderr)
    train_log = logs[0]
    # The curated clips have 8 frames at 32 px; the tiny preset trains 4 at 16 px: the trainer says what it took.
    assert "8 frames, the shards' (the preset has 4); 16 px, the preset's, the shards' 32 px resized down" in train_log
    assert "no caption" in train_log  # the folder had no captions, and the model reads text
    for log in logs:
        assert "\r" not in log  # progress into a pipe: plain lines
        assert "[transformers]" not in log and "accelerate.checkpointing" not in log and "Saving current state" not in log
    assert re.search(r"training \(static\): 2/2 steps \[\d\d:\d\d elapsed, about 00:00 left", train_log)
    assert re.search(r"sampling: 2/2 steps \[", logs[2])
    sample = tmp_path / "samples" / "dog"
    assert json.loads((sample / "transforms.json").read_text())["frames"] and len(list((sample / "dynamic").glob("*.png"))) == 8

    # The same sample command again is refused (an existing output), and nothing of it changes.
    stamp = (sample / "transforms.json").stat().st_mtime_ns
    again = subprocess.run([str(BIN / "d4d-sample"), *commands[2][1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "exists; give --overwrite" in again.stderr
    assert (sample / "transforms.json").stat().st_mtime_ns == stamp


def test_a_start_that_trained_nothing_does_not_block_a_retry(tmp_path):
    """train_config.json of a start that saved no checkpoint gives way to new settings; after a
    checkpoint the settings are the run's."""
    from d4d.training.config import preset
    from d4d.training.train import check_run_config

    run = tmp_path / "run"
    check_run_config(run, preset("tiny-text", num_frames=4))
    check_run_config(run, preset("tiny-text", num_frames=8))  # the first start failed before a checkpoint
    assert json.loads((run / "train_config.json").read_text())["num_frames"] == 8
    (run / "checkpoints" / "step-000010").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"started with other settings for \['num_frames'\] and has trained"):
        check_run_config(run, preset("tiny-text", num_frames=4))
    check_run_config(run, preset("tiny-text", num_frames=8, max_steps=40))  # the same settings resume
