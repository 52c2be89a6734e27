"""Keyed observations: one tensor for a single-key task, a ``TensorDict`` keyed by dataset feature for several.

Everything that moves observations between numpy (Gymnasium), torch (models) and flat vectors (MLP families)
goes through these functions, so a single-key task keeps plain tensors and arrays exactly as before keyed
observations existed, and a keyed task gets one entry per ``TaskSpec.obs_keys`` in every place alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.models.task_spec import TaskSpec

Observation = torch.Tensor | TensorDict
"""What models take and return: a tensor ``[*batch, *shape]`` for one key, a TensorDict keyed by dataset key."""


def key_dims(task: TaskSpec) -> dict[str, int]:
    """Flattened length of each observation key."""
    return {key: int(np.prod(space.shape)) for key, space in task.key_spaces().items()}


def flat_obs_dim(task: TaskSpec) -> int:
    """Length of all keys flattened and concatenated (what MLP families model)."""
    return sum(key_dims(task).values())


def flatten_observation(obs: Observation, task: TaskSpec, batch_dims: int) -> torch.Tensor:
    """``[*batch, D]``: every key flattened over its feature dims, concatenated in ``task.obs_keys`` order."""
    if not task.is_keyed:
        return obs.reshape(*obs.shape[:batch_dims], -1)
    parts = [obs[key] for key in task.obs_keys]
    return torch.cat([p.reshape(*p.shape[:batch_dims], -1) for p in parts], dim=-1)


def unflatten_observation(flat: torch.Tensor, task: TaskSpec) -> Observation:
    """Inverse of ``flatten_observation`` for ``flat [*batch, D]``."""
    batch = flat.shape[:-1]
    if not task.is_keyed:
        return flat.reshape(*batch, *task.obs_shape)
    pieces = torch.split(flat, list(key_dims(task).values()), dim=-1)
    entries = {key: piece.reshape(*batch, *task.key_space(key).shape) for key, piece in zip(task.obs_keys, pieces)}
    return TensorDict(entries, batch_size=batch, device=flat.device)


def flat_stats(stats: dict[str, Any], task: TaskSpec, role: str = "obs") -> dict[str, Any]:
    """``stats`` with per-key entries ``"<role>/<key>"`` joined into one flat ``role`` entry (mean, std, min, max).

    A keyed task's training windows carry one statistics entry per observation key; models of the flat
    concatenation (``flatten_observation``) need them concatenated the same way.
    """
    names = [f"{role}/{key}" for key in task.obs_keys]
    if role in stats or not task.is_keyed or not all(name in stats for name in names):
        return dict(stats)
    fields = set.intersection(*(set(stats[name]) for name in names)) & {"mean", "std", "min", "max"}
    joined = {
        field: np.concatenate([np.asarray(stats[name][field], np.float64).reshape(-1) for name in names])
        for field in fields
    }
    rest = {k: v for k, v in stats.items() if k not in names}
    return {**rest, role: joined}


def to_torch(
    obs: Any, task: TaskSpec, device: torch.device | str, batch_dims: int, what: str = "observation"
) -> Observation:
    """numpy/torch input (a mapping for keyed tasks) -> float tensors on ``device``, shapes checked by key.

    ``batch_dims`` leading dims are batch; the rest must equal each key's space shape. Raises ``ValueError``
    naming the key and the shapes, or the non-finite key.
    """
    if task.is_keyed:
        if not isinstance(obs, Mapping | TensorDict):
            raise ValueError(f"{what} must be a mapping with keys {task.obs_keys}, got {type(obs).__name__}")
        missing = [key for key in task.obs_keys if key not in obs.keys()]
        if missing:
            raise ValueError(f"{what} lacks the key(s) {missing}; expected {task.obs_keys}")
        tensors = {
            key: _one_key(obs[key], task.key_space(key).shape, device, batch_dims, f"{what}[{key!r}]")
            for key in task.obs_keys
        }
        batch = next(iter(tensors.values())).shape[:batch_dims]
        for key, tensor in tensors.items():
            if tensor.shape[:batch_dims] != batch:
                raise ValueError(
                    f"{what}[{key!r}] has batch shape {tuple(tensor.shape[:batch_dims])}, others {tuple(batch)}"
                )
        return TensorDict(tensors, batch_size=batch, device=device)
    return _one_key(obs, task.obs_shape, device, batch_dims, what)


def _one_key(value: Any, shape: tuple[int, ...], device: Any, batch_dims: int, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, device=device)
    if tensor.dim() != batch_dims + len(shape) or tuple(tensor.shape[batch_dims:]) != tuple(shape):
        expected = tuple(shape) if not batch_dims else f"({'B, ' * batch_dims}{', '.join(map(str, shape))})"
        raise ValueError(f"{what} has shape {tuple(tensor.shape)}, expected {expected}")
    tensor = tensor.float() if tensor.is_floating_point() else tensor
    if not torch.isfinite(tensor.float()).all():
        raise ValueError(f"{what} contains NaN or inf")
    return tensor


def to_numpy(obs: Observation, task: TaskSpec) -> np.ndarray | dict[str, np.ndarray]:
    """Tensors -> numpy in each key's space dtype (a dict for keyed tasks, as Gymnasium's ``Dict`` space holds)."""
    if task.is_keyed:
        return {key: _numpy(obs[key], task.key_space(key).dtype) for key in task.obs_keys}
    return _numpy(obs, task.observation_space.dtype)


def _numpy(tensor: torch.Tensor, dtype: Any) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    if np.issubdtype(dtype, np.integer):
        array = np.rint(array)
    return array.astype(dtype, copy=False)


def row(obs: Any, index: int | slice) -> Any:
    """One batch row (or a slice) of a numpy/torch observation, keyed or not."""
    if isinstance(obs, Mapping):
        return {key: value[index] for key, value in obs.items()}
    return obs[index]


def episode_start_observations(reader: Any, task: TaskSpec, episodes: Any = None) -> np.ndarray | dict[str, np.ndarray]:
    """The first observation of each episode of a dataset reader: an array, or one per key of a keyed task."""
    if not task.is_keyed:
        return reader.episode_starts(task.obs_key, episodes)
    return {key: reader.episode_starts(key, episodes) for key in task.obs_keys}


def batch_size_of(obs: Any) -> int:
    if isinstance(obs, Mapping | TensorDict):
        return len(next(iter(obs.values())))
    return len(obs)


__all__ = [
    "Observation",
    "batch_size_of",
    "episode_start_observations",
    "flat_obs_dim",
    "flat_stats",
    "flatten_observation",
    "key_dims",
    "row",
    "to_numpy",
    "to_torch",
    "unflatten_observation",
]
