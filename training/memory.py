"""What makes a paper-size training step fit on a GPU: activation checkpointing, attention, optimiser.

- **Activation checkpointing** (``--gradient-checkpointing``). diffusers 0.42's 3D blocks (used
  by ModelScope's ``UNet3DConditionModel`` and ``I2VGenXLUNet``) carry a
  ``gradient_checkpointing`` flag that their ``forward`` never reads, and those UNets refuse
  ``enable_gradient_checkpointing``. ``enable_activation_checkpointing`` therefore wraps, in
  every down, mid and up block of any of the three UNets, each layer (``resnets``,
  ``temp_convs``, ``attentions``, ``temp_attentions``; I2VGen-XL's ``transformer_in`` too) in
  ``torch.utils.checkpoint`` (non-reentrant, RNG state preserved, so dropout draws the same
  masks when recomputed): the forward keeps only each layer's inputs, the backward recomputes one
  layer at a time. The layer's weights and the UNet's state dict are untouched (the wrapper is
  an instance attribute ``forward``); loss and gradients equal those without it
  (tests/test_train_memory.py). SVD uses the same wrapping (diffusers' own checkpoints only its
  resnets), so every backbone is checkpointed at the same granularity.
- **Attention**: ``use_sdpa_attention`` sets diffusers' ``AttnProcessor2_0`` (torch's
  ``scaled_dot_product_attention``) on every attention layer explicitly: on a GPU it runs the
  flash or memory-efficient kernels, which never store the [tokens x tokens] attention matrix;
  on CPU torch's flash kernel for CPU. No xformers.
- **Sharding**: not supported. ``check_distribution`` refuses FSDP and DeepSpeed launches: the
  loop keeps an EMA of ``unwrap_model(...)``'s parameters and exports and checkpoints them from
  process 0, which under sharding hold one process's shard (and ZeRO's bf16 mode keeps them in
  bf16). Data parallelism (DDP) is what d4d-train runs on several processes.
- **Optimiser** (``--optimizer``): "adamw" (torch's AdamW, two float32 moments: 8 bytes per
  parameter) or "adamw-8bit" (bitsandbytes' ``AdamW8bit``: blockwise 8-bit moments, 2 bytes
  per parameter). bitsandbytes is not a d4d dependency (its kernels are CUDA's); without it
  "adamw-8bit" stops with one line saying how to install it.
"""

from __future__ import annotations

import importlib
import logging

import torch
from accelerate.utils import DistributedType
from diffusers.models.attention_processor import AttnProcessor2_0
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)

#: Module lists of a diffusers UNet block whose members are checkpointed one by one.
CHECKPOINTED_LAYERS = ("resnets", "temp_convs", "attentions", "temp_attentions")
#: --optimizer values.
OPTIMIZERS = ("adamw", "adamw-8bit")


def checkpointed_layers(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers ``enable_activation_checkpointing`` wraps, in forward order of their blocks."""
    blocks = [*unet.down_blocks, *([unet.mid_block] if unet.mid_block is not None else []), *unet.up_blocks]
    layers = [unet.transformer_in] if isinstance(getattr(unet, "transformer_in", None), torch.nn.Module) else []
    for block in blocks:
        for name in CHECKPOINTED_LAYERS:
            layers.extend(getattr(block, name, None) or ())
    return layers


def _checkpointed(forward):
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)
    run.d4d_checkpointed = True
    return run


def enable_activation_checkpointing(unet: torch.nn.Module) -> int:
    """Recompute every block layer of ``unet`` in the backward pass; returns how many layers.

    Idempotent. ValueError when ``unet`` has no diffusers blocks to checkpoint.
    """
    layers = checkpointed_layers(unet) if hasattr(unet, "down_blocks") else []
    if not layers:
        raise ValueError(f"gradient checkpointing: {type(unet).__name__} has no diffusers UNet blocks to checkpoint")
    for layer in layers:
        if not getattr(layer.forward, "d4d_checkpointed", False):
            layer.forward = _checkpointed(layer.forward)
    return len(layers)


def disable_activation_checkpointing(unet: torch.nn.Module) -> None:
    """Undo ``enable_activation_checkpointing`` (the layers' own ``forward`` again)."""
    for layer in checkpointed_layers(unet):
        if getattr(layer.forward, "d4d_checkpointed", False):
            del layer.forward


#: accelerate launch modes that shard parameters, which d4d-train's EMA, export and checkpoints do not handle.
SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM)


def check_distribution(distributed_type: DistributedType) -> None:
    """ValueError, in one line, when accelerate was launched with a parameter-sharding mode."""
    if distributed_type in SHARDED:
        raise ValueError(f"accelerate launch with {distributed_type.value}: d4d-train does not shard parameters (its EMA, "
                         "export and checkpoints need every process to hold the full weights); launch data-parallel "
                         "(accelerate launch --multi_gpu, or torchrun) and use --gradient-checkpointing / "
                         "--optimizer adamw-8bit to fit (docs/training.md, \"Paper scale: memory\")")


def use_sdpa_attention(unet: torch.nn.Module) -> None:
    """Every attention layer of ``unet`` runs torch's scaled_dot_product_attention (AttnProcessor2_0)."""
    unet.set_attn_processor(AttnProcessor2_0())


def make_optimizer(name: str, parameters, lr: float, betas: tuple[float, float], weight_decay: float,
                   eps: float) -> torch.optim.Optimizer:
    """AdamW ("adamw") or bitsandbytes' 8-bit AdamW ("adamw-8bit") over ``parameters``.

    ValueError naming the option when ``name`` is unknown or bitsandbytes cannot be imported.
    """
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)
    if name == "adamw-8bit":
        try:
            bnb = importlib.import_module("bitsandbytes")
        except ImportError as exc:  # not installed, or its native library does not load
            raise ValueError(f"--optimizer adamw-8bit needs bitsandbytes, which is not importable here ({exc}); "
                             "install it (pip install bitsandbytes, on a CUDA machine) or use --optimizer adamw") from None
        return bnb.optim.AdamW8bit(parameters, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)
    raise ValueError(f"--optimizer: got {name!r}, expected one of {OPTIMIZERS}")
