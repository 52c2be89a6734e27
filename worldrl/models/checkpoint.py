"""Checkpoints as ``config.json`` + ``model.safetensors`` + ``task.json``: written atomically, loaded without pickle.

Normalisation statistics are buffers of the model and travel inside ``model.safetensors``. Large frozen parts
loaded from elsewhere (``WorldModel.external_weights``) are referenced in ``external.json`` (source and sha256)
instead of copied; loading verifies the hash. Start states of keyed tasks are stored one tensor per key
(``observations/<key>``), of single-key tasks as ``observations`` (the layout of every earlier checkpoint).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tensordict import TensorDict

from worldrl.errors import CheckpointError, ConfigError, WorldRLError
from worldrl.io import atomic_directory, read_json, write_json
from worldrl.models.base import WorldModel, build_model, get_family
from worldrl.models.external import weights_sha256
from worldrl.models.task_spec import TaskSpec

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TASK_NAME = "task.json"
STARTS_NAME = "start_states.safetensors"
EXTERNAL_NAME = "external.json"
CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, TASK_NAME, STARTS_NAME, EXTERNAL_NAME)
"""Every file a checkpoint may hold (what a Hub download fetches and ``push_to_hub`` uploads)."""
FORMAT_VERSION = 1
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


def save_pretrained(model: WorldModel, directory: str | os.PathLike) -> Path:
    """Write the checkpoint into ``directory`` atomically: readers see the old one or the new one, never half."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        versions = {"format_version": FORMAT_VERSION, "architecture_version": model.config.architecture_version}
        write_json(tmp / CONFIG_NAME, {**versions, **model.config.to_dict()})
        write_json(tmp / TASK_NAME, model.task.to_dict())
        external = model.external_weights()
        if external:
            write_json(
                tmp / EXTERNAL_NAME,
                {
                    name: {"prefix": part.prefix, "source": part.source, "sha256": part.sha256()}
                    for name, part in external.items()
                },
            )
        prefixes = tuple(part.prefix for part in external.values())
        tensors = {
            k: v.detach().cpu().contiguous()
            for k, v in model.state_dict().items()
            if not (prefixes and k.startswith(prefixes))
        }
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"family": model.config.family})
        if model.start_states is not None:
            save_file(start_state_tensors(model.start_states), str(tmp / STARTS_NAME))
    return directory


def initialise_from(model: WorldModel, directory: str | os.PathLike) -> None:
    """Copy the weights of the saved model in ``directory`` into ``model`` (a fine-tuning start): the same family
    and the same tensors, while config fields that shape no tensor (loss weights, schedules) may differ."""
    source = load_pretrained(directory)
    if source.config.family != model.config.family:
        raise CheckpointError(
            f"init_from {directory} holds a {source.config.family!r} model; this run trains a {model.config.family!r} one"
        )
    try:
        _load_state_strict(model, source.state_dict(), Path(directory) / WEIGHTS_NAME)
    except CheckpointError as err:
        raise CheckpointError(f"init_from: this run's model config shapes its tensors differently ({err})") from None


def start_state_tensors(starts: Any) -> dict[str, torch.Tensor]:
    """``{"observations": ...}`` for one key, ``{"observations/<key>": ...}`` per key of a keyed task."""
    if isinstance(starts, torch.Tensor):
        return {"observations": starts.detach().cpu().contiguous()}
    return {f"observations/{key}": starts[key].detach().cpu().contiguous() for key in starts.keys()}


def load_pretrained(
    directory_or_hub_id: str | os.PathLike, device: str | torch.device = "cpu", revision: str | None = None
) -> WorldModel:
    """Load a checkpoint directory (or a Hub repo id at ``revision``: a branch, tag or commit; default main);
    runs no code from the checkpoint."""
    directory = resolve_checkpoint_dir(directory_or_hub_id, revision)
    config = _read_object(directory / CONFIG_NAME)
    family = config.get("family")
    if not family or not isinstance(family, str):
        raise CheckpointError(f"{directory / CONFIG_NAME} has no 'family' field (a family name string)")
    try:
        reg = get_family(family)
    except KeyError as err:
        raise CheckpointError(f"{directory / CONFIG_NAME}: {err.args[0]}") from None
    task = _read_task(directory / TASK_NAME)
    _check_format_version(config.pop("format_version", 1), directory / CONFIG_NAME)
    _check_architecture(config.pop("architecture_version", 1), reg.config_class, directory / CONFIG_NAME)
    model = _build(family, reg, config, task, directory / CONFIG_NAME)
    external = _verify_external(model, directory)
    state = _read_weights(directory / WEIGHTS_NAME)
    _load_state_strict(model, state, directory / WEIGHTS_NAME, external)
    check_tensor_values(model, state, directory / WEIGHTS_NAME)
    if (directory / STARTS_NAME).exists():
        model.start_states = _read_start_states(directory / STARTS_NAME, task)
    return model.to(resolve_device(device)).eval()


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device that exists on this machine (``"auto"``: CUDA if there is one, else CPU); one-line error else."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device {name!r} is not a torch device (examples: cpu, cuda, cuda:1, mps, auto)") from None
    available = {
        "cpu": lambda: 1,
        "cuda": torch.cuda.device_count,
        "mps": lambda: int(torch.backends.mps.is_available()),
    }
    count = available.get(device.type, lambda: 0)()
    if count == 0:
        raise ConfigError(f"device {str(device)!r} is not available on this machine: use --device cpu (or auto)")
    if device.index is not None and device.index >= count and device.type != "cpu":
        raise ConfigError(f"device {str(device)!r} does not exist: this machine has {count} {device.type} device(s)")
    return device


def _read_start_states(path: Path, task: TaskSpec) -> Any:
    tensors = _read_weights(path)
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: start states {key!r} hold NaN or inf")
    if not task.is_keyed:
        starts = tensors.get("observations")
        if starts is None or tuple(starts.shape[1:]) != task.obs_shape or starts.shape[0] == 0:
            shape = None if starts is None else tuple(starts.shape)
            raise CheckpointError(f"{path} must hold 'observations' of shape (N, *{task.obs_shape}), got {shape}")
        return starts
    entries = {}
    for key in task.obs_keys:
        starts, shape = tensors.get(f"observations/{key}"), tuple(task.key_space(key).shape)
        if starts is None or tuple(starts.shape[1:]) != shape or starts.shape[0] == 0:
            got = None if starts is None else tuple(starts.shape)
            raise CheckpointError(f"{path} must hold 'observations/{key}' of shape (N, *{shape}), got {got}")
        entries[key] = starts
    counts = {len(v) for v in entries.values()}
    if len(counts) != 1:
        raise CheckpointError(f"{path}: the start states of the keys {task.obs_keys} have different counts {counts}")
    return TensorDict(entries, batch_size=[counts.pop()])


def _read_object(path: Path) -> dict[str, Any]:
    data = read_json(path, CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_task(path: Path) -> TaskSpec:
    """task.json as a TaskSpec; any value of the wrong type or range is a CheckpointError naming the file."""
    try:
        task = TaskSpec.from_dict(_read_object(path))
    except CheckpointError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        raise CheckpointError(
            f"{path} holds a value of the wrong type or range ({type(err).__name__}: {err})"
        ) from None
    _check_task(task, path)
    return task


def _build(family: str, reg: Any, config: dict[str, Any], task: TaskSpec, path: Path) -> WorldModel:
    """The model ``config.json`` describes; fields that do not build one are a CheckpointError naming the file."""
    try:
        return build_model(family, reg.config_class.from_dict(config), task)
    except WorldRLError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} does not describe a valid {family!r} model ({type(err).__name__}: {err})"
        ) from None


def _check_format_version(recorded: Any, path: Path) -> None:
    """Checkpoints without the field are version 1; a newer one was written by a newer worldrl."""
    if type(recorded) is not int or recorded < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {recorded!r}")
    if recorded > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {recorded} is newer than this worldrl reads ({FORMAT_VERSION}): upgrade worldrl"
        )


def _check_task(task: TaskSpec, path: Path) -> None:
    if not math.isfinite(task.fps) or task.fps < 0:
        raise CheckpointError(f"{path}: fps must be a finite number >= 0 (0: unknown), got {task.fps!r}")


# Value rules for the tensors of a checkpoint, by name: (applies to key?, what is wrong or None).
TensorRule = tuple[Callable[[str], bool], Callable[[WorldModel, torch.Tensor], str | None]]


def _finite(model: WorldModel, value: torch.Tensor) -> str | None:
    if not value.is_floating_point() or bool(torch.isfinite(value).all()):
        return None
    bad = int((~torch.isfinite(value)).sum())
    return f"holds {bad} NaN/inf values of {value.numel()}: the model diverged in training; retrain it or load an earlier checkpoint"


def _positive_std(model: WorldModel, value: torch.Tensor) -> str | None:
    if not value.is_floating_point() or bool((value > 0).all()):
        return None
    return f"is a normalisation std with values <= 0 (min {float(value.min()):g}); a std must be positive"


def _elite_indices(model: WorldModel, value: torch.Tensor) -> str | None:
    members = int(getattr(model.config, "num_members", 0))
    values = value.reshape(-1).tolist()
    if all(0 <= i < members for i in values) and len(set(values)) == len(values):
        return None
    return f"holds elite indices {values}; they must be distinct members in [0, num_members={members})"


TENSOR_RULES: tuple[TensorRule, ...] = (
    (lambda key: True, _finite),
    (lambda key: key.rsplit(".", 1)[-1] in ("std", "state_std", "action_std"), _positive_std),
    (lambda key: key.rsplit(".", 1)[-1] == "elite_idx", _elite_indices),
)
"""What every loaded checkpoint is checked for: finite weights, positive normalisation stds, valid elite indices."""


def check_tensor_values(model: WorldModel, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a checkpoint whose tensors hold values no trained model has (``TENSOR_RULES``), naming the tensor."""
    for key, value in state.items():
        for applies, rule in TENSOR_RULES:
            problem = rule(model, value) if applies(key) else None
            if problem:
                raise CheckpointError(f"{path}: tensor {key!r} {problem}")


def _check_architecture(recorded: Any, config_class: Any, path: Path) -> None:
    """Refuse weights of an older layout of the family, saying so (checkpoints without the field are version 1)."""
    current = config_class.architecture_version
    if recorded != current:
        raise CheckpointError(
            f"{path}: this {config_class.family!r} checkpoint has architecture version {recorded!r}, but this worldrl "
            f"builds version {current}; its weights do not fit the current model: retrain it (`worldrl train`)"
        )


def _verify_external(model: WorldModel, directory: Path) -> tuple[str, ...]:
    """Prefixes of the referenced parts, after checking each source's hash against ``external.json``."""
    path = directory / EXTERNAL_NAME
    recorded = read_json(path, CheckpointError) if path.exists() else {}
    present = model.external_weights()
    if set(recorded) != set(present):
        raise CheckpointError(
            f"{path} references {sorted(recorded)} but the model built from config.json loads "
            f"external weights {sorted(present)}"
        )
    for name, part in present.items():
        entry = recorded[name]
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise CheckpointError(f"{path}: entry {name!r} needs a 'sha256' string")
        found = weights_sha256(part.local_dir)
        if found != entry["sha256"]:
            raise CheckpointError(
                f"external weights {name!r} from {part.source} have sha256 {found[:12]}..., but the checkpoint was "
                f"saved with {entry['sha256'][:12]}...: these are not the weights it was trained with"
            )
    return tuple(part.prefix for part in present.values())


def resolve_checkpoint_dir(directory_or_hub_id: str | os.PathLike, revision: str | None = None) -> Path:
    path = Path(directory_or_hub_id)
    if revision is not None and path.exists():
        raise CheckpointError(f"revision={revision!r} applies to Hub repo ids, but {path} is a local path")
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
        return _download_from_hub(str(directory_or_hub_id), revision)
    raise CheckpointError(f"no checkpoint at {directory_or_hub_id}: not a directory and not a Hub repo id")


def _download_from_hub(repo_id: str, revision: str | None = None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(CHECKPOINT_FILES)))
    except Exception as err:  # offline mode, missing repo, no network: all end the same way for the user
        at = f" --revision {revision}" if revision else ""
        raise CheckpointError(
            f"could not fetch world model {repo_id!r}{f' at revision {revision!r}' if revision else ''} from the "
            f"Hugging Face Hub ({type(err).__name__}: {err}). Offline, download it elsewhere with "
            f"`hf download {repo_id}{at} --local-dir DIR` and pass DIR instead."
        ) from None


def _refuse_non_directory(path: Path) -> None:
    with path.open("rb") as file:  # the header only: the file may be gigabytes
        head = file.read(4)
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


def _load_state_strict(
    model: WorldModel, state: dict[str, torch.Tensor], path: Path, external: tuple[str, ...] = ()
) -> None:
    """Every tensor the model has, with its shape; referenced external parts come from their source instead."""
    expected = {k: v for k, v in model.state_dict().items() if not (external and k.startswith(external))}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its config.json: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(value.shape)}, config.json implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=not external)
