"""d4d-reconstruct's learning-rate schedules against hustvl 4DGaussians' arguments, and SH colour
learnt, exported in INRIA's f_rest layout and read back (issue 18, item 7)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from d4d.reconstruction.config import preset
from d4d.reconstruction.export import PLY_FIELDS, read_ply, sh_rest_columns, sh_rest_from_columns
from d4d.reconstruction.outputs import load_reconstruction, write_outputs
from d4d.reconstruction.trainer import active_sh_degree, deformation_lrs, lr_scale, means_lr, reconstruct
from d4d.reconstruction.views import views_from_sample
from d4d.rendering.contract import load_render
from d4d.testing.recon_fixtures import make_sphere_render


def test_paper_rates_follow_the_reference():
    """hustvl arguments/__init__.py: grid 1.6e-3 -> 1.6e-4, deformation 1.6e-4 -> 1.6e-5 and position
    1.6e-4 -> 1.6e-6, each times the scene extent, log-linear over 20000 steps counted per stage."""
    paper, scene = preset("paper"), 2.2
    scale = lr_scale(paper, scene)
    assert scale == scene
    assert deformation_lrs(paper, 0, scale) == pytest.approx({"grid": 1.6e-3 * scene, "mlp": 1.6e-4 * scene})
    end = deformation_lrs(paper, paper.iterations, scale)  # after the paper's 2000 fine steps: 0.1 ** 0.1
    assert end == pytest.approx({"grid": 1.6e-3 * scene * 0.1**0.1, "mlp": 1.6e-4 * scene * 0.1**0.1})
    assert deformation_lrs(paper, 20_000, scale)["grid"] == pytest.approx(1.6e-4 * scene)
    assert deformation_lrs(paper, 40_000, scale)["grid"] == pytest.approx(1.6e-4 * scene)  # held at the end
    first_fine = paper.coarse_iterations
    assert means_lr(paper, 10_000, 0, scale) == pytest.approx(1.6e-4 * scene * 0.01**0.5)
    assert means_lr(paper, first_fine + 1, first_fine, scale) == pytest.approx(1.6e-4 * scene * 0.01 ** (1 / 20_000))  # restarts per stage
    assert [active_sh_degree(paper, s) for s in (1, 1000, 1001, 2001, 3001, 7000)] == [0, 0, 1, 2, 3, 3]


def test_cpu_presets_keep_their_measured_schedules():
    """cpu and fast: no scene scale, the field's rates 100x down over the fine stage, the centres' over the run, degree 0."""
    for name in ("cpu", "fast"):
        config = preset(name)
        assert lr_scale(config, 2.2) == 1.0 and config.sh_degree == 0
        assert deformation_lrs(config, config.iterations, 1.0) == pytest.approx({"grid": 3e-4, "mlp": 3e-5})
        total = config.coarse_iterations + config.iterations
        assert means_lr(config, total, config.coarse_iterations, 1.0) == pytest.approx(1.6e-5)


def test_sh_columns_are_inria_channel_major():
    rest = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)  # degree 1: [N, 3 bands, RGB]
    columns = sh_rest_columns(rest, 2)
    assert columns.shape == (2, 45)
    assert columns[0, [0, 1, 2]].tolist() == rest[0, :, 0].tolist()  # f_rest_0..2: red bands 1..3
    assert columns[0, [15, 16, 17]].tolist() == rest[0, :, 1].tolist() and columns[0, [30, 31, 32]].tolist() == rest[0, :, 2].tolist()
    assert columns[:, 3:15].abs().sum() == 0
    assert torch.equal(sh_rest_from_columns(columns, 1), rest)


def test_view_dependent_colour_is_learnt_exported_and_read_back(tmp_path):
    render = make_sphere_render(tmp_path / "render", resolution=16, frames=4)
    sample = load_render(render, videos=("dynamic", "static"))
    fast = preset("fast")
    config = replace(fast, coarse_iterations=6, iterations=6, n_init=200, sh_degree=2, sh_degree_interval=3, progress_every_s=0, history_points=4,
                     turntable_frames=2, densify=replace(fast.densify, refine_start_iter=2, refine_every=4, max_gaussians=400))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = reconstruct(views_from_sample(sample), config, device="cpu", backend="torch")
        write_outputs(result, sample.videos["dynamic"].times, sample.K, 16, 16, 2.0, tmp_path / "out", {})
    finally:
        torch.set_num_threads(threads)
    shN = result.params["shN"].detach()
    assert shN.shape == (len(result.params["means"]), 8, 3) and shN.abs().amax() > 0  # bands 1..2 moved off zero
    assert [h["step"] for h in result.history] == [3, 6, 9, 12] and all(math.isfinite(h["psnr"]) for h in result.history)
    ply = read_ply(tmp_path / "out" / "canonical.ply")
    assert list(ply) == list(PLY_FIELDS)
    f_rest = np.stack([ply[f"f_rest_{i}"] for i in range(45)], -1)
    assert np.allclose(f_rest.reshape(-1, 3, 15)[:, :, :8], shN.transpose(1, 2).numpy()) and not f_rest.reshape(-1, 3, 15)[:, :, 8:].any()
    params, deformation, loaded = load_reconstruction(tmp_path / "out")
    assert loaded.sh_degree == 2 and torch.equal(params["shN"].detach(), shN)
    views = result.eval_views  # 4 frames: nothing held out, the training views
    before = result.render(views.viewmats, views.Ks, views.times, 16, 16, (1.0, 1.0, 1.0))
    result.params, result.deformation = params, deformation
    assert torch.allclose(before, result.render(views.viewmats, views.Ks, views.times, 16, 16, (1.0, 1.0, 1.0)), atol=1e-5)
