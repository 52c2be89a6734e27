"""Checkpoints as ``config.json`` + ``model.safetensors`` + ``task.json``: written atomically, loaded without pickle.

Normalisation statistics are buffers of the model and travel inside ``model.safetensors``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from worldrl.io import atomic_directory, read_json, write_json
from worldrl.errors import CheckpointError
from worldrl.models.base import WorldModel, build_model, get_family
from worldrl.models.task_spec import TaskSpec

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TASK_NAME = "task.json"
STARTS_NAME = "start_states.safetensors"
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


def save_pretrained(model: WorldModel, directory: str | os.PathLike) -> Path:
    """Write the checkpoint into ``directory`` atomically: readers see the old one or the new one, never half."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        write_json(tmp / CONFIG_NAME, {"format_version": FORMAT_VERSION, **model.config.to_dict()})
        write_json(tmp / TASK_NAME, model.task.to_dict())
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"family": model.config.family})
        if model.start_states is not None:
            save_file({"observations": model.start_states.detach().cpu().contiguous()}, str(tmp / STARTS_NAME))
    return directory


def load_pretrained(directory_or_hub_id: str | os.PathLike, device: str | torch.device = "cpu") -> WorldModel:
    """Load a checkpoint directory (or a Hub repo id); runs no code from the checkpoint."""
    directory = resolve_checkpoint_dir(directory_or_hub_id)
    config = read_json(directory / CONFIG_NAME, CheckpointError)
    family = config.get("family")
    if not family:
        raise CheckpointError(f"{directory / CONFIG_NAME} has no 'family' field")
    try:
        reg = get_family(family)
    except KeyError as err:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {err.args[0]}") from None
    task = TaskSpec.from_dict(read_json(directory / TASK_NAME, CheckpointError))
    config.pop("format_version", None)
    model = build_model(family, reg.config_class.from_dict(config), task)
    state = _read_weights(directory / WEIGHTS_NAME)
    _load_state_strict(model, state, directory / WEIGHTS_NAME)
    if (directory / STARTS_NAME).exists():
        model.start_states = _read_start_states(directory / STARTS_NAME, task)
    return model.to(device).eval()


def _read_start_states(path: Path, task: TaskSpec) -> torch.Tensor:
    starts = _read_weights(path).get("observations")
    if starts is None or tuple(starts.shape[1:]) != task.obs_shape or starts.shape[0] == 0:
        shape = None if starts is None else tuple(starts.shape)
        raise CheckpointError(f"{path} must hold 'observations' of shape (N, *{task.obs_shape}), got {shape}")
    return starts


def resolve_checkpoint_dir(directory_or_hub_id: str | os.PathLike) -> Path:
    path = Path(directory_or_hub_id)
    if path.is_file():
        _refuse_non_directory(path)
    if path.is_dir():
        if not (path / WEIGHTS_NAME).exists():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
            if pickles:
                raise CheckpointError(
                    f"{path} holds {pickles} but no {WEIGHTS_NAME}: pickle checkpoints are refused because "
                    "loading them runs code; convert the weights to safetensors"
                )
            raise CheckpointError(f"{path} is not a worldrl checkpoint: {WEIGHTS_NAME} is missing")
        return path
    if str(directory_or_hub_id).count("/") == 1 and not str(directory_or_hub_id).startswith((".", "/")):
        return _download_from_hub(str(directory_or_hub_id))
    raise CheckpointError(f"no checkpoint at {directory_or_hub_id}: not a directory and not a Hub repo id")


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, TASK_NAME, STARTS_NAME]))
    except Exception as err:  # offline mode, missing repo, no network: all end the same way for the user
        raise CheckpointError(
            f"could not fetch world model {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
            f"Offline, download it elsewhere with `huggingface-cli download {repo_id} --local-dir DIR` "
            "and pass DIR instead."
        ) from None


def _refuse_non_directory(path: Path) -> None:
    head = path.read_bytes()[:4]
    if head[:1] == b"\x80" or head[:2] == b"PK" or path.suffix in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path} looks like a pickle/torch.save file: refused, because loading it would run code. "
            "worldrl checkpoints are directories with config.json, task.json and model.safetensors"
        )
    raise CheckpointError(f"{path} is a file; a worldrl checkpoint is a directory (config.json, model.safetensors)")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupted or truncated ({err})") from None


def _load_state_strict(model: WorldModel, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its config.json: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(value.shape)}, config.json implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
