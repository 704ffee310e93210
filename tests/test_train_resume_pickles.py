"""d4d-train --resume never unpickles: a payload planted in a checkpoint folder never runs.

Every file resume reads is replaced in turn by a pickle whose loading would write a marker
file: resume refuses with one line naming that file. Pickles planted under the names accelerate
used (custom_checkpoint_N.pkl, random_states_N.pkl, optimizer.bin, ...) are never opened, and
the run resumes.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState

from d4d.testing.train_fixtures import make_clips, single_thread
from d4d.training.checkpoints import load_checkpoint
from d4d.training.config import preset
from d4d.training.data import EpochBatches
from d4d.training.train import train

#: The file names accelerate's save_state wrote (pickles, some loaded with weights_only=False).
ACCELERATE_NAMES = ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl", "optimizer.bin",
                    "scheduler.bin", "pytorch_model.bin", "scaler.pt", "sampler.bin")


class Payload:
    """Unpickling this writes ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "the payload ran")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def reset():
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def plant(path: Path, marker: Path, zipped: bool) -> None:
    """Overwrite ``path`` with a pickle of Payload: torch.save's zip format or a bare pickle."""
    path.unlink(missing_ok=True)
    if zipped:
        torch.save({"state": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))


def config(**overrides):
    return preset("tiny-image", **{"max_steps": 1, "checkpointing_steps": 1, "train_batch_size": 1, **overrides})


@pytest.mark.slow
def test_payloads_are_inert_and_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    clips = make_clips(2)
    run = tmp_path / "run"
    train(config(), EpochBatches(clips, 1, seed=0), run)
    reset()
    checkpoint = run / "checkpoints" / "step-000001"
    read = sorted(p.name for p in checkpoint.iterdir())
    assert "checkpoint.json" in read and "process-0.safetensors" in read and "ema.json" in read
    assert not [name for name in read if name.endswith((".pkl", ".bin", ".pt"))]  # nothing d4d writes is a pickle
    pristine = tmp_path / "pristine"
    shutil.copytree(checkpoint, pristine)

    # Pickles under accelerate's names sit beside the checkpoint: never opened, the run resumes.
    for i, name in enumerate(ACCELERATE_NAMES):
        plant(checkpoint / name, marker, zipped=i % 2 == 0)
    train(config(max_steps=2), EpochBatches(clips, 1, seed=0), run, resume="latest")
    reset()
    assert not marker.exists()
    assert (run / "checkpoints" / "step-000002" / "checkpoint.json").is_file()

    # Each file resume reads, replaced by a payload: refused, naming the file; the payload never runs.
    for i, name in enumerate(read):
        shutil.rmtree(checkpoint)
        shutil.copytree(pristine, checkpoint)
        plant(checkpoint / name, marker, zipped=i % 2 == 1)
        with pytest.raises(ValueError, match=Path(name).stem) as refused:
            train(config(max_steps=2), EpochBatches(clips, 1, seed=0), run, resume=str(checkpoint))
        reset()
        assert "\n" not in str(refused.value)
        assert not marker.exists(), name


def test_a_checkpoint_of_the_pickle_era_is_refused_in_one_line(tmp_path):
    """A step folder as accelerate's save_state left it (no checkpoint.json): refused, nothing loaded."""
    marker = tmp_path / "payload-ran"
    old = tmp_path / "run" / "checkpoints" / "step-000001"
    old.mkdir(parents=True)
    for name in ACCELERATE_NAMES:
        plant(old / name, marker, zipped=True)
    with pytest.raises(ValueError, match="no checkpoint.json, so not a d4d checkpoint of this version"):
        load_checkpoint(old, None, None, None, None, None, None)
    assert not marker.exists()


def test_a_checkpoint_resumes_only_as_it_was_written(tmp_path):
    """checkpoint.json records format, step, number of processes and EMA; a checkpoint that
    does not match the run is refused in one line before anything is loaded."""
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel

    run = tmp_path / "run"
    train(config(), EpochBatches(make_clips(2), 1, seed=0), run)
    reset()
    folder = run / "checkpoints" / "step-000001"
    meta = json.loads((folder / "checkpoint.json").read_text())
    assert meta["num_processes"] == 1 and meta["ema"] is True
    accelerator, ema = Accelerator(cpu=True), EMAModel([torch.nn.Parameter(torch.zeros(1))])
    for change, reason in (({"num_processes": 2}, "written by 2 process"), ({"ema": False}, "EMA"),
                           ({"version": 0}, "not a d4d-train-checkpoint of version 1"), ({"step": -1}, "step -1")):
        (folder / "checkpoint.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(ValueError, match=reason) as refused:
            load_checkpoint(folder, accelerator, None, None, None, ema, None)
        assert "\n" not in str(refused.value)
