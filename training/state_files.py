"""Object state as safetensors plus JSON: how a training checkpoint stores optimizer, LR
scheduler, EMA and per-process state without pickle.

``write_state(folder, name, state)`` writes ``name.safetensors`` (every tensor in ``state``) and
``name.json`` (the rest: None, bool, int, float, str, lists and str-keyed dicts as themselves;
a tensor as ``{"__tensor__": KEY}``, KEY its name in the safetensors file; a tuple as
``{"__tuple__": [...]}``; a dict with int keys, as an optimizer's ``state``, as
``{"__int_keys__": {"0": ...}}``). ``read_state`` rebuilds the value. Reading parses only JSON
and safetensors, so a planted or damaged file can fail to load (ValueError naming the file) but
never runs code: nothing d4d writes or reads in a checkpoint is a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

TENSOR, TUPLE, INT_KEYS = "__tensor__", "__tuple__", "__int_keys__"
#: JSON files larger than this are refused before parsing (the largest, an optimizer's
#: param_groups, holds one integer per parameter tensor).
MAX_JSON_BYTES = 64 << 20


def encode(value, tensors: dict[str, torch.Tensor], path: str):
    """``value`` as JSON-able data; its tensors (moved to CPU) are added to ``tensors`` under their path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {TENSOR: path}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
        return {TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {TENSOR, TUPLE, INT_KEYS} & set(value):
            return {k: encode(v, tensors, f"{path}.{k}") for k, v in value.items()}
        if all(isinstance(k, int) and not isinstance(k, bool) for k in value):
            return {INT_KEYS: {str(k): encode(v, tensors, f"{path}.{k}") for k, v in value.items()}}
    raise TypeError(f"{path}: a {type(value).__name__} cannot be stored as safetensors plus JSON")


def decode(value, tensors: dict[str, torch.Tensor]):
    """Inverse of ``encode``; ValueError for a tensor reference the safetensors file lacks."""
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and TENSOR in value:
        key = value[TENSOR]
        if not isinstance(key, str) or key not in tensors:
            raise ValueError(f"names tensor {key!r}, which its safetensors file lacks")
        return tensors[key]
    if len(value) == 1 and TUPLE in value and isinstance(value[TUPLE], list):
        return tuple(decode(v, tensors) for v in value[TUPLE])
    if len(value) == 1 and INT_KEYS in value and isinstance(value[INT_KEYS], dict):
        if not all(k.isdigit() for k in value[INT_KEYS]):
            raise ValueError("has a non-integer key under " + INT_KEYS)
        return {int(k): decode(v, tensors) for k, v in value[INT_KEYS].items()}
    return {k: decode(v, tensors) for k, v in value.items()}


def check_form(value, reference, where: str = "") -> None:
    """ValueError unless ``value`` has the form of ``reference`` (a live object's state_dict):
    the same dict keys, list lengths and leaf types (None matches anything), and tensors of the
    same shape and dtype. Keeps a state read from disk from setting what the object never had."""
    if isinstance(reference, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.shape != reference.shape or value.dtype != reference.dtype:
            raise ValueError(f"{where or 'value'}: expected a {reference.dtype} tensor of shape {tuple(reference.shape)}")
    elif isinstance(reference, dict):
        if not isinstance(value, dict) or set(value) != set(reference):
            raise ValueError(f"{where or 'value'}: expected the keys {sorted(map(str, reference))}")
        for key in reference:
            check_form(value[key], reference[key], f"{where}.{key}" if where else str(key))
    elif isinstance(reference, (list, tuple)):
        if type(value) is not type(reference) or len(value) != len(reference):
            raise ValueError(f"{where or 'value'}: expected a {type(reference).__name__} of {len(reference)} items")
        for i, (v, r) in enumerate(zip(value, reference)):
            check_form(v, r, f"{where}.{i}")
    elif reference is not None and value is not None and type(value) is not type(reference):
        raise ValueError(f"{where or 'value'}: expected a {type(reference).__name__}, got {type(value).__name__}")


def write_state(folder: Path, name: str, state) -> None:
    """Write ``folder/name.json`` and ``folder/name.safetensors`` (the folder is a checkpoint's
    staging folder, published whole, so these plain writes are never seen half-done)."""
    tensors: dict[str, torch.Tensor] = {}
    data = encode(state, tensors, name)
    storages: set[int] = set()
    for key, tensor in tensors.items():  # safetensors refuses shared memory (bitsandbytes' qmaps are one tensor)
        if tensor.untyped_storage().data_ptr() in storages:
            tensors[key] = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(data) + "\n")


def read_json(path: Path):
    """Parse a checkpoint JSON file, bounded in size; ValueError naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"{size} bytes, more than {MAX_JSON_BYTES}")
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def read_state(folder: Path, name: str):
    """The value ``write_state(folder, name, ...)`` stored, tensors on CPU; ValueError naming the
    file when either file is missing, damaged or not this format."""
    data = read_json(folder / f"{name}.json")
    path = folder / f"{name}.safetensors"
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    try:
        return decode(data, tensors)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{folder / name}.json: {exc}") from None
