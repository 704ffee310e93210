"""Deformation field, densification and losses of d4d-reconstruct, on small real inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from d4d.reconstruction.config import DeformationConfig, DensifyConfig, ReconstructConfig, preset
from d4d.reconstruction.deformation import DeformationField
from d4d.reconstruction.gaussians import create_params, sh0_to_rgb
from d4d.reconstruction.losses import psnr, ssim
from d4d.reconstruction.rasterize_torch import rasterization
from d4d.reconstruction.strategy import DensifyStrategy, duplicate, remove, split

SMALL = DeformationConfig(feature_dim=4, resolution=(8, 8, 8, 6), multires=(1, 2), hidden_width=16)


def test_deformation_starts_at_identity_and_learns_time_dependent_offsets():
    torch.manual_seed(0)
    field = DeformationField(SMALL)
    means, scales, quats = torch.rand(50, 3) - 0.5, torch.randn(50, 3), torch.randn(50, 4)
    for t in (0.0, 0.7):
        out = field(means, scales, quats, torch.full((50,), t))
        assert all(torch.equal(a, b) for a, b in zip(out, (means, scales, quats)))
    regs = field.grid.regularisers()
    assert regs["l1_time_planes"].item() == 0.0 and regs["time_smoothness"].item() == 0.0
    # Teach it to move every point by +0.1 in x at t = 1 and not at all at t = 0.
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    for _ in range(200):
        moved0, _, _ = field(means, scales, quats, torch.zeros(50))
        moved1, _, _ = field(means, scales, quats, torch.ones(50))
        loss = (moved0 - means).square().mean() + (moved1 - means - torch.tensor([0.1, 0.0, 0.0])).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        dx1 = (field(means, scales, quats, torch.ones(50))[0] - means)[:, 0].mean()
        dx0 = (field(means, scales, quats, torch.zeros(50))[0] - means)[:, 0].mean()
    assert dx1.item() == pytest.approx(0.1, abs=0.02) and abs(dx0.item()) < 0.02
    assert field.grid.regularisers()["l1_time_planes"].item() > 0.0  # time planes left 1 to encode motion


def test_deformation_heads_start_as_hustvl_when_asked():
    torch.manual_seed(0)
    field = DeformationField(replace(SMALL, zero_init_heads=False))  # Xavier-uniform everywhere, as hustvl's initialize_weights
    means = torch.rand(20, 3) - 0.5
    moved, _, _ = field(means, torch.zeros(20, 3), torch.randn(20, 4), torch.zeros(20))
    assert (moved - means).abs().amax() > 1e-4
    bound = math.sqrt(6.0 / (SMALL.hidden_width + 3))
    assert field.pos_head[-1].weight.abs().amax() <= bound and field.pos_head[-1].weight.abs().amax() > 0.5 * bound


def test_deformation_without_scale_or_rotation_heads_only_moves():
    torch.manual_seed(0)
    field = DeformationField(replace(SMALL, deform_scales=False, deform_rotations=False))
    assert field.scale_head is None and field.rot_head is None
    for p in field.parameters():  # any non-zero field
        torch.nn.init.normal_(p, std=0.3)
    means, scales, quats = torch.rand(50, 3) - 0.5, torch.randn(50, 3), torch.randn(50, 4)
    moved, new_scales, new_quats = field(means, scales, quats, torch.full((50,), 0.6))
    assert not torch.allclose(moved, means) and torch.equal(new_scales, scales) and torch.equal(new_quats, quats)


def _optimised_params(n: int = 20):
    torch.manual_seed(1)
    params = create_params(torch.rand(n, 3) - 0.5, torch.rand(n, 3))
    optimizers = {k: torch.optim.Adam([params[k]], lr=1e-3) for k in params.keys()}
    loss = sum(p.square().sum() for p in params.values())
    loss.backward()
    for opt in optimizers.values():
        opt.step()
    return params, optimizers


def test_duplicate_split_remove_keep_parameters_and_adam_moments_aligned():
    params, optimizers = _optimised_params()
    means_before = params["means"].detach().clone()
    mask = torch.zeros(20, dtype=torch.bool)
    mask[[2, 5]] = True
    duplicate(params, optimizers, mask)
    assert len(params["means"]) == 22 and torch.equal(params["means"][20:], means_before[[2, 5]])
    for name, p in params.items():
        state = optimizers[name].state[p]
        assert state["exp_avg"].shape == p.shape and state["exp_avg"][20:].abs().sum() == 0
        assert optimizers[name].param_groups[0]["params"][0] is p
    mask = torch.zeros(22, dtype=torch.bool)
    mask[0] = True
    scale0 = torch.exp(params["scales"][0]).detach().clone()
    split(params, optimizers, mask, torch.Generator().manual_seed(0))
    assert len(params["means"]) == 23
    assert torch.allclose(torch.exp(params["scales"][-2:]), (scale0 / 1.6).expand(2, 3))
    assert not any(torch.equal(params["means"][-1], m) for m in means_before)
    remove(params, optimizers, torch.arange(23) < 3)
    assert all(len(p) == 20 and optimizers[k].state[p]["exp_avg_sq"].shape == p.shape for k, p in params.items())


def test_strategy_grows_where_the_image_gradient_is_high_and_prunes_transparent():
    torch.manual_seed(2)
    params = create_params((torch.rand(30, 3) - 0.5) * 0.5, torch.rand(30, 3), opacity=0.5)
    with torch.no_grad():
        params["opacities"][:5] = torch.logit(torch.tensor(0.001))  # below prune_opa
    optimizers = {k: torch.optim.Adam([params[k]], lr=1e-3) for k in params.keys()}
    strategy = DensifyStrategy(DensifyConfig(grow_grad2d=1e-4, refine_start_iter=0, refine_every=1, reset_every=0))
    state = strategy.initialize_state(30, scene_scale=2.2)
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 2.0
    K = torch.tensor([[[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]])
    target = torch.zeros(1, 32, 32, 3)
    target[:, 8:24, 8:24] = torch.tensor([0.9, 0.1, 0.1])
    image, _, info = rasterization(params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]), sh0_to_rgb(params["sh0"]), viewmat, K, 32, 32)
    strategy.step_pre_backward(info)
    (image - target).abs().mean().backward()
    visible = (info["radii"] > 0).all(-1)[0]
    strategy.step_post_backward(params, optimizers, state, step=1, info=info)
    n = len(params["means"])
    assert n > 30 - 5  # something grew...
    assert (torch.sigmoid(params["opacities"]) >= 0.005).all()  # ...and the transparent ones went
    assert state["grad2d"].shape == (n,) and state["count"].sum() == 0
    assert visible.sum() > 0


def test_ssim_and_psnr():
    torch.manual_seed(0)
    a = torch.rand(2, 24, 24, 3)
    assert torch.allclose(ssim(a, a), torch.ones(2))
    # Constant images: only the luminance term is left, (2 mx my + c1) / (mx^2 + my^2 + c1).
    c1 = 0.01**2
    expected = (2 * 0.5 * 0.7 + c1) / (0.5**2 + 0.7**2 + c1)
    assert ssim(torch.full((1, 16, 16, 3), 0.5, dtype=torch.float64), torch.full((1, 16, 16, 3), 0.7, dtype=torch.float64)).item() == pytest.approx(expected, rel=1e-5)
    noise = torch.randn_like(a)
    assert (ssim(a, a + 0.2 * noise) < ssim(a, a + 0.05 * noise)).all()
    assert psnr(a, a + 0.1)[0].item() == pytest.approx(20.0, abs=1e-3)
    assert math.isinf(psnr(a, a)[0].item())


def test_config_validation_and_round_trip():
    config = preset("fast", seed=3)
    assert ReconstructConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="coarse_videos"):
        ReconstructConfig(coarse_videos=("front",))
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("huge")
    with pytest.raises(ValueError, match="holdout"):
        ReconstructConfig(holdout_every=1)
