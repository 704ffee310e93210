"""The pure-PyTorch rasterizer against analytic expectations (CPU), and against gsplat (GPU)."""

from __future__ import annotations

import math

import pytest
import torch

from d4d.reconstruction.rasterize import gsplat_available, resolve_backend
from d4d.reconstruction.rasterize_torch import project_gaussians, rasterization, sh_basis

W = H = 32
FOCAL = 40.0


def camera(distance: float = 2.0, dtype=torch.float32):
    """One OpenCV camera on the -Z side of the origin looking along +Z (world = camera axes)."""
    viewmat = torch.eye(4, dtype=dtype)[None]
    viewmat[0, 2, 3] = distance
    K = torch.tensor([[[FOCAL, 0.0, W / 2], [0.0, FOCAL, H / 2], [0.0, 0.0, 1.0]]], dtype=dtype)
    return viewmat, K


def identity_quats(n: int, dtype=torch.float32) -> torch.Tensor:
    q = torch.zeros(n, 4, dtype=dtype)
    q[:, 0] = 1.0
    return q


def test_single_isotropic_gaussian_centre_and_footprint():
    viewmat, K = camera()
    mean = torch.tensor([[0.1, -0.05, 0.0]])
    s, opacity = 0.05, 0.7
    image, alpha, meta = rasterization(mean, identity_quats(1), torch.full((1, 3), s), torch.tensor([opacity]), torch.ones(1, 3), viewmat, K, W, H)
    z = 2.0
    u, v = FOCAL * 0.1 / z + W / 2, FOCAL * -0.05 / z + H / 2
    assert torch.allclose(meta["means2d"][0, 0], torch.tensor([u, v]), atol=1e-5)
    # EWA: J (s^2 I) J^T with the pinhole Jacobian at the centre, plus gsplat's eps2d low-pass.
    x, y = 0.1, -0.05
    J = torch.tensor([[FOCAL / z, 0.0, -FOCAL * x / z**2], [0.0, FOCAL / z, -FOCAL * y / z**2]], dtype=torch.float64)
    cov = s**2 * J @ J.T + 0.3 * torch.eye(2, dtype=torch.float64)
    assert meta["radii"][0, 0].tolist() == [math.ceil(3.33 * math.sqrt(cov[0, 0])), math.ceil(3.33 * math.sqrt(cov[1, 1]))]
    inv = torch.linalg.inv(cov)
    for px, py in [(18, 14), (19, 15), (21, 13), (16, 16)]:
        d = torch.tensor([px + 0.5 - u, py + 0.5 - v], dtype=torch.float64)
        expected = opacity * math.exp(-0.5 * float(d @ inv @ d))
        expected = expected if expected >= 1 / 255 else 0.0
        assert alpha[0, py, px, 0].item() == pytest.approx(expected, abs=1e-6)
    assert alpha[0, 0, 0, 0].item() == 0.0  # far outside the footprint


def test_compositing_is_front_to_back_whatever_the_input_order():
    viewmat, K = camera()
    means = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.3]])  # the second is nearer the camera
    colors = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    opacities = torch.tensor([0.5, 0.8])
    scales = torch.full((2, 3), 0.2)
    image, alpha, meta = rasterization(means, identity_quats(2), scales, opacities, colors, viewmat, K, W, H)
    flipped, _, _ = rasterization(means.flip(0), identity_quats(2), scales, opacities.flip(0), colors.flip(0), viewmat, K, W, H)
    assert torch.allclose(image, flipped, atol=1e-6)
    centre = image[0, H // 2, W // 2]
    # Peak alphas at the centre pixel (its centre is half a pixel off the projected mean).
    a_front = 0.8 * math.exp(-0.5 * 0.5 / ((FOCAL * 0.2 / 1.7) ** 2 + 0.3))
    a_back = 0.5 * math.exp(-0.5 * 0.5 / ((FOCAL * 0.2 / 2.5) ** 2 + 0.3))
    assert centre[0].item() == pytest.approx(a_front, abs=1e-4)
    assert centre[2].item() == pytest.approx((1 - a_front) * a_back, abs=1e-4)
    assert alpha[0, H // 2, W // 2, 0].item() == pytest.approx(a_front + (1 - a_front) * a_back, abs=1e-4)


def test_background_depth_and_culling():
    viewmat, K = camera()
    means = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -3.0]])  # the second is behind the camera
    bg = torch.tensor([[0.2, 0.4, 0.6]])  # the colour channels only, as gsplat takes it
    image, alpha, meta = rasterization(means, identity_quats(2), torch.full((2, 3), 0.1), torch.tensor([0.999, 0.999]), torch.ones(2, 3), viewmat, K, W, H, backgrounds=bg, render_mode="RGB+ED")
    assert meta["radii"][0, 1].tolist() == [0, 0]
    assert torch.allclose(image[0, 0, 0], torch.tensor([0.2, 0.4, 0.6, 0.0]))  # corner: background colour, depth 0
    assert image[0, H // 2, W // 2, 3].item() == pytest.approx(2.0, abs=1e-3)  # expected depth of the opaque centre
    with pytest.raises(ValueError, match="render_mode"):
        rasterization(means, identity_quats(2), torch.full((2, 3), 0.1), torch.ones(2), torch.ones(2, 3), viewmat, K, W, H, render_mode="RGBD")
    with pytest.raises(ValueError, match="the colour channels"):  # gsplat asserts the same
        rasterization(means, identity_quats(2), torch.full((2, 3), 0.1), torch.ones(2), torch.ones(2, 3), viewmat, K, W, H, backgrounds=torch.zeros(1, 4), render_mode="RGB+ED")


def test_anisotropic_projection_matches_ewa_closed_form():
    viewmat, K = camera()
    angle = 0.6  # rotation about the view axis
    quat = torch.tensor([[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]])
    scales = torch.tensor([[0.15, 0.03, 0.05]])
    means2d, conics, depths, radii = project_gaussians(torch.zeros(1, 3), quat, scales, viewmat, K, W, H)
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s], [s, c]])
    cov = R @ torch.diag(torch.tensor([0.15, 0.03]) ** 2) @ R.T * (FOCAL / 2.0) ** 2 + 0.3 * torch.eye(2)
    inv = torch.linalg.inv(cov)
    assert torch.allclose(conics[0, 0], torch.tensor([inv[0, 0], inv[0, 1], inv[1, 1]]), rtol=1e-4)
    assert depths[0, 0].item() == pytest.approx(2.0)


def test_gradients_match_finite_differences_float64():
    torch.manual_seed(3)
    viewmat, K = camera(dtype=torch.float64)
    n = 3
    means = ((torch.rand(n, 3, dtype=torch.float64) - 0.5) * 0.4).requires_grad_()
    quats = torch.randn(n, 4, dtype=torch.float64).requires_grad_()
    scales = (0.05 + 0.05 * torch.rand(n, 3, dtype=torch.float64)).requires_grad_()
    opacities = (0.3 + 0.5 * torch.rand(n, dtype=torch.float64)).requires_grad_()
    colors = torch.rand(n, 3, dtype=torch.float64).requires_grad_()
    bg = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)

    def render(means, quats, scales, opacities, colors):
        image, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmat, K, 12, 12, backgrounds=bg, render_mode="RGB+ED")
        return image, alpha

    K[0, 0, 2] = K[0, 1, 2] = 6.0
    K[0, 0, 0] = K[0, 1, 1] = 20.0
    assert torch.autograd.gradcheck(render, (means, quats, scales, opacities, colors), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_sh_basis_is_orthonormal_over_the_sphere():
    dirs = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=-1)
    basis = sh_basis(3, dirs)  # [P, 16]
    gram = 4 * math.pi * basis.T @ basis / len(dirs)  # Monte Carlo of the integral of Y_i Y_j over the sphere
    assert basis.shape == (400_000, 16) and torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)
    with pytest.raises(ValueError, match="sh_degree must be in"):
        sh_basis(4, dirs[:2])


def test_sh_colour_depends_on_the_viewing_direction():
    """Degree 1 with INRIA's signs: colour = 0.5 + C0 sh_0 - C1 y sh_1 + C1 z sh_2 - C1 x sh_3 along the view direction."""
    coeffs = torch.zeros(1, 16, 3)
    coeffs[0, 0] = torch.tensor([0.5, 0.0, -0.5])
    coeffs[0, 2] = torch.tensor([0.3, 0.0, -0.3])  # the z band
    args = (torch.zeros(1, 3), identity_quats(1), torch.full((1, 3), 0.2), torch.tensor([0.999]))
    front_view, K = camera()  # camera centre at z = -2: the direction to the Gaussian is +z
    back_view = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))[None]  # turned round, centre at z = +2: direction -z
    back_view[0, 2, 3] = 2.0
    colours = []
    for view in (front_view, back_view):
        image, alpha, _ = rasterization(*args, coeffs, view, K, W, H, sh_degree=3)
        colours.append(image[0, H // 2, W // 2] / alpha[0, H // 2, W // 2])
    c0, c1 = 0.2820947917738781, 0.48860251190292
    assert torch.allclose(colours[0], torch.tensor([0.5 + 0.5 * c0 + 0.3 * c1, 0.5, 0.5 - 0.5 * c0 - 0.3 * c1]), atol=1e-4)
    assert torch.allclose(colours[1], torch.tensor([0.5 + 0.5 * c0 - 0.3 * c1, 0.5, max(0.5 - 0.5 * c0 + 0.3 * c1, 0.0)]), atol=1e-4)
    plain, _, _ = rasterization(*args, coeffs[:, 0] * c0 + 0.5, front_view, K, W, H)
    degree0, _, _ = rasterization(*args, coeffs, front_view, K, W, H, sh_degree=0)  # only the first band counts
    assert torch.allclose(plain, degree0, atol=1e-6)


def test_backend_selection():
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_backend("gsplat", "cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("opengl", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not (torch.cuda.is_available() and gsplat_available()), reason="needs CUDA and gsplat")
@pytest.mark.parametrize("n_cameras", [1, 3])
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_torch_matches_gsplat(n_cameras, sh_degree):
    from d4d.reconstruction.rasterize_gsplat import rasterization as gsplat_rasterization

    torch.manual_seed(0)
    device = "cuda"
    n = 400
    means = ((torch.rand(n, 3) - 0.5) * 0.8).to(device)
    quats = torch.randn(n, 4, device=device)
    scales = (0.01 + 0.04 * torch.rand(n, 3)).to(device)
    opacities = (0.1 + 0.8 * torch.rand(n)).to(device)
    colors = torch.rand(n, 3, device=device) if sh_degree is None else 0.3 * torch.randn(n, 16, 3, device=device)
    viewmats = torch.eye(4, device=device)[None].repeat(n_cameras, 1, 1)
    viewmats[:, 2, 3] = 2.0 + 0.3 * torch.arange(n_cameras, device=device)
    Ks = torch.tensor([[FOCAL, 0.0, W / 2], [0.0, FOCAL, H / 2], [0.0, 0.0, 1.0]], device=device)[None].repeat(n_cameras, 1, 1)
    bg = torch.rand(n_cameras, 3, device=device)  # colour channels only: gsplat adds the depth channel's 0
    outputs, grads = [], []
    for fn in (rasterization, gsplat_rasterization):
        inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opacities, colors)]
        image, alpha, _ = fn(*inputs, viewmats, Ks, W, H, backgrounds=bg, render_mode="RGB+ED", sh_degree=sh_degree)
        (image.square().sum() + alpha.sum()).backward()
        outputs.append((image, alpha))
        grads.append([t.grad for t in inputs])
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=2e-3)
    assert torch.allclose(outputs[0][1], outputs[1][1], atol=2e-3)
    for g_torch, g_gsplat in zip(*grads):
        assert torch.allclose(g_torch, g_gsplat, atol=1e-2, rtol=1e-2)
