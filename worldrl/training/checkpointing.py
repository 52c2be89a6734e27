"""Resumable trainer checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory ``checkpoints/step_XXXXXXX/`` holding

* ``model/`` (``save_pretrained``: config.json, task.json, model.safetensors) with the *raw* training weights,
* ``trainer_state.safetensors``: every tensor of the optimizer, scheduler, EMA, scaler, combiner and RNG states,
* ``trainer_state.json``: the structure of those states with tensors replaced by references, plus the step,
  the data position and the early-stopping bookkeeping.

Optimizer state dicts are nested dicts with integer keys, tuples and tensors, which neither JSON nor
safetensors holds on its own; :func:`encode_tree` flattens any such tree into the two, and
:func:`decode_tree` rebuilds it exactly. The directory is written under a temporary name and renamed,
so a crash leaves the previous checkpoints untouched.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from worldrl.errors import CheckpointError
from worldrl.io import atomic_directory, read_json, write_json

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
MODEL_DIR = "model"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TENSOR, _ARRAY, _TUPLE, _INT_KEYS, _FLOAT = "__tensor__", "__ndarray__", "__tuple__", "__int_keys__", "__float__"


# --------------------------------------------------------------------------- tree <-> (json, tensors)
def encode_tree(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """JSON-safe copy of ``obj``; tensors/arrays are moved into ``tensors`` under their tree path."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().clone().contiguous()
        return {_TENSOR: path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {_ARRAY: path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode_tree(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        if all(isinstance(k, int) for k in obj):
            return {_INT_KEYS: {str(k): encode_tree(v, tensors, f"{path}.{k}") for k, v in obj.items()}}
        raise TypeError(f"cannot checkpoint {path or 'state'}: dict keys must be all str or all int")
    if isinstance(obj, (list, tuple)):
        items = [encode_tree(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and not math.isfinite(obj):
        return {_FLOAT: repr(obj)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint {path or 'state'}: unsupported type {type(obj).__name__}")


def decode_tree(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_tree`."""
    if isinstance(obj, list):
        return [decode_tree(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        return _tensor(tensors, obj[_TENSOR])
    if _ARRAY in obj:
        return _tensor(tensors, obj[_ARRAY]).numpy()
    if _TUPLE in obj:
        return tuple(decode_tree(v, tensors) for v in obj[_TUPLE])
    if _INT_KEYS in obj:
        return {int(k): decode_tree(v, tensors) for k, v in obj[_INT_KEYS].items()}
    if _FLOAT in obj:
        return float(obj[_FLOAT])
    return {k: decode_tree(v, tensors) for k, v in obj.items()}


def _tensor(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in tensors:
        raise CheckpointError(f"{STATE_TENSORS} lacks the tensor {key!r} that {STATE_JSON} refers to")
    return tensors[key]


# --------------------------------------------------------------------------- directories
def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def list_checkpoints(checkpoints_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (those with a state file), oldest first."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_JSON).exists()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoints_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(checkpoints_dir)
    return found[-1] if found else None


def prune_checkpoints(checkpoints_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; returns the removed paths."""
    removed = list_checkpoints(checkpoints_dir)[:-keep_last]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def remove_checkpoints_after(checkpoints_dir: str | os.PathLike, step: int) -> list[Path]:
    """Delete checkpoints newer than ``step`` (left by a run that is being resumed from an earlier point)."""
    removed = [p for p in list_checkpoints(checkpoints_dir) if int(_STEP_DIR.match(p.name).group(1)) > step]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, state: dict[str, Any]) -> Path:
    """Write ``model`` (via ``save_pretrained``) and the trainer ``state`` tree into ``directory`` atomically."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:  # re-saving the same step (e.g. the final one) replaces it whole
        model.save_pretrained(str(tmp / MODEL_DIR))
        tensors: dict[str, torch.Tensor] = {}
        skeleton = encode_tree(state, tensors)
        save_file(tensors, str(tmp / STATE_TENSORS))
        write_json(tmp / STATE_JSON, skeleton, indent=1, sort_keys=False, allow_nan=False)
    return directory


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(model_state_dict, trainer_state)`` of a checkpoint directory; reads only safetensors and JSON."""
    directory = Path(directory)
    for name in (STATE_JSON, STATE_TENSORS, f"{MODEL_DIR}/model.safetensors"):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory} is not a complete trainer checkpoint: {name} is missing")
    skeleton = read_json(directory / STATE_JSON)
    state = decode_tree(skeleton, load_file(str(directory / STATE_TENSORS)))
    return load_file(str(directory / MODEL_DIR / "model.safetensors")), state
