"""d4d-train: fine-tune a video diffusion UNet into a 4D-aware one (the paper's Sec. 3), on accelerate.

    d4d-train --shards DIR --output STATIC --config paper-image --pretrained I2VGEN_XL_DIR --target static
    d4d-train --shards DIR --output RUN --config paper-image --pretrained STATIC/model
    accelerate launch -m d4d.training.train --shards DIR --output RUN --config paper-text --pretrained MODELSCOPE_DIR
    d4d-train --shards DIR --output RUN --resume latest          # continue a run exactly

The loop, per micro-batch: latents of the dynamic and static orbits (cached or encoded), the
conditions (text and/or image, optionally the static orbit; motion magnitude), condition
dropout, noise as the backbone's scheduler draws it, the denoiser's prediction, L = L_ldm +
w * L_mr, an optimizer step every ``gradient_accumulation_steps`` micro-batches, then EMA, logs,
checkpoints, validation. ``--target static`` trains the base model of static orbits (the
guidance's reference ebar) instead; a dynamic run from ``--pretrained`` records its reference
in the exported model (training.reference).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from d4d.files import publish_dir, staging_dir
from d4d.progress import bar
from d4d.rendering.orbits import OrbitLayout
from d4d.shards.layout import shard_orbit_layout, shards_have_second_orbit
from d4d.video import write_mp4

from .backbone import Denoiser
from .checkpoints import TrainState, checkpoint_dir, list_checkpoints, load_checkpoint, prune_checkpoints, resolve_resume, save_checkpoint
from .cli import main  # noqa: F401 - d4d-train, and accelerate launch -m d4d.training.train
from .components import Components, build_components, load_components
from .config import TrainConfig
from .data import ShardBatches, collate
from .latent_cache import cache_latents as write_latent_cache
from .memory import check_distribution, enable_activation_checkpointing, make_optimizer, use_sdpa_attention
from .objective import batch_inputs, compute_losses, drop_conditions, empty_prompt_embedding, micro_conditions, null_conditions
from .outputs import to_uint8
from .pipeline import Diffusion4DPipeline
from .reference import starting_reference
from .schedules import training_schedule

logger = logging.getLogger("d4d.train")


def check_run_config(run: Path, config: TrainConfig) -> None:
    """Write RUN/train_config.json, or check a resumed run's matches (max_steps may grow). A run
    that saved no checkpoint and no model (a start that failed) takes the new settings."""
    path = run / "train_config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        differ = sorted(k for k, v in config.to_dict().items() if k != "max_steps" and saved.get(k) != v)
        if differ and (list_checkpoints(run) or (run / "model").exists()):
            raise ValueError(f"{path}: this run was started with other settings for {differ} and has trained; "
                             "use a new --output, or the same settings to resume")
        if differ:
            logger.info("%s: its earlier start saved no checkpoint; starting again with the new settings for %s", run, differ)
    run.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    tmp.replace(path)


def export_pipeline(parts: Components, config: TrainConfig, out: Path, default_motion: float,
                    reference: tuple[str | None, str | None] = (None, None), layout: OrbitLayout | None = None) -> Path:
    """Save the model as a Diffusion4DPipeline folder at ``out`` (atomically)."""
    pipe = make_pipeline(parts, config, default_motion, reference, layout)
    staged = staging_dir(out)
    pipe.save_pretrained(staged, safe_serialization=True)
    return publish_dir(staged, out)


def make_pipeline(parts: Components, config: TrainConfig, default_motion: float,
                  reference: tuple[str | None, str | None] = (None, None), layout: OrbitLayout | None = None) -> Diffusion4DPipeline:
    """The model as a pipeline; ``layout`` is the orbit its training clips were rendered on
    (default: d4d's default orbit of ``config.num_frames`` views)."""
    micro = micro_conditions(config, parts.adapter)
    return Diffusion4DPipeline(unet=parts.unet, vae=parts.vae, scheduler=parts.scheduler,
                               motion_embedding=parts.motion_embedding, static_input=parts.static_input,
                               tokenizer=parts.tokenizer, text_encoder=parts.text_encoder, image_encoder=parts.image_encoder,
                               task=config.task, target=config.target, num_frames=config.num_frames,
                               resolution=config.resolution, caption_prefix=config.caption_prefix,
                               background=config.background, default_motion_magnitude=default_motion, fps=micro.fps,
                               motion_bucket_id=micro.motion_bucket_id, noise_aug_strength=micro.noise_aug_strength,
                               static_reference=reference[0], static_reference_kind=reference[1],
                               orbit_layout=(layout or OrbitLayout(frames=config.num_frames)).to_dict())


def validation_video(parts: Components, config: TrainConfig, sample: dict, motion: float, seed: int) -> torch.Tensor:
    """Sample one video with the conditions of ``sample``: float [T, 3, H, W] in [0, 1].

    Guidance w1 only (w2 = 0): the static reference is not loaded during training.
    """
    batch = collate([sample], config.num_frames, config.resolution)
    pipe = make_pipeline(parts, config, motion)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt=batch.captions[0] if parts.adapter.uses_text else None,
               image=None if config.task == "text" else batch.dynamic_video[:, 0],
               static_video=batch.static_video if config.task == "static" else None,
               motion_magnitude=float(batch.motion[0]), num_inference_steps=config.validation_inference_steps, w2=0.0,
               generator=torch.Generator().manual_seed(seed))
    return out.frames[0]


def make_components(config: TrainConfig, pretrained: Path | None = None) -> Components:
    """The run's models: ``pretrained`` loaded (static channels and motion embedding added as
    needed) or, without it, ``config.architecture`` built from the seed."""
    if pretrained is not None:
        return load_components(pretrained, config.task, config.prediction_type, config.target)
    return build_components(config.task, config.architecture, config.seed, config.prediction_type, config.target, config.noise_shift)


def train(config: TrainConfig, source, output: Path, parts: Components | None = None, resume: str | None = None,
          accelerator: Accelerator | None = None, reference: tuple[str | None, str | None] = (None, None),
          layout: OrbitLayout | None = None) -> Path:
    """Run (or resume) training; returns the exported model folder ``output/model``.

    Args:
        config: hyperparameters.
        source: micro-batch source (data.EpochBatches over a map-style dataset, or data.ShardBatches),
            already split for this process.
        output: the run directory.
        parts: the models (make_components); None builds ``config.architecture`` with its random
            VAE, for tests of the loop alone: d4d-train (``train_on_shards``) fits the VAE first.
        resume: "latest" or a checkpoint folder.
        accelerator: an existing Accelerator (default: a new one from the config).
        reference: (folder, kind) of the static reference recorded in the exported model
            (training.reference.starting_reference); ignored for a static model.
        layout: the orbit the training clips were rendered on, recorded in the exported model so
            d4d-sample writes its frames on those cameras (shards.layout.shard_orbit_layout).
    """
    output = Path(output)
    accelerator = accelerator or make_accelerator(config, output)
    check_distribution(accelerator.distributed_type)
    if accelerator.is_main_process:
        check_run_config(output, config)
    device = accelerator.device
    parts = parts or make_components(config)
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]
    for frozen in (parts.vae, parts.text_encoder, parts.image_encoder):
        if frozen is not None:
            frozen.requires_grad_(False).eval().to(device)
            if weight_dtype != torch.float32:
                frozen.to(weight_dtype)
    use_sdpa_attention(parts.unet)
    if config.gradient_checkpointing:
        layers = enable_activation_checkpointing(parts.unet)
        logger.info("gradient checkpointing: %d layers of %s recomputed in the backward pass", layers, type(parts.unet).__name__)
    denoiser = Denoiser(parts.unet, parts.motion_embedding, config.task, micro_conditions(config, parts.adapter),
                        parts.static_input).to(device)
    schedule = training_schedule(parts.scheduler, config.edm_p_mean, config.edm_p_std)
    denoiser.train()
    optimizer = make_optimizer(config.optimizer, denoiser.parameters(), lr=config.learning_rate,
                               betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.adam_weight_decay,
                               eps=config.adam_epsilon)
    lr_scheduler = get_scheduler(config.lr_schedule, optimizer,
                                 num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=config.max_steps * accelerator.num_processes)
    denoiser, optimizer, lr_scheduler = accelerator.prepare(denoiser, optimizer, lr_scheduler)
    trainable = list(accelerator.unwrap_model(denoiser).parameters())
    ema = EMAModel(trainable, decay=config.ema_decay) if config.use_ema else None
    if ema is not None:
        ema.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed * 1000 + accelerator.process_index)
    state = TrainState(generator)
    if resume is not None:
        path = resolve_resume(output, resume)
        load_checkpoint(path, accelerator, denoiser, optimizer, lr_scheduler, ema, state)
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", path, state.step, state.epoch, state.batch_in_epoch)
    text_null = empty_prompt_embedding(parts, device)
    accelerator.init_trackers("d4d", config={k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))})

    def checkpoint() -> None:
        final = checkpoint_dir(output, state.step)
        staged = staging_dir(final) if accelerator.is_main_process else None
        staged_list = [staged]
        if accelerator.num_processes > 1:
            torch.distributed.broadcast_object_list(staged_list, src=0)
        save_checkpoint(staged_list[0], accelerator, denoiser, optimizer, lr_scheduler, ema, state)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            publish_dir(staged_list[0], final)
            prune_checkpoints(output, config.checkpoints_total_limit)
            logger.info("step %d: checkpoint %s", state.step, final)

    def with_ema_weights(fn):
        if ema is None:
            return fn()
        ema.store(trainable)
        ema.copy_to(trainable)
        try:
            return fn()
        finally:
            ema.restore(trainable)

    def validate() -> None:
        # On a copy of the global random state and its own reader of the data (source.first_sample),
        # so a validation changes nothing training draws next: a resumed run repeats an uninterrupted one.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            frames = with_ema_weights(lambda: validation_video(parts, config, source.first_sample(), state.mean_motion, config.seed))
        video = to_uint8(frames.numpy())
        path = write_mp4(video, output / "validation" / f"step-{state.step:06d}.mp4")
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_images("validation", video, state.step, dataformats="NHWC")
        logger.info("step %d: validation video %s", state.step, path)

    batches_per_epoch = len(source)
    logger.info("training %s (%s target, %s backbone, %s schedule): %d steps, %d micro-batches per epoch per process, "
                "%d process(es), effective batch %d", config.task, config.target, parts.adapter.name, schedule.kind, config.max_steps, batches_per_epoch, accelerator.num_processes,
                config.train_batch_size * config.gradient_accumulation_steps * accelerator.num_processes)
    tick = time.perf_counter()
    progress = bar(config.max_steps, f"training ({config.target})", initial=state.step, disable=not accelerator.is_main_process)
    while state.step < config.max_steps:
        for samples in source.batches(state.epoch, state.batch_in_epoch):
            state.batch_in_epoch += 1
            batch = collate(samples, config.num_frames, config.resolution)
            state.motion_sum += float(batch.motion.sum())
            state.motion_count += len(batch.uids)
            with accelerator.accumulate(denoiser):
                z0, zbar, cond = batch_inputs(batch, parts, config, device, generator)
                cond = drop_conditions(cond, null_conditions(cond, text_null, parts.adapter), config, generator)
                losses = compute_losses(denoiser, schedule, z0, zbar, cond, config, generator)
                if not torch.isfinite(losses.total):
                    raise FloatingPointError(f"step {state.step}: loss is {losses.total.item()} (batch {batch.uids})")
                accelerator.backward(losses.total)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(denoiser.parameters(), config.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            progress.update(1)
            if ema is not None:
                ema.step(trainable)
            if state.step % config.log_every == 0 or state.step == config.max_steps:
                elapsed = (time.perf_counter() - tick) / config.log_every
                tick = time.perf_counter()
                values = {"loss": losses.total.item(), "loss_ldm": losses.ldm.item(), "loss_mr": losses.mr.item(),
                          "lr": lr_scheduler.get_last_lr()[0], "seconds_per_step": elapsed}
                accelerator.log(values, step=state.step)
                progress.set_postfix_str(f"loss {values['loss']:.4f}", refresh=False)
                logger.info("step %d/%d loss %.5f (ldm %.5f, mr %.5f) lr %.2e %.2fs/step", state.step, config.max_steps,
                            values["loss"], values["loss_ldm"], values["loss_mr"], values["lr"], elapsed)
            if state.step % config.checkpointing_steps == 0 or state.step == config.max_steps:
                checkpoint()
            if config.validation_steps and state.step % config.validation_steps == 0 and accelerator.is_main_process:
                validate()
            if state.step >= config.max_steps:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    progress.close()
    accelerator.wait_for_everyone()
    model_dir = output / "model"
    if accelerator.is_main_process:
        if config.target == "static":
            reference = (None, None)
        elif reference[0] is None:
            logger.warning("no static reference recorded (trained without --pretrained): d4d-sample will need "
                           "--static-model, or --static-reference zero-motion, for w2 != 0")
        with_ema_weights(lambda: export_pipeline(parts, config, model_dir, state.mean_motion, reference, layout))
        logger.info("exported %s", model_dir)
    accelerator.end_training()
    return model_dir


def make_accelerator(config: TrainConfig, output: Path) -> Accelerator:
    """The run's Accelerator. Without a GPU (or other accelerator) it is told so (cpu=True):
    otherwise accelerate ignores torchrun's process group on CPU and every process trains alone."""
    project = ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs"))
    return Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation_steps,
                       log_with="tensorboard", project_config=project, cpu=not torch.accelerator.is_available())


def shard_source(shard_dir: Path, config: TrainConfig, parts: Components, accelerator: Accelerator) -> ShardBatches:
    """ShardBatches for this process, reading cached latent columns when they match this run."""
    from .latent_cache import producers, usable_cached_columns

    cached = usable_cached_columns(shard_dir, producers(parts, config))
    second_orbit = config.second_orbit if shards_have_second_orbit(shard_dir) else 0.0
    if second_orbit > 0 and cached:
        logger.warning("%s: second-orbit augmentation (second_orbit %s) reads pixels; the cached latents %s are not used",
                       shard_dir, second_orbit, cached)
        cached = []
    videos = [name for name, column in (("dynamic", "latents_dynamic"), ("static", "latents_static")) if column not in cached]
    if config.task != "text" and "dynamic" not in videos:
        videos.insert(0, "dynamic")  # the image condition's CLIP embedding needs the first frame's pixels
    logger.info("%s: cached columns used: %s; videos decoded: %s", shard_dir, cached or "none", videos or "none")
    return ShardBatches(shard_dir, videos=videos, tensors=cached, batch_size=config.train_batch_size, seed=config.seed,
                        background=config.background, second_orbit=second_orbit, rank=accelerator.process_index,
                        world_size=accelerator.num_processes, num_workers=config.dataloader_num_workers)


def run_autoencoder(config: TrainConfig, shards: Path, output: Path, parts: Components, accelerator: Accelerator,
                    vae: Path | None = None) -> None:
    """Give a from-scratch model (``parts`` built from ``config.architecture``) a VAE that can decode
    what the UNet will learn: the folder ``vae`` (an AutoencoderKL in diffusers layout) when given,
    else the autoencoder stage fitted on the shards' frames in ``output/autoencoder`` (by the main
    process; the others load its result). Replaces ``parts.vae``."""
    from diffusers import AutoencoderKL

    from .autoencoder import fit_autoencoder

    if vae is not None:
        folder = Path(vae) / "vae" if (Path(vae) / "vae" / "config.json").exists() else Path(vae)
        if not (folder / "config.json").exists():
            raise ValueError(f"--vae {vae}: no AutoencoderKL there (expected config.json and weights, or a model folder with vae/)")
        parts.vae = AutoencoderKL.from_pretrained(folder)
        logger.info("VAE: %s (given; the autoencoder stage is skipped)", folder)
        return
    stage = output / "autoencoder"
    if accelerator.is_main_process:
        fit_autoencoder(parts.vae, shards, stage, config.autoencoder, config.resolution, config.background)
    accelerator.wait_for_everyone()
    parts.vae = AutoencoderKL.from_pretrained(stage / "vae")


def train_on_shards(config: TrainConfig, shards: Path, output: Path, pretrained: Path | None = None, resume: str | None = None,
                    cache_latents: bool = False, vae: Path | None = None) -> Path:
    """d4d-train as a function: train (or resume) a run in ``output`` on the shards; returns the
    exported model folder. A model without ``pretrained`` weights first gets a fitted VAE
    (``run_autoencoder``: the ``vae`` folder, or the autoencoder stage). The run records its
    static reference (when fine-tuned from one) and the orbit layout of the shards. ValueError
    for bad settings or data."""
    if pretrained is not None and vae is not None:
        raise ValueError("--vae: a --pretrained folder brings its own VAE; give one or the other")
    layout = shard_orbit_layout(shards)
    accelerator = make_accelerator(config, output)
    parts = make_components(config, pretrained)
    if pretrained is None:
        if accelerator.is_main_process:
            check_run_config(output, config)
        run_autoencoder(config, shards, output, parts, accelerator, vae)
    if cache_latents:
        if accelerator.is_main_process:
            write_latent_cache(shards, parts, config, accelerator.device)
        accelerator.wait_for_everyone()
    source = shard_source(shards, config, parts, accelerator)
    reference = starting_reference(pretrained) if config.target == "dynamic" else (None, None)
    if reference[0] is not None:
        logger.info("static reference of this run: %s (%s)", reference[0], reference[1])
    return train(config, source, output, parts, resume, accelerator, reference, layout)


if __name__ == "__main__":
    raise SystemExit(main())
