"""Memory of one paper-size training step, per backbone, and how many clips fit on an 80 GB GPU.

    python -m benchmarks.train_memory            # about 100 s of CPU time; nothing is allocated

Every model is built on the meta device (shapes, no storage), so the paper sizes cost nothing:

- training state, from parameter counts: trainable weights (UNet + motion embedding + static
  input) float32, their gradients float32, AdamW's two moments (float32: 8 bytes per parameter;
  ``--optimizer adamw-8bit``: 2), the EMA copy float32; the frozen VAE, text and image encoders
  in bf16 (``--mixed-precision bf16`` casts them); and bf16 autocast's cached bf16 copy of every
  trainable weight (2 bytes per parameter, held through the backward pass).
- activations: the Denoiser's forward in train mode (24 frames of 32 x 32 latents, the paper's
  256 x 256 clips) on meta tensors under ``torch.autograd.graph.saved_tensors_hooks``, counting
  every distinct non-parameter tensor autograd keeps for the backward pass, for 1 and 2 clips (the
  difference is the cost per clip). Attention is counted as the flash kernel keeps it (q, k, v,
  output, a log-sum-exp per query; ``FlashAttention``), as SDPA runs on a GPU; at tiny size the
  count equals a real CPU forward's, byte for byte (tests/test_train_memory.py). Autocast cannot
  run on the meta device, so the step runs once with bf16 weights and inputs (every activation
  bf16: the lower bound of what autocast keeps, which holds the inputs of its float32 ops, the
  norms, in float32) and once in float32 (the upper bound). With ``--gradient-checkpointing`` (training.memory) the forward keeps each
  block layer's inputs; the backward then recomputes one layer at a time, adding at most the
  largest layer's own activations (measured per layer without checkpointing) to the peak.

Clips per GPU = (80e9 bytes - training state - per-step activations) / per-clip activations,
rounded down, with nothing held back for the allocator's fragmentation or kernel workspaces (a
real run fits fewer). Writes benchmarks/results/train_memory.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

from d4d.training import architectures as arch_lib
from d4d.training.backbone import Conditions, Denoiser, StaticOrbitInput
from d4d.training.config import preset
from d4d.training.memory import checkpointed_layers, enable_activation_checkpointing
from d4d.training.motion import MotionEmbedding
from d4d.training.unets import svd_conv_in_channels

RESULTS = Path(__file__).with_name("results")
PRESETS = ("paper-text", "paper-image", "paper-static", "paper-image-svd", "paper-static-svd")
GPU_BYTES = 80e9
#: OpenCLIP's BPE vocabulary (the presets' character tokenizer would undercount the text encoder).
CLIP_VOCAB = 49408
GIB = 2**30


def meta_models(name: str, dtype: torch.dtype) -> tuple[Denoiser, int]:
    """(the preset's Denoiser on the meta device in ``dtype``, frozen encoder + VAE parameter count)."""
    config = preset(name)
    arch = arch_lib.get_architecture(config.architecture)
    with torch.device("meta"):
        unet_args = dict(arch.unet)
        if arch.backbone == "svd":
            unet_args["in_channels"] = svd_conv_in_channels(config.task)  # widen_conv_in's result
        unet = arch_lib.UNET_CLASSES[arch.unet_class](**unet_args)
        static_input = StaticOrbitInput.for_unet(unet, arch_lib.LATENT_CHANNELS) if (
            arch.backbone == "i2vgen-xl" and config.task == "static") else None
        motion = MotionEmbedding(unet.time_embedding.linear_2.out_features, arch.motion_hidden_dim)
        frozen = [arch_lib.build_vae(arch)]
        if arch.text_encoder is not None:
            frozen.append(CLIPTextModel(CLIPTextConfig(vocab_size=CLIP_VOCAB, **arch.text_encoder)))
        if arch.image_encoder is not None and config.task != "text":
            frozen.append(CLIPVisionModelWithProjection(CLIPVisionConfig(**arch.image_encoder)))
    # .to("meta") also moves what legacy constructors made on the CPU (SVD's torch.Tensor([alpha]) mix factors)
    model = Denoiser(unet, motion, config.task, static_input=static_input).to("meta", dtype).train()
    return model, sum(p.numel() for module in frozen for p in module.parameters())


def meta_inputs(model: Denoiser, name: str, clips: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    """UNet input [clips, T, 4, h, w], timesteps and Conditions of the preset's clip size, on meta."""
    config = preset(name)
    vae_factor = 2 ** (len(arch_lib.get_architecture(config.architecture).vae["block_out_channels"]) - 1)
    frames, side = config.num_frames, config.resolution // vae_factor
    cross = model.unet.config.cross_attention_dim
    with torch.device("meta"):
        cond = Conditions(motion=torch.full((clips,), 300.0))
        if model.adapter.uses_text:
            cond.text_embeddings = torch.empty(clips, arch_lib.get_architecture(config.architecture).tokenizer_max_length, cross,
                                               dtype=dtype)
        if config.task != "text":
            cond.image_embeddings = torch.empty(clips, 1, cross, dtype=dtype)
            cond.image_latents = torch.empty(clips, 4, side, side, dtype=dtype)
        if config.task == "static":
            cond.static_latents = torch.empty(clips, frames, 4, side, side, dtype=dtype)
        noisy = torch.empty(clips, frames, 4, side, side, dtype=dtype)
        timesteps = torch.full((clips,), 0.5) if model.adapter.name == "svd" else torch.full((clips,), 500, dtype=torch.long)
    return noisy, timesteps, cond


class FlashAttention(TorchFunctionMode):
    """Runs ``F.scaled_dot_product_attention`` (without a mask) as the flash-attention kernel, whose
    autograd node keeps q, k, v, the output and one log-sum-exp per query: on meta tensors torch
    otherwise takes its math path, which keeps the tokens x tokens attention matrix that a GPU's
    flash / memory-efficient kernels never store."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and len(args) == 3 and kwargs.get("attn_mask") is None:
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                *args, kwargs.get("dropout_p", 0.0), kwargs.get("is_causal", False), scale=kwargs.get("scale"))[0]
        return func(*args, **kwargs)


def saved_bytes(model: Denoiser, name: str, clips: int, dtype: torch.dtype, per_layer: bool = False) -> tuple[int, int]:
    """(bytes of distinct non-parameter tensors saved for backward by one forward, the largest
    single checkpointable layer's share of them; 0 unless ``per_layer``)."""
    params = {id(p) for p in model.parameters()}
    seen: dict[int, tuple[torch.Tensor, int]] = {}
    layer_bytes: dict[int, int] = {}
    current: list[int] = []

    def pack(tensor):
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in params and id(base) not in seen:
            seen[id(base)] = (base, base.numel() * base.element_size())  # kept alive: ids stay unique
            if current:
                layer_bytes[current[-1]] = layer_bytes.get(current[-1], 0) + seen[id(base)][1]
        return tensor

    def enter(index):
        return lambda module, args: current.append(index)

    def leave(module, args, output):
        current.pop()

    handles = []
    if per_layer:
        for index, layer in enumerate(checkpointed_layers(model.unet)):
            handles += [layer.register_forward_pre_hook(enter(index)), layer.register_forward_hook(leave)]
    noisy, timesteps, cond = meta_inputs(model, name, clips, dtype)
    with FlashAttention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(noisy, timesteps, cond)
    for handle in handles:
        handle.remove()
    return sum(size for _, size in seen.values()), max(layer_bytes.values(), default=0)


def measure(name: str) -> dict:
    """Training state and activations of preset ``name``; bytes."""
    row = {"preset": name}
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model, frozen = meta_models(name, dtype)
        trainable = sum(p.numel() for p in model.parameters())
        one, layer1 = saved_bytes(model, name, 1, dtype, per_layer=True)
        two, layer2 = saved_bytes(model, name, 2, dtype, per_layer=True)
        layers = enable_activation_checkpointing(model.unet)
        one_ckpt, _ = saved_bytes(model, name, 1, dtype)
        two_ckpt, _ = saved_bytes(model, name, 2, dtype)
        row.update({"backbone": model.adapter.name, "unet_class": type(model.unet).__name__, "trainable_params": trainable,
                    "frozen_params": frozen, "checkpointed_layers": layers})
        row[dtype_name] = {"per_clip": two - one, "per_step": 2 * one - two, "largest_layer_per_clip": layer2 - layer1,
                           "checkpointed_per_clip": two_ckpt - one_ckpt, "checkpointed_per_step": 2 * one_ckpt - two_ckpt}
    p = row["trainable_params"]
    row["state"] = {"weights_fp32": 4 * p, "grads_fp32": 4 * p, "adamw_fp32": 8 * p, "adamw_8bit": 2 * p, "ema_fp32": 4 * p,
                    "autocast_weight_copies_bf16": 2 * p, "frozen_bf16": 2 * row["frozen_params"]}
    return row


def clips_per_gpu(row: dict, optimizer: str, checkpointing: bool, precision: str) -> int:
    state = row["state"]
    fixed = (state["weights_fp32"] + state["grads_fp32"] + state[optimizer] + state["ema_fp32"]
             + state["autocast_weight_copies_bf16"] + state["frozen_bf16"])
    act = row[precision]
    if checkpointing:
        per_clip = act["checkpointed_per_clip"] + act["largest_layer_per_clip"]
        fixed += act["checkpointed_per_step"]
    else:
        per_clip, fixed = act["per_clip"], fixed + act["per_step"]
    return max(0, int((GPU_BYTES - fixed) // per_clip))


def table(rows: list[dict]) -> str:
    lines = ["| preset | UNet | trainable | state (AdamW / 8-bit) | activations per clip, bf16..fp32 | with checkpointing | "
             "clips per 80 GB: AdamW | + checkpointing | + 8-bit AdamW |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s, lo, hi = row["state"], row["bf16"], row["fp32"]
        adamw = sum(v for k, v in s.items() if k != "adamw_8bit")
        ckpt = lambda a: a["checkpointed_per_clip"] + a["largest_layer_per_clip"]  # noqa: E731
        counts = [f"{clips_per_gpu(row, opt, ck, 'fp32')}..{clips_per_gpu(row, opt, ck, 'bf16')}"
                  for opt, ck in (("adamw_fp32", False), ("adamw_fp32", True), ("adamw_8bit", True))]
        lines.append(f"| {row['preset']} | {row['unet_class']} | {row['trainable_params'] / 1e9:.2f} B | "
                     f"{adamw / GIB:.1f} / {(adamw - s['adamw_fp32'] + s['adamw_8bit']) / GIB:.1f} GiB | "
                     f"{lo['per_clip'] / GIB:.1f}..{hi['per_clip'] / GIB:.1f} GiB | {ckpt(lo) / GIB:.2f}..{ckpt(hi) / GIB:.2f} GiB | "
                     + " | ".join(counts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--out", type=Path, default=RESULTS / "train_memory.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for name in args.presets:
        rows.append(measure(name))
        rows[-1]["clips_per_80gb"] = {f"{opt}{'+checkpointing' if ck else ''}": {p: clips_per_gpu(rows[-1], opt, ck, p) for p in ("bf16", "fp32")}
                                      for opt, ck in (("adamw_fp32", False), ("adamw_fp32", True), ("adamw_8bit", False), ("adamw_8bit", True))}
        print(json.dumps({k: v for k, v in rows[-1].items() if k in ("preset", "clips_per_80gb")}), flush=True)
    summary = {"gpu_bytes": GPU_BYTES, "frames": preset("paper-image").num_frames, "resolution": preset("paper-image").resolution,
               "seconds": time.perf_counter() - start, "torch": torch.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
