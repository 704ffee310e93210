"""d4d-reconstruct's command line: flags from the config dataclasses, presets per device, progress
lines, resuming an interrupted run, training on every view, and the held-out comparison video."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import d4d.reconstruction.trainer as trainer
from d4d.reconstruction.checkpoint import CHECKPOINT_NAME
from d4d.reconstruction.cli import build_parser, config_from_args, main
from d4d.reconstruction.config import preset, resolve_preset
from d4d.reconstruction.progress import Progress
from d4d.rendering.contract import load_render
from d4d.testing.recon_fixtures import make_sphere_render

#: A few steps of the fast preset with densification and both stages inside them.
SHORT = ["--preset", "fast", "--device", "cpu", "--coarse-iterations", "6", "--iterations", "10",
         "--densify-refine-start-iter", "2", "--densify-refine-every", "3", "--densify-max-gaussians", "800",
         "--n-init", "300", "--turntable-frames", "4", "--progress-every-s", "0"]


@pytest.fixture(scope="module")
def render(tmp_path_factory) -> Path:
    return make_sphere_render(tmp_path_factory.mktemp("spheres") / "render", resolution=32, frames=8)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_every_setting_is_a_flag_and_the_old_flags_still_work():
    parser = build_parser()
    args = parser.parse_args(["in", "--out", "o", "--preset", "fast", "--iterations", "7", "--coarse-iterations", "3", "--init", "random", "--seed", "5",
                              "--holdout", "0", "--densify-prune-opa", "0.02", "--deformation-lr-grid", "0.05", "--deformation-resolution", "8", "8", "8", "4",
                              "--fine-videos", "dynamic", "static", "--no-random-background"])
    name, config = config_from_args(args, torch.device("cpu"))
    fast = preset("fast")
    assert name == "fast"
    assert (config.iterations, config.coarse_iterations, config.init, config.seed, config.holdout_every) == (7, 3, "random", 5, 0)
    assert config.densify.prune_opa == 0.02 and config.densify.max_gaussians == fast.densify.max_gaussians
    assert config.deformation.lr_grid == 0.05 and config.deformation.resolution == (8, 8, 8, 4)
    assert config.deformation.feature_dim == fast.deformation.feature_dim  # untouched fields keep the preset's value
    assert config.fine_videos == ("dynamic", "static") and config.random_background is False
    help_text = parser.format_help()
    for flag in ("--densify-reset-every", "--deformation-time-smoothness-weight", "--lr-opacities", "--checkpoint-every", "--holdout"):
        assert flag in help_text
    assert "Reset opacities every this many steps" in help_text  # the field's docstring is the help
    with pytest.raises(SystemExit):
        main(["in", "--out", "o", "--densify-prune-opa", "0.7"])  # validated by the dataclass: exit 2


def test_auto_preset_is_the_papers_on_cuda_and_the_cpu_one_elsewhere():
    args = build_parser().parse_args(["in", "--out", "o"])
    assert config_from_args(args, torch.device("cpu")) == ("cpu", preset("cpu"))
    assert config_from_args(args, torch.device("cuda")) == ("paper", preset("paper"))
    paper = preset("paper")
    assert (paper.coarse_iterations, paper.iterations) == (5000, 2000)
    assert resolve_preset("fast", "cuda") == "fast"
    with pytest.raises(ValueError, match="preset must be one of"):
        resolve_preset("huge", "cpu")


def test_progress_bars_name_the_stage_and_keep_a_steady_time_left():
    """0.5 s per coarse step, then 1 s per fine step but for a 3-step stall of 6 s each (a busy
    shared machine): one d4d.progress bar per stage counts that stage's own steps (plain lines off
    a terminal), and the whole run's time left in its postfix, taken at the stage's mean pace,
    stays near the truth where the pace since the last renewal said 5x."""
    durations = [0.5] * 40 + [1.0] * 20 + [6.0] * 3 + [1.0] * 37
    elapsed = [sum(durations[:i]) for i in range(1, 101)]
    stream = io.StringIO()
    progress = Progress([("coarse", 40), ("fine", 60)], every_s=10.0, stream=stream)
    lines = []
    for step in range(1, 101):
        line = progress.update(step, torch.tensor(0.02), torch.tensor(1e-3), 500, elapsed[step - 1])
        if line:
            lines.append((step, line))

    def told(line: str) -> int:
        return sum(int(n) * (60 if unit == "min" else 1) for n, unit in re.findall(r"(\d+) (min|s)\b", line.split("about ")[1]))

    assert [s for s, _ in lines] == [20, 40, 50, 60, 62, 67, 77, 87, 97, 100]  # every 10 s, and at each stage's end
    assert "run 20/100" in lines[0][1] and "training PSNR 30.00 dB" in lines[0][1] and "500 Gaussians" in lines[0][1]
    assert told(lines[0][1]) == 40  # 80 steps at the coarse stage's 0.5 s/step
    assert "run 40/100" in lines[1][1]
    assert [told(line) for step, line in lines[2:4]] == [50, 40]  # the fine stage's own 1 s/step
    for step, line in lines[2:]:
        assert f"run {step}/100" in line
    for step, line in lines[4:]:  # from the stall on
        truth = elapsed[-1] - elapsed[step - 1]
        assert 0.9 * truth - 1 <= told(line) <= 1.6 * truth + 1, (line, truth)
    assert told(lines[-1][1]) == 0
    shown = stream.getvalue()
    assert "\r" not in shown  # not a terminal: plain lines
    last = {stage: [x for x in shown.splitlines() if x.startswith(f"reconstruction {stage}: ")][-1] for stage in ("coarse", "fine")}
    assert last["coarse"].startswith("reconstruction coarse: 40/40 steps [") and "elapsed, about 00:00 left" in last["coarse"]
    assert last["fine"].startswith("reconstruction fine: 60/60 steps [") and lines[-1][1] in last["fine"]
    assert "run 40/100" in last["coarse"]  # each stage's last line carries its final postfix

    quiet = io.StringIO()
    silent = Progress([("coarse", 2)], every_s=0.0, stream=quiet)
    assert [silent.update(step, torch.tensor(0.02), torch.tensor(1e-3), 5, step) for step in (1, 2)] == [None, None]
    assert quiet.getvalue() == ""  # --progress-every-s 0: nothing


def test_an_interrupted_run_resumes_to_the_result_of_an_uninterrupted_one(render, tmp_path, monkeypatch, caplog):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main([str(render), "--out", str(whole), *SHORT]) == 0
    assert not (whole / CHECKPOINT_NAME).exists()  # removed once the outputs are written

    real_save, saves = trainer.save_checkpoint, []

    def save_then_die(path, identity, state):  # a crash right after the second checkpoint (step 8, in the fine stage)
        real_save(path, identity, state)
        saves.append(state["step"])
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    assert main([str(render), "--out", str(split), *SHORT, "--checkpoint-every", "4"]) == 130
    assert saves == [4, 8] and (split / CHECKPOINT_NAME).exists() and not (split / "metrics.json").exists()
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)

    # Other settings with the same OUT: refused, naming the difference, unless --restart.
    assert main([str(render), "--out", str(split), *SHORT, "--checkpoint-every", "4", "--seed", "1"]) == 1
    with caplog.at_level(logging.INFO, logger="d4d.reconstruction"):
        assert main([str(render), "--out", str(split), *SHORT, "--checkpoint-every", "4"]) == 0
    assert "resuming from" in caplog.text and "at step 8 of 16" in caplog.text
    metrics = json.loads((split / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 8 and not (split / CHECKPOINT_NAME).exists()
    expected = json.loads((whole / "metrics.json").read_text())
    assert metrics["n_gaussians"] == expected["n_gaussians"] and metrics["heldout"]["psnr"] == expected["heldout"]["psnr"]
    assert (split / "canonical.ply").read_bytes() == (whole / "canonical.ply").read_bytes()
    assert (split / "frames" / "007.ply").read_bytes() == (whole / "frames" / "007.ply").read_bytes()


def test_a_changed_setting_is_refused_and_restart_discards_the_checkpoint(render, tmp_path, capsys):
    out = tmp_path / "out"
    base = [str(render), "--out", str(out), *SHORT, "--checkpoint-every", "4"]
    out.mkdir()
    (out / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    assert main(base) == 1
    assert "not a readable d4d-reconstruct checkpoint" in capsys.readouterr().err
    assert main([*base, "--restart"]) == 0


def test_holdout_0_trains_on_every_view_and_says_the_metrics_are_training_views(render, tmp_path, caplog):
    out = tmp_path / "all"
    with caplog.at_level(logging.INFO, logger="d4d.reconstruction"):
        assert main([str(render), "--out", str(out), *SHORT, "--holdout", "0"]) == 0
    assert "16 training views (16 coarse, 8 fine), 0 held out" in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heldout"] is None and metrics["evaluated_on"] == "training views"
    scores = metrics["training_views"]
    assert "training views" in scores["note"] and [v["index"] for v in scores["views"]] == list(range(8))
    assert not (out / "heldout.mp4").exists()


def test_heldout_video_shows_each_heldout_input_beside_its_render(render, tmp_path):
    out = tmp_path / "out"
    assert main([str(render), "--out", str(out), *SHORT]) == 0
    frames = decode(out / "heldout.mp4")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "held-out views" and [v["index"] for v in metrics["heldout"]["views"]] == [4]
    assert len(frames) == 4 and frames[0].shape == (32, 64, 3)  # one held-out view, one second at 4 fps, input | render
    rgba = load_render(render, videos=("dynamic",)).videos["dynamic"].rgba[4].astype(np.float64) / 255.0
    expected = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])  # over the white evaluation background
    left, right = frames[0][:, :32] / 255.0, frames[0][:, 32:] / 255.0
    assert np.abs(left - expected).mean() < 0.03  # the input frame, up to H.264
    assert np.abs(right - expected).mean() > np.abs(left - expected).mean()  # a 16-step fit, not the input again


def test_an_empty_render_is_refused_in_one_line(tmp_path, capsys):
    """A render that shows nothing (an asset imported with a fully transparent material) is
    refused before training, not left to prune every Gaussian and fail inside the rasteriser."""
    from d4d.rendering.contract import load_render, write_render

    sample = load_render(make_sphere_render(tmp_path / "spheres", resolution=16, frames=4))
    for video in sample.videos.values():
        video.rgba[..., 3] = 0
    empty = write_render(tmp_path / "empty", sample)
    assert main([str(empty), "--out", str(tmp_path / "out"), "--device", "cpu", "--preset", "fast"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is empty (alpha 0 everywhere): nothing to reconstruct" in err
    assert not (tmp_path / "out" / "metrics.json").exists()
