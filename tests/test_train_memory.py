"""Paper-scale memory options at tiny size: activation checkpointing on every backbone, SDPA attention, the optimisers."""

from __future__ import annotations

import sys

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedType
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from d4d.testing.train_fixtures import make_clips, single_thread
from d4d.training.backbone import Conditions, Denoiser
from d4d.training.components import build_components
from d4d.training.config import preset
from d4d.training.data import EpochBatches
from d4d.training.memory import (
    check_distribution,
    checkpointed_layers,
    disable_activation_checkpointing,
    enable_activation_checkpointing,
    make_optimizer,
    use_sdpa_attention,
)
from d4d.training.train import make_components, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


ARCHITECTURES = [("text", "tiny-modelscope"), ("image", "tiny-svd"), ("static", "tiny-i2vgen-xl")]


def saved_activation_bytes(fn, parameters) -> tuple[torch.Tensor, int]:
    """(fn(), bytes of the distinct non-parameter tensors autograd saved for the backward pass)."""
    params = {p.untyped_storage().data_ptr() for p in parameters}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return out, sum(storages.values())


def training_pass(model: Denoiser, task: str, svd: bool) -> tuple[float, list[torch.Tensor], int]:
    """Loss, gradients and saved activation bytes of one forward/backward in train mode (dropout on)."""
    g = torch.Generator().manual_seed(0)
    cond = Conditions(motion=torch.tensor([300.0, 40.0]), text_embeddings=torch.randn(2, 32, 32, generator=g))
    if task != "text":
        cond.image_embeddings, cond.image_latents = torch.randn(2, 1, 32, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    if task == "static":
        cond.static_latents = torch.randn(2, 4, 4, 8, 8, generator=g)
    noisy = torch.randn(2, 4, 4, 8, 8, generator=g, requires_grad=True)
    timesteps = torch.tensor([0.3, 1.5]) if svd else torch.tensor([10, 700])
    model.zero_grad()
    torch.manual_seed(1)  # dropout masks
    out, saved = saved_activation_bytes(lambda: model(noisy, timesteps, cond), model.parameters())
    loss = out.pow(2).mean()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()] + [noisy.grad.clone()], saved


@pytest.mark.parametrize(("task", "architecture"), ARCHITECTURES)
def test_checkpointing_keeps_the_gradients_and_saves_a_fraction_of_the_activations(task, architecture):
    """ModelScope's UNet3D, SVD and I2VGen-XL: identical loss and gradients (dropout included, its
    masks replayed) with every block layer recomputed, and under a third of the activations kept."""
    parts = build_components(task, architecture, seed=0)
    with torch.no_grad():
        parts.motion_embedding.linear_2.weight.normal_()
        if parts.static_input is not None:
            parts.static_input.conv.weight.normal_()
    model = Denoiser(parts.unet, parts.motion_embedding, task, static_input=parts.static_input).train()
    state = {k: v.clone() for k, v in parts.unet.state_dict().items()}
    svd = architecture == "tiny-svd"
    loss, grads, saved = training_pass(model, task, svd)
    layers = enable_activation_checkpointing(parts.unet)
    assert layers == len(checkpointed_layers(parts.unet)) >= 12
    assert enable_activation_checkpointing(parts.unet) == layers  # idempotent: no layer wrapped twice
    loss_ckpt, grads_ckpt, saved_ckpt = training_pass(model, task, svd)
    assert loss_ckpt == loss
    for a, b in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    assert saved_ckpt < saved / 3, (saved_ckpt, saved)
    assert parts.unet.state_dict().keys() == state.keys()  # saved and loaded as the stock UNet
    disable_activation_checkpointing(parts.unet)
    assert training_pass(model, task, svd)[2] == saved


def test_checkpointing_refuses_a_model_without_unet_blocks():
    with pytest.raises(ValueError, match="no diffusers UNet blocks"):
        enable_activation_checkpointing(torch.nn.Linear(2, 2))


def test_every_attention_layer_runs_torch_sdpa():
    unet = build_components("image", "tiny-i2vgen-xl").unet
    unet.set_attn_processor(AttnProcessor())
    use_sdpa_attention(unet)
    processors = unet.attn_processors
    assert len(processors) > 10 and all(isinstance(p, AttnProcessor2_0) for p in processors.values())


def run_tiny(run, **overrides):
    config = preset("tiny-image", max_steps=2, checkpointing_steps=2, use_ema=False, learning_rate=1e-2, **overrides)
    train(config, EpochBatches(make_clips(2), 1, seed=0), run, make_components(config))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    from diffusers import I2VGenXLUNet

    return I2VGenXLUNet.from_pretrained(run / "model" / "unet")


def test_d4d_train_with_gradient_checkpointing_learns_the_same_weights(tmp_path):
    """The production loop on I2VGen-XL (dropout in its temporal layers): two steps with
    --gradient-checkpointing end at the weights of two steps without."""
    plain, checkpointed = run_tiny(tmp_path / "plain"), run_tiny(tmp_path / "ckpt", gradient_checkpointing=True)
    for (name, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_8bit_optimizer_without_bitsandbytes_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what an environment without it imports
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError, match="--optimizer adamw-8bit needs bitsandbytes.*or use --optimizer adamw"):
        make_optimizer("adamw-8bit", params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    with pytest.raises(ValueError, match="expected one of"):
        make_optimizer("sgd", params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    with pytest.raises(ValueError, match="optimizer"):
        preset("tiny-image", optimizer="adam-4bit")


def test_8bit_optimizer_trains_with_8_bit_moments(tmp_path):
    """With bitsandbytes installed: d4d-train runs with --optimizer adamw-8bit, and the moments of
    the large tensors are stored as uint8 (bitsandbytes keeps tensors under 4096 elements in 32 bits)."""
    bnb = pytest.importorskip("bitsandbytes")
    weight = torch.nn.Parameter(torch.randn(64, 128))
    optimizer = make_optimizer("adamw-8bit", [weight], lr=1e-2, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    assert isinstance(optimizer, bnb.optim.AdamW8bit)
    before = weight.detach().clone()
    weight.grad = torch.randn(64, 128)
    optimizer.step()
    assert optimizer.state[weight]["state1"].dtype == torch.uint8 and not torch.equal(weight, before)
    unet = run_tiny(tmp_path / "run", optimizer="adamw-8bit")
    assert all(torch.isfinite(p).all() for p in unet.parameters())


def test_sharded_launches_are_refused_in_one_line():
    """FSDP / DeepSpeed would hand the EMA, export and checkpoints one process's shard: refused."""
    for sharded in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(ValueError, match="does not shard parameters.*--gradient-checkpointing") as error:
            check_distribution(sharded)
        assert "\n" not in str(error.value)
    for data_parallel in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_distribution(data_parallel)


def load_benchmark():
    """benchmarks/train_memory.py as a module (benchmarks/ is not an installed package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("train_memory", Path(__file__).parents[1] / "benchmarks" / "train_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config", ["tiny-text", "tiny-image", "tiny-static-svd"])
def test_the_memory_benchmark_counts_on_meta_what_a_real_forward_keeps(config):
    """benchmarks/train_memory.py counts the activations of a paper-size step on the meta device;
    at tiny size its count equals the bytes a real CPU forward keeps for the backward pass."""
    bench = load_benchmark()
    meta_model, _ = bench.meta_models(config, torch.float32)
    counted, _ = bench.saved_bytes(meta_model, config, 2, torch.float32)
    task = preset(config).task
    parts = build_components(task, preset(config).architecture, seed=0)
    model = Denoiser(parts.unet, parts.motion_embedding, task, static_input=parts.static_input).train()
    noisy, timesteps, cond = bench.meta_inputs(meta_model, config, 2, torch.float32)
    g = torch.Generator().manual_seed(0)
    real = Conditions(motion=torch.full((2,), 300.0), **{name: torch.randn(getattr(cond, name).shape, generator=g)
                                                           for name in ("text_embeddings", "image_embeddings", "image_latents",
                                                                        "static_latents") if getattr(cond, name) is not None})
    timesteps = torch.full((2,), 0.5) if timesteps.is_floating_point() else torch.full((2,), 500)
    _, kept = saved_activation_bytes(lambda: model(torch.randn(noisy.shape, generator=g), timesteps, real), model.parameters())
    assert counted == kept > 0
