"""The paper's 3D-aware classifier-free guidance, as a pure function of three predictions."""

from __future__ import annotations

import torch

from .sample_config import DEFAULT_W1, DEFAULT_W2  # the paper's weights, defined with d4d-sample's options


def guided_prediction(conditional: torch.Tensor, unconditional: torch.Tensor | None, static: torch.Tensor | None,
                      w1: float = DEFAULT_W1, w2: float = DEFAULT_W2) -> torch.Tensor:
    """e_hat = e(z,y,m) + w1 * [e(z,y,m) - e(z)] + w2 * [e(z,y,m) - ebar(z,y)].

    Args:
        conditional: e(z, y, m), the prediction with every condition, any shape (e.g. [B, T, C, h, w]).
        unconditional: e(z), every condition dropped; may be None only when w1 == 0.
        static: ebar(z, y), the static reference (a frozen static model, or this model at zero
            motion) given y; may be None only when w2 == 0.
        w1, w2: guidance weights (paper: 7.0 and 0.5). w1 = w2 = 0 returns ``conditional``.

    Returns:
        The guided prediction, same shape and dtype as ``conditional``.
    """
    if w1 != 0 and unconditional is None:
        raise ValueError(f"w1={w1} needs the unconditional prediction")
    if w2 != 0 and static is None:
        raise ValueError(f"w2={w2} needs the static reference prediction")
    guided = conditional
    if w1 != 0:
        guided = guided + w1 * (conditional - unconditional)
    if w2 != 0:
        guided = guided + w2 * (conditional - static)
    return guided
