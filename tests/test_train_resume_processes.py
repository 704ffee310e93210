"""Exact resume with two processes, through the production entry point.

``python -m torch.distributed.run --nproc_per_node 2 -m d4d.training.train`` on CPU (gloo), on
real shards with second orbits (so the data order and the second-orbit draws depend on the
epoch), two micro-batches per optimizer step and a validation video every step. An
uninterrupted run of 4 steps writes checkpoints at steps 2 and 4; a copy of its run directory
as it stood after step 2 is resumed to step 4 by fresh processes. Model, optimizer, EMA,
each process's state and the exported model must equal the uninterrupted run's bit for bit:
each process must draw on from its own generator, and validation must not move the training data.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from d4d.rendering.orbits import OrbitLayout
from d4d.shards.writer import write_shards
from d4d.testing.shards_helpers import make_shard_render

STEP_FILES = ("model", "optimizer", "ema", "lr_scheduler", "process-0", "process-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> None:
    """d4d-train under torchrun with 2 CPU processes; fails the test with its output tail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "d4d.training.train", *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def equal_files(a: Path, b: Path) -> list[str]:
    """Names of the tensors that differ between two safetensors files (same keys required)."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys(), (a, b)
    return [k for k in x if not torch.equal(x[k], y[k])]


@pytest.mark.slow
def test_two_processes_resume_bit_for_bit(tmp_path):
    layout = replace(OrbitLayout(frames=4, distance=2.5, elevation_deg=20.0, fov_deg=40.0, azimuth_start_deg=30.0,
                                 closed=True), second_start_deg=200.0)
    renders = [make_shard_render(tmp_path / "renders", f"ball{i}", frames=4, size=16, layout=layout, caption=f"ball {i}",
                                 videos=("dynamic", "static", "dynamic2", "static2")) for i in range(7)]
    assert not write_shards(renders, tmp_path / "shards").failed
    # 7 clips over 2 processes: 3 micro-batches per epoch each, so step 2 (micro-batch 4) falls in epoch 1.
    common = ["--shards", str(tmp_path / "shards"), "--config", "tiny-text", "--second-orbit", "0.5",
              "--gradient-accumulation-steps", "2", "--checkpointing-steps", "2", "--validation-steps", "1", "--max-steps", "4",
              "--autoencoder-steps", "4"]  # the from-scratch VAE stage, kept short
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun([*common, "--output", str(straight)], tmp_path)

    # The run as it stood after step 2 (its settings, any earlier stage, the step-2 checkpoint).
    shutil.copytree(straight, split)
    for later in ("checkpoints/step-000004", "model", "validation", "logs"):
        shutil.rmtree(split / later)
    meta = json.loads((split / "checkpoints" / "step-000002" / "checkpoint.json").read_text())
    assert meta["num_processes"] == 2 and meta["step"] == 2  # two processes really ran together
    torchrun([*common, "--output", str(split), "--resume", "latest"], tmp_path)

    end_a, end_b = straight / "checkpoints" / "step-000004", split / "checkpoints" / "step-000004"
    for name in STEP_FILES:
        assert equal_files(end_a / f"{name}.safetensors", end_b / f"{name}.safetensors") == [], name
        if name != "model":
            assert json.loads((end_a / f"{name}.json").read_text()) == json.loads((end_b / f"{name}.json").read_text()), name
    # Each process kept its own generator (a resume that gave rank 1 rank 0's would make them equal).
    gen = [load_file(end_b / f"process-{r}.safetensors")[f"process-{r}.train.generator"] for r in (0, 1)]
    assert not torch.equal(gen[0], gen[1])
    assert equal_files(end_a / "model.safetensors", straight / "checkpoints" / "step-000002" / "model.safetensors")  # it trained
    for part in ("unet", "motion_embedding"):
        exported = [next((run / "model" / part).glob("*.safetensors")) for run in (straight, split)]
        assert equal_files(*exported) == [], part
