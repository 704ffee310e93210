"""Resumable checkpoints of a run, and the exported model folder.

Layout of a run directory (``d4d-train --output RUN``)::

    RUN/train_config.json        the TrainConfig (a resumed run must match it, max_steps aside)
    RUN/checkpoints/step-000500/  a checkpoint (below)
    RUN/model/                    the exported Diffusion4DPipeline (EMA weights when EMA is on)
    RUN/validation/step-*.mp4     validation samples
    RUN/logs/                     TensorBoard

A checkpoint folder holds only safetensors and JSON (training.state_files); nothing in it is a
pickle, and resuming opens only these files, so a planted file can at worst be refused::

    checkpoint.json                     format, version, step, number of processes, accelerate's
                                        micro-batch counter
    model.safetensors                   the trained modules (UNet, motion embedding, static input)
    optimizer.{json,safetensors}        AdamW state (moments per parameter, param_groups)
    lr_scheduler.json (+ .safetensors)  the LR scheduler's counters
    ema.{json,safetensors}              EMA shadow weights and counters (when EMA is on)
    grad_scaler.{json,safetensors}      the fp16 loss scaler (fp16 runs only)
    process-N.{json,safetensors}        process N's TrainState (counters, its own generator) and
                                        random states (Python, NumPy, torch CPU and CUDA)

Every process writes its own ``process-N`` files and reads back its own, so each process draws
on from its own generator; a checkpoint resumes only with the number of processes that wrote it.
A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves
a half-written ``step-*`` folder; the oldest are deleted beyond ``checkpoints_total_limit``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from .state_files import check_form, read_json, read_state, write_state

CHECKPOINT_PREFIX = "step-"
FORMAT, VERSION = "d4d-train-checkpoint", 1
META, MODEL = "checkpoint.json", "model.safetensors"


class TrainState:
    """Counters and random state that make a resumed run repeat an uninterrupted one.

    Attributes:
        step: optimizer steps done.
        epoch: current epoch of the data order.
        batch_in_epoch: micro-batches of ``epoch`` consumed on each process.
        generator: the torch.Generator drawing timesteps, noise and dropout on this process.
        motion_sum, motion_count: running sum / count of the training clips' motion magnitudes
            (their mean becomes the exported model's default motion magnitude).
    """

    def __init__(self, generator: torch.Generator):
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.generator = generator
        self.motion_sum = 0.0
        self.motion_count = 0

    @property
    def mean_motion(self) -> float:
        return self.motion_sum / self.motion_count if self.motion_count else 0.0

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "generator": self.generator.get_state(), "motion_sum": self.motion_sum,
                "motion_count": self.motion_count}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict``'s output; ValueError for a missing or out-of-range value."""
        counts = [state.get(k) for k in ("step", "epoch", "batch_in_epoch", "motion_count")]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"train state counters {counts}: expected integers >= 0")
        motion_sum, generator = state.get("motion_sum"), state.get("generator")
        if not isinstance(motion_sum, (int, float)) or not math.isfinite(motion_sum) or motion_sum < 0:
            raise ValueError(f"train state motion_sum {motion_sum!r}: expected a finite number >= 0")
        if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8:
            raise ValueError("train state generator: expected a uint8 tensor")
        self.generator.set_state(generator.cpu())
        self.step, self.epoch, self.batch_in_epoch, self.motion_count = counts
        self.motion_sum = float(motion_sum)


def random_states() -> dict:
    """This process's global random states: Python, NumPy, torch CPU and (when present) CUDA."""
    numpy = np.random.get_state(legacy=False)
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": {**numpy, "state": {"key": numpy["state"]["key"].tolist(), "pos": numpy["state"]["pos"]}},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_random_states(states: dict) -> None:
    """Restore ``random_states``'s output (TypeError/ValueError/RuntimeError for a malformed one)."""
    numpy = states["numpy"]
    np.random.set_state({**numpy, "state": {"key": np.asarray(numpy["state"]["key"], dtype=np.uint32),
                                            "pos": numpy["state"]["pos"]}})
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(folder: Path, accelerator, model, optimizer, lr_scheduler, ema, state: TrainState) -> None:
    """Write this process's part of a checkpoint into ``folder`` (the module docstring's layout).

    Every process calls it with the same (staging) folder: each writes its ``process-N`` files,
    process 0 the shared parts. ``model`` is the prepared model, ``ema`` an EMAModel or None.
    """
    folder = Path(folder)
    write_state(folder, f"process-{accelerator.process_index}", {"train": state.state_dict(), "random": random_states()})
    if not accelerator.is_main_process:
        return
    save_model(accelerator.unwrap_model(model), str(folder / MODEL))
    write_state(folder, "optimizer", optimizer.state_dict())
    write_state(folder, "lr_scheduler", lr_scheduler.state_dict())
    if ema is not None:
        write_state(folder, "ema", ema.state_dict())
    if accelerator.scaler is not None:
        write_state(folder, "grad_scaler", accelerator.scaler.state_dict())
    meta = {"format": FORMAT, "version": VERSION, "step": state.step, "num_processes": accelerator.num_processes,
            "accelerator_step": accelerator.step, "ema": ema is not None, "grad_scaler": accelerator.scaler is not None}
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder: Path) -> dict:
    """checkpoint.json of ``folder``; ValueError unless it is a checkpoint of this format."""
    path = folder / META
    if not path.is_file():
        raise ValueError(f"{folder}: no {META}, so not a d4d checkpoint of this version (earlier versions "
                         "stored pickles, which d4d never loads); start a new run")
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} of version {VERSION}")
    for key in ("step", "num_processes", "accelerator_step"):
        if not isinstance(meta.get(key), int) or meta[key] < 0:
            raise ValueError(f"{path}: {key} {meta.get(key)!r} is not an integer >= 0")
    return meta


def _restore(folder: Path, name: str, load, reference=None) -> None:
    """Read ``name``'s state files, check them against ``reference`` (the live object's
    state_dict, when given) and hand the value to ``load``; ValueError naming the file."""
    value = read_state(folder, name)
    try:
        if reference is not None:
            check_form(value, reference)
        load(value)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{folder / name}.json: does not fit this run ({exc})") from None


def check_optimizer_state(value, optimizer) -> None:
    """ValueError unless ``value`` (an optimizer state_dict read back) has this optimizer's
    param_groups, per-parameter entries of tensors and numbers only, and AdamW's moments
    (``exp_avg``, ``exp_avg_sq``) of their parameter's shape (8-bit AdamW's quantized
    ``state1``/``state2`` and block scales have shapes of their own)."""
    if not isinstance(value, dict) or set(value) != {"state", "param_groups"}:
        raise ValueError("expected the keys 'state' and 'param_groups'")
    check_form(value["param_groups"], optimizer.state_dict()["param_groups"], "param_groups")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = value["state"]
    if not isinstance(state, dict) or not all(isinstance(i, int) and 0 <= i < len(params) for i in state):
        raise ValueError("state does not index this run's parameters")
    for i, moments in state.items():
        if not isinstance(moments, dict):
            raise ValueError(f"state of parameter {i}: expected a dict")
        for key, t in moments.items():
            if not isinstance(t, (torch.Tensor, int, float)) or isinstance(t, bool):
                raise ValueError(f"state of parameter {i}: {key} is a {type(t).__name__}, not a tensor or number")
            if key in ("exp_avg", "exp_avg_sq") and getattr(t, "shape", None) != params[i].shape:
                raise ValueError(f"state of parameter {i}: {key} does not match its shape {tuple(params[i].shape)}")


def load_checkpoint(folder: Path, accelerator, model, optimizer, lr_scheduler, ema, state: TrainState) -> None:
    """Restore a checkpoint written by ``save_checkpoint`` into the live objects of this process.

    Reads only the files the module docstring lists (any other file in ``folder`` is ignored),
    never a pickle. ValueError (one line naming the file) for a checkpoint of another format,
    number of processes or model, or a damaged file.
    """
    folder = Path(folder)
    meta = read_meta(folder)
    if meta["num_processes"] != accelerator.num_processes:
        raise ValueError(f"{folder}: written by {meta['num_processes']} process(es); resume it with that many, "
                         f"not {accelerator.num_processes}")
    if meta.get("ema") is not (ema is not None) or meta.get("grad_scaler") is not (accelerator.scaler is not None):
        raise ValueError(f"{folder}: EMA / fp16 loss scaling differ from this run's")
    try:
        load_model(accelerator.unwrap_model(model), str(folder / MODEL), strict=True, device="cpu")
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise ValueError(f"{folder / MODEL}: unreadable or not this run's model ({str(exc).splitlines()[0]})") from None

    def load_optimizer(value):
        check_optimizer_state(value, optimizer)
        optimizer.load_state_dict(value)

    _restore(folder, "optimizer", load_optimizer)
    _restore(folder, "lr_scheduler", lr_scheduler.load_state_dict, lr_scheduler.state_dict())
    if ema is not None:
        _restore(folder, "ema", ema.load_state_dict, ema.state_dict())
        ema.to(accelerator.device)
    if accelerator.scaler is not None:
        _restore(folder, "grad_scaler", accelerator.scaler.load_state_dict, accelerator.scaler.state_dict())

    def load_process(value):
        state.load_state_dict(value["train"])
        set_random_states(value["random"])

    _restore(folder, f"process-{accelerator.process_index}", load_process,
             {"train": state.state_dict(), "random": random_states()})
    accelerator.step = meta["accelerator_step"]


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:06d}"


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of ``run``, oldest first."""
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
             and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def resolve_resume(run: Path, resume: str) -> Path:
    """``resume`` "latest" -> the newest checkpoint of ``run``; otherwise a checkpoint folder path."""
    if resume == "latest":
        found = list_checkpoints(run)
        if not found:
            raise ValueError(f"--resume latest: {run / 'checkpoints'} holds no checkpoint")
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise ValueError(f"--resume {resume}: not a checkpoint folder")
    return path


def prune_checkpoints(run: Path, keep: int) -> list[Path]:
    """Delete the oldest checkpoints beyond ``keep`` (0 keeps all); returns the deleted paths."""
    found = list_checkpoints(run)
    doomed = found[:-keep] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed
