"""The 3D-aware guidance's reference: a model of static orbits, against the m = 0 shortcut.

Two tiny text models are trained with d4d's own objective on the same two clips: one on their
static orbits only (``target="static"``, no m), one on their dynamic orbits with m dropped half
the time (the zero-motion branch). The latents are drawn by hand so the motion is unmistakable:
a 2 x 2 block that stays put in the static orbit and walks across the frame in the dynamic one.
On a fixed noisy input, the clean-latent estimate of each reference is projected on the motion
direction (zdyn - zbar): -0.5 is the static orbit, +0.5 the dynamic one.
"""

from __future__ import annotations

import pytest
import torch

from d4d.testing.train_fixtures import single_thread
from d4d.training.backbone import Conditions, Denoiser
from d4d.training.components import build_components
from d4d.training.config import preset
from d4d.training.guidance import guided_prediction
from d4d.training.objective import compute_losses, drop_conditions
from d4d.training.schedules import clean_estimate, training_schedule

T, C, H = 4, 4, 4
STEPS = 50


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


def block_latents(moving: bool) -> torch.Tensor:
    """[2, T, C, H, H]: clip b has a block of ones in rows 2b..2b+1, at column t (moving) or 0."""
    z = torch.zeros(2, T, C, H, H)
    for clip in range(2):
        for frame in range(T):
            z[clip, frame, :, 2 * clip : 2 * clip + 2, frame if moving else 0] = 1.0
    return z


ZDYN, ZBAR = block_latents(True), block_latents(False)
TEXT = torch.randn(2, 32, 32, generator=torch.Generator().manual_seed(0))


def trained(target: str):
    """A tiny text model trained STEPS steps on the clips' ``target`` orbits. v-prediction, so the
    clean-latent estimate stays well conditioned at high noise."""
    config = preset("tiny-text", target=target, p_uncond=0.0, p_no_motion=0.5 if target == "dynamic" else 0.0,
                    prediction_type="v_prediction")
    parts = build_components("text", config.architecture, seed=0, prediction_type="v_prediction", target=target)
    model = Denoiser(parts.unet, parts.motion_embedding, "text")
    schedule = training_schedule(parts.scheduler, config.edm_p_mean, config.edm_p_std)
    cond = Conditions(motion=torch.full((2,), 500.0 if target == "dynamic" else 0.0), text_embeddings=TEXT)
    z0 = ZDYN if target == "dynamic" else ZBAR
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        losses = compute_losses(model, schedule, z0, ZBAR, drop_conditions(cond, cond.null(torch.zeros(1, 32, 32)), config, generator),
                                config, generator)
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
    return model.eval(), parts.scheduler, cond


def along_motion(latents: torch.Tensor) -> float:
    """Position of ``latents`` on the line from the static orbit (-0.5) to the dynamic one (+0.5)."""
    direction = ZDYN - ZBAR
    return float(((latents - (ZDYN + ZBAR) / 2) * direction).sum() / direction.pow(2).sum())


@pytest.mark.slow
def test_a_static_model_is_a_reference_the_zero_motion_branch_is_not():
    static_model, scheduler, static_cond = trained("static")
    dynamic_model, _, cond = trained("dynamic")
    assert static_model.motion_embedding is None
    t = torch.tensor([900, 900])
    alpha_bar = scheduler.alphas_cumprod[t]
    noise = torch.randn(ZDYN.shape, generator=torch.Generator().manual_seed(1))
    noisy = alpha_bar.sqrt().view(-1, 1, 1, 1, 1) * (ZDYN + ZBAR) / 2 + (1 - alpha_bar).sqrt().view(-1, 1, 1, 1, 1) * noise
    with torch.no_grad():
        conditional = dynamic_model(noisy, t, cond)  # e(z, y, m)
        static_reference = static_model(noisy, t, static_cond)  # ebar(z, y) of a model of static orbits
        zero_motion = dynamic_model(noisy, t, cond.without_motion())  # e(z, y, 0), the shortcut
    estimate = lambda v: clean_estimate(noisy, v, alpha_bar, "v_prediction")  # noqa: E731

    # What each reference predicts: the static model the static orbit; the m = 0 branch a moving one.
    assert along_motion(estimate(static_reference)) < -0.15
    assert along_motion(estimate(zero_motion)) > 0.0
    # The w2 term moves the sample by w2 (x0(e) - x0(ebar)): with the static model, along the motion
    # (away from the static orbit); with the m = 0 branch, hardly at all.
    for_static = guided_prediction(conditional, None, static_reference, w1=0.0, w2=0.5)
    for_zero_motion = guided_prediction(conditional, None, zero_motion, w1=0.0, w2=0.5)
    moved_static = along_motion(estimate(for_static)) - along_motion(estimate(conditional))
    moved_zero = along_motion(estimate(for_zero_motion)) - along_motion(estimate(conditional))
    assert moved_static > 0.1
    assert abs(moved_zero) < 0.25 * moved_static
