"""d4d-eval's metrics, each held against a case computed by hand (or by an independent twin)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from d4d.curation.ssim import ssim_map
from d4d.evaluation.clip_score import ClipScorer, cosine_rows
from d4d.evaluation.evaluate import front_mask, motion_rank, spearman
from d4d.evaluation.i3d import InceptionI3d, frechet_distance, load_i3d
from d4d.evaluation.image_metrics import K1, psnr, ssim
from d4d.lpips import CHANNELS, SCALE, SHIFT, alexnet_features, load_lpips
from d4d.testing.eval_fixtures import clip_folder, i3d_file, lpips_folder
from d4d.testing.train_fixtures import single_thread


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


def flat(value: float, size: int = 32) -> torch.Tensor:
    return torch.full((1, 3, size, size), value)


def test_psnr_of_a_constant_offset():
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert psnr(flat(0.5), flat(0.6)).item() == pytest.approx(20.0)
    assert math.isinf(psnr(flat(0.5), flat(0.5)).item())


def test_ssim_of_flat_frames_and_against_the_numpy_twin():
    # Flat frames: no variance or covariance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.2, 0.6, K1**2
    assert ssim(flat(a), flat(b)).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 24, 24, generator=g), torch.rand(2, 3, 24, 24, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    # curation.ssim (numpy, the same definition) per channel, averaged over the channels
    twin = [np.mean([ssim_map(x[i, c].numpy(), y[i, c].numpy(), data_range=1.0).mean() for c in range(3)]) for i in range(2)]
    assert torch.allclose(ssim(x, y), torch.tensor(twin, dtype=torch.float64), atol=1e-6)


def test_lpips_of_flat_frames_with_hand_set_weights(tmp_path):
    """conv1 copies R and G (centre tap) into channels 0 and 1, every later conv is zero: only layer 1
    counts, where the unit-normalised (relu(r'), relu(g')) of the two flat frames differ."""
    features = alexnet_features()
    state = {f"features.{k}": torch.zeros_like(v) for k, v in features.state_dict().items()}
    state["features.0.weight"][0, 0, 5, 5] = 1.0
    state["features.0.weight"][1, 1, 5, 5] = 1.0
    torch.save(state, tmp_path / "alexnet.pth")
    lins = {f"lin{k}.model.1.weight": torch.zeros(1, c, 1, 1) for k, c in enumerate(CHANNELS)}
    lins["lin0.model.1.weight"][0, :2, 0, 0] = torch.tensor([0.7, 0.3])
    torch.save(lins, tmp_path / "alex.pth")
    model = load_lpips(tmp_path)

    def unit(rgb):
        scaled = [max((v - s) / k, 0.0) for v, s, k in zip(rgb[:2], SHIFT, SCALE)]
        norm = math.hypot(*scaled)
        return [v / norm for v in scaled]

    x_rgb, y_rgb = (0.5, -0.2, 0.0), (0.1, 0.4, 0.0)
    x = torch.tensor(x_rgb).view(1, 3, 1, 1).expand(1, 3, 64, 64)
    y = torch.tensor(y_rgb).view(1, 3, 1, 1).expand(1, 3, 64, 64)
    u, v = unit(x_rgb), unit(y_rgb)
    expected = 0.7 * (u[0] - v[0]) ** 2 + 0.3 * (u[1] - v[1]) ** 2
    assert model(x, y).item() == pytest.approx(expected, rel=1e-5)
    random = load_lpips(lpips_folder(tmp_path / "random"))
    z = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.allclose(random(z, z), torch.zeros(2))
    (tmp_path / "random" / "alex.pth").unlink()
    with pytest.raises(ValueError, match="no alex.pth"):
        load_lpips(tmp_path / "random")


def test_frechet_distance_of_hand_computed_gaussians():
    # 1-D: means 1 and 3, unbiased variances 2 and 8: (1-3)^2 + 2 + 8 - 2 sqrt(2 * 8) = 6
    assert frechet_distance(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [5.0]])) == pytest.approx(6.0)
    # independent dimensions add up; a set against itself is 0
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    b = a * 3 + 1
    var_a, var_b = a[:, 0].var().item(), b[:, 0].var().item()
    expected = 2 * ((a[:, 0].mean() - b[:, 0].mean()).item() ** 2 + var_a + var_b - 2 * math.sqrt(var_a * var_b))
    assert frechet_distance(a, b) == pytest.approx(expected)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)


def test_i3d_loads_its_own_layout_and_refuses_others(tmp_path):
    model = load_i3d(i3d_file(tmp_path / "i3d.pt"))
    videos = torch.rand(2, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        features = model(videos)
    assert features.shape == (2, 400) and torch.isfinite(features).all()
    assert torch.equal(features[0], model(videos[:1])[0])  # batch-independent (eval-mode batch norm)
    with pytest.raises(ValueError, match="T >= 9"):
        model(videos[:, :, :8])
    state = InceptionI3d(8).state_dict()
    state["Mixed_3b.b0.conv3d.weight"] = torch.zeros(1, 1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="Mixed_3b.b0.conv3d.weight has shape"):
        load_i3d(tmp_path / "bad.pt")


def test_clip_similarity_and_front_views(tmp_path):
    scorer = ClipScorer(clip_folder(tmp_path / "clip"))
    frames = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    embeddings = scorer.image_embeddings(frames)
    assert embeddings.shape == (3, 16) and torch.allclose(embeddings.norm(dim=1), torch.ones(3))
    assert torch.allclose(cosine_rows(embeddings, embeddings), torch.ones(3))  # a frame against itself: 1
    text = scorer.text_embeddings(["a red ball", "a dynamic asset"])
    assert text.shape == (2, 16) and torch.allclose(text.norm(dim=1), torch.ones(2))
    # front views: azimuths within 45 degrees of 0, wrapping at 360
    assert front_mask(np.array([0.0, 45.0, 90.0, 180.0, 315.0, 330.0]), 45.0).tolist() == [True, True, False, False, True, True]
    with pytest.raises(ValueError, match="no config.json"):
        ClipScorer(tmp_path)


def test_spearman_rank_correlation_by_hand():
    # ranks 1..5 against 1, 2, 3, 5, 4: d^2 = 2, rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman([0.5, 1.0, 2.0, 3.0, 7.0], [10.0, 20.0, 30.0, 50.0, 40.0]) == pytest.approx(0.9)
    assert spearman([1.0, 2.0, 3.0], [9.0, 5.0, 1.0]) == pytest.approx(-1.0)
    # ties share their mean rank: x ranks 1, 2.5, 2.5, 4; Pearson of the ranks against 1..4
    assert spearman([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    assert spearman([1.0, 2.0], [1.0, 2.0]) is None and spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    rows = [{"m_requested": r, "m_generated": g} for r, g in ((1.0, 3.0), (2.0, 2.0), (3.0, 1.0))] + [{"m_requested": None, "m_generated": 5.0}]
    assert motion_rank(rows) == {"value": pytest.approx(-1.0), "n": 3, "reason": None}
    assert motion_rank(rows[:2])["value"] is None and "3 clips" in motion_rank(rows[:2])["reason"]
