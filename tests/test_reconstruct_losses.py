"""The paper's loss terms beyond L1 + D-SSIM: LPIPS from local weights (absent weights: a warning and
metrics.json says the term is off) and edge-aware depth smoothness (issue 18, item 7)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import torch

from d4d.reconstruction.cli import main
from d4d.reconstruction.losses import depth_smoothness
from d4d.reconstruction.rasterize_torch import rasterization
from d4d.testing.eval_fixtures import lpips_folder
from d4d.testing.recon_fixtures import make_sphere_render

TINY = ["--preset", "fast", "--device", "cpu", "--coarse-iterations", "3", "--iterations", "3", "--n-init", "150",
        "--turntable-frames", "2", "--progress-every-s", "0", "--history-points", "2", "--holdout", "2", "--holdout-offset", "1"]


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    return make_sphere_render(tmp_path_factory.mktemp("spheres") / "render", resolution=16, frames=4)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_lpips_without_weights_is_a_warning_and_recorded(render, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="d4d.reconstruction"):
        assert main([str(render), "--out", str(out), *TINY, "--lambda-lpips", "0.1", "--lambda-depth-smoothness", "0.05"]) == 0
    assert "loss term off: lambda_lpips 0.1 requested but no LPIPS weights given" in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"]["weights"] == {"l1": 0.8, "dssim": 0.2, "lpips": 0.0, "depth_smoothness": 0.05}
    assert "no LPIPS weights" in metrics["loss"]["off"]["lpips"]
    assert metrics["heldout"]["lpips"] is None and "weights" in metrics["heldout"]["lpips_reason"]
    assert [h["step"] for h in metrics["history"]] == [3, 6] and all(h["psnr"] > 5 for h in metrics["history"])


def test_lpips_with_local_weights_trains_and_is_measured(render, tmp_path, caplog):
    weights, out = lpips_folder(tmp_path / "lpips"), tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="d4d.reconstruction"):
        assert main([str(render), "--out", str(out), *TINY, "--lambda-lpips", "0.1", "--lpips-weights", str(weights)]) == 0
    assert "loss term off" not in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"]["weights"]["lpips"] == 0.1 and metrics["loss"]["off"] == {}
    per_view = [v["lpips"] for v in metrics["heldout"]["views"]]
    assert metrics["heldout"]["lpips"] == pytest.approx(sum(per_view) / len(per_view)) and metrics["heldout"]["lpips"] > 0
    assert metrics["heldout"]["lpips_reason"] is None and all(h["lpips"] is not None for h in metrics["history"])


def test_unreadable_lpips_weights_are_one_line(render, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(render), "--out", str(tmp_path / "out"), *TINY, "--lpips-weights", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err.strip()
    error = [line for line in err.splitlines() if line.startswith("d4d-reconstruct:")]  # below the console's INFO lines
    assert len(error) == 1 and error[0] == err.splitlines()[-1] and "Traceback" not in err
    assert "LPIPS weights" in error[0] and "alexnet" in error[0]


def test_depth_smoothness_is_zero_on_a_plane_and_spares_colour_edges():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, 1:7, 1:7] = True
    flat, grey = torch.full((1, 8, 8), 2.0), torch.full((1, 8, 8, 3), 0.5)
    assert depth_smoothness(flat, grey, mask).item() == 0.0
    ramp = flat + 0.1 * torch.arange(8.0)[None, None, :]  # depth rises along x
    plain = depth_smoothness(ramp, grey, mask)
    assert plain.item() == pytest.approx((0.1 / ramp[mask].mean().item()) * 30 / 60, rel=1e-5)  # 30 x-pairs of 60 inside
    assert depth_smoothness(3.0 * ramp, grey, mask).item() == pytest.approx(plain.item(), rel=1e-5)  # scale-free
    stripes = grey.clone()
    stripes[..., ::2, :] = 1.0  # a colour edge across every x step
    stripes[:, :, 1::2] = 0.0
    assert depth_smoothness(ramp, stripes, mask) < plain
    outside = ramp.clone()
    outside[~mask] = 100.0  # the background's depth never counts
    assert depth_smoothness(outside, grey, mask).item() == pytest.approx(plain.item(), rel=1e-5)


def test_depth_smoothness_reaches_the_gaussians():
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 2.0
    K = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
    means = torch.tensor([[-0.1, 0.0, 0.0], [0.1, 0.0, 0.3]], requires_grad=True)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1)
    out, alpha, _ = rasterization(means, quats, torch.full((2, 3), 0.15), torch.tensor([0.9, 0.9]), torch.rand(2, 3), viewmat, K, 16, 16,
                                  backgrounds=torch.ones(1, 3), render_mode="RGB+ED")
    depth_smoothness(out[..., 3], out[..., :3].detach(), alpha[..., 0] > 0.5).backward()
    assert means.grad[:, 2].abs().min() > 0  # pulls the two depths together


def test_paper_preset_asks_for_the_papers_loss():
    from d4d.reconstruction.config import preset

    paper, cpu = preset("paper"), preset("cpu")
    assert paper.lambda_lpips > 0 and paper.lambda_depth_smoothness > 0 and paper.lpips_weights is None
    assert (cpu.lambda_lpips, cpu.lambda_depth_smoothness) == (0.0, 0.0)
    assert replace(paper, lambda_lpips=0.0).lambda_lpips == 0.0
    with pytest.raises(ValueError, match="lambda_lpips"):
        replace(paper, lambda_lpips=-1.0)
