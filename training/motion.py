"""The paper's motion-magnitude additions: the conditioning MLP and the latent reconstruction loss.

``MotionEmbedding`` turns the motion magnitude m (docs/conventions.md, version 1: 0..195075) into
a vector added to the UNet's timestep embedding (``training.backbone.offset_time_embedding`` does
the adding). ``latent_motion_magnitude`` and ``motion_reconstruction_loss`` are the paper's
L_mr = ||m(z0) - m(z0_hat)||^2 with m(z) = (1/T) sum_i ||z_i - zbar_i||^2.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def motion_features(motion_magnitude: torch.Tensor) -> torch.Tensor:
    """The MLP's input: log(1 + m), float32 [B, 1], from m float [B] (version-1 scale, >= 0).

    The logarithm maps the 0..195075 range of m to 0..12.2, so the value 0 (a static orbit, and
    the "motion dropped" token) stays 0 and typical magnitudes (tens to thousands) stay O(1..8).
    """
    if motion_magnitude.ndim != 1:
        raise ValueError(f"motion_magnitude must be [B], got shape {tuple(motion_magnitude.shape)}")
    return torch.log1p(motion_magnitude.float().clamp_min(0.0))[:, None]


class MotionEmbedding(ModelMixin, ConfigMixin):
    """Two-layer MLP: m [B] -> embedding [B, time_embed_dim], added to the timestep embedding.

    ``Linear(1, hidden) -> SiLU -> Linear(hidden, time_embed_dim)``; the last layer's weight and
    bias start at zero (as VideoMV's camera embedding), so an untrained embedding is exactly 0
    and a pretrained backbone starts from its own behaviour.
    """

    @register_to_config
    def __init__(self, time_embed_dim: int, hidden_dim: int = 256):
        super().__init__()
        self.linear_1 = nn.Linear(1, hidden_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(hidden_dim, time_embed_dim)
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)

    def forward(self, motion_magnitude: torch.Tensor) -> torch.Tensor:
        """m float [B] (version-1 scale) -> float [B, time_embed_dim] in the module's dtype."""
        features = motion_features(motion_magnitude).to(self.linear_1.weight.dtype)
        return self.linear_2(self.act(self.linear_1(features)))


def latent_motion_magnitude(latents: torch.Tensor, static_latents: torch.Tensor) -> torch.Tensor:
    """m(z) = (1/T) sum_i ||z_i - zbar_i||^2 in latent space, per clip.

    Args:
        latents: z, float [B, T, C, h, w].
        static_latents: zbar, the static orbit's latents, same shape.

    Returns:
        float32 [B]. The squared norm of each frame is averaged over its C*h*w elements (not
        summed, d4d's choice) so the value and the loss weight do not depend on the latent size.
    """
    if latents.shape != static_latents.shape or latents.ndim != 5:
        raise ValueError(f"latents {tuple(latents.shape)} and static_latents {tuple(static_latents.shape)} must be equal [B, T, C, h, w]")
    return (latents.float() - static_latents.float()).pow(2).mean(dim=(2, 3, 4)).mean(dim=1)


def motion_reconstruction_loss(
    latents: torch.Tensor, predicted_latents: torch.Tensor, static_latents: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """L_mr = mean over the batch of w_b * (m(z0) - m(z0_hat))^2, a float32 scalar.

    Args:
        latents: z0, the clean dynamic latents [B, T, C, h, w].
        predicted_latents: z0_hat, the model's estimate of z0, same shape.
        static_latents: zbar, same shape.
        weights: optional float [B] per-clip weights (e.g. alpha_bar_t), default 1.
    """
    difference = latent_motion_magnitude(latents, static_latents) - latent_motion_magnitude(predicted_latents, static_latents)
    per_clip = difference.pow(2)
    if weights is not None:
        per_clip = per_clip * weights.float()
    return per_clip.mean()
