"""Reconstruction checkpoints hold no pickle: a planted payload never runs, and the safetensors +
JSON format restores a training state exactly (issue 20, item 1)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from d4d.reconstruction.checkpoint import CHECKPOINT_NAME, LEGACY_CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from d4d.reconstruction.cli import main
from d4d.testing.recon_fixtures import make_sphere_render

SHORT = ["--preset", "fast", "--device", "cpu", "--coarse-iterations", "2", "--iterations", "2", "--n-init", "100",
         "--turntable-frames", "2", "--progress-every-s", "0"]


class Payload:
    """Unpickling this touches ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def planted_pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"identity": Payload(marker), "state": {}}, buffer)
    return buffer.getvalue()


def test_the_payload_runs_when_unpickled(tmp_path):
    """The control: the planted bytes do run code when loaded the old way."""
    marker = tmp_path / "ran"
    torch.load(io.BytesIO(planted_pickle(marker)), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", [LEGACY_CHECKPOINT_NAME, CHECKPOINT_NAME])
def test_a_planted_pickle_checkpoint_is_refused_and_never_runs(tmp_path, capsys, name):
    render = make_sphere_render(tmp_path / "render", resolution=16, frames=4)
    out, marker = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    (out / name).write_bytes(planted_pickle(marker))
    assert main([str(render), "--out", str(out), *SHORT]) == 1
    err = capsys.readouterr().err
    assert not marker.exists()
    error = [line for line in err.splitlines() if line.startswith("d4d-reconstruct:")]  # below the console's INFO lines
    assert len(error) == 1 and error[0] == err.strip().splitlines()[-1] and "Traceback" not in err and "--restart" in error[0]
    assert ("never loaded" if name == LEGACY_CHECKPOINT_NAME else "not a readable d4d-reconstruct checkpoint") in err
    if name == LEGACY_CHECKPOINT_NAME:
        assert main([str(render), "--out", str(out), *SHORT, "--restart"]) == 0  # --restart discards it unread
        assert not marker.exists() and not (out / name).exists() and (out / "metrics.json").exists()


def test_the_state_round_trips_exactly(tmp_path):
    param = torch.nn.Parameter(torch.randn(5, 3))
    adam = torch.optim.Adam([{"params": [param], "lr": 1e-3, "name": "grid"}], eps=1e-15)
    param.grad = torch.randn(5, 3)
    adam.step()
    generator = torch.Generator().manual_seed(3)
    state = {"params": {"means": param.detach()}, "adam": adam.state_dict(), "generator": generator.get_state(), "step": 7,
             "order": [2, 0], "seconds": 1.5, "history": [{"step": 5, "psnr": float("inf")}], "none": None}
    identity = {"settings": {"resolution": (8, 8, 8, 4), "seed": 0}, "input_sha256": "ab"}
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, identity, state)
    assert b"__reduce__" not in path.read_bytes() and path.read_bytes()[8:9] == b"{"  # a safetensors header, JSON
    loaded = load_checkpoint(path, identity)
    assert torch.equal(loaded["params"]["means"], param.detach()) and torch.equal(loaded["generator"], generator.get_state())
    assert (loaded["step"], loaded["order"], loaded["seconds"], loaded["none"]) == (7, [2, 0], 1.5, None)
    assert loaded["history"] == [{"step": 5, "psnr": float("inf")}]
    restored = torch.optim.Adam([{"params": [param], "lr": 0.5, "name": "x"}], eps=1e-15)
    restored.load_state_dict(loaded["adam"])
    assert restored.param_groups[0]["lr"] == 1e-3 and restored.param_groups[0]["betas"] == (0.9, 0.999)
    assert torch.equal(restored.state[param]["exp_avg"], adam.state[param]["exp_avg"])
    with pytest.raises(ValueError, match="differs: resolution"):
        load_checkpoint(path, {**identity, "settings": {"resolution": (8, 8, 8, 5), "seed": 0}})
