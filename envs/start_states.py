"""Where learned episodes start: given observations, a dataset's episode starts, the checkpoint's, or real resets.

A pool is an array ``[N, *obs_shape]`` for a single-key task, or a dict of such arrays (one per
``task.obs_keys``) for a keyed task; ``worldrl.models.observations.row`` draws from either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from worldrl.errors import EnvError
from worldrl.models.observations import batch_size_of, episode_start_observations
from worldrl.models.task_spec import TaskSpec

Pool = np.ndarray | dict[str, np.ndarray]


def check_in_space(obs: Any, task: TaskSpec, what: str = "options['observation']") -> None:
    """Refuse start observations outside the task's observation space (each key's Box bounds; NaN/inf too): a model
    started there imagines from states it never saw, and nothing downstream would say so."""
    entries = (
        [(key, obs[key], task.key_space(key)) for key in task.obs_keys]
        if task.is_keyed
        else [("", obs, task.observation_space)]
    )
    for key, value, space in entries:
        if not isinstance(space, gym.spaces.Box):
            continue
        x = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        x = x.astype(np.float64)
        name = f"{what}[{key!r}]" if key else what
        if not np.isfinite(x).all():
            raise EnvError(f"{name} holds NaN or inf")
        # bounds broadcast over any leading batch dims; infinite bounds never bind
        worst = float(np.max(np.maximum(space.low - x, x - space.high), initial=0.0))
        if worst > 1e-6:
            raise EnvError(
                f"{name} is outside the observation space {space} (by up to {worst:.4g}); give observations the "
                "task can produce"
            )


def dataset_episode_starts(root: str | os.PathLike, task: TaskSpec) -> Pool:
    """The first frame of every episode of a LeRobot dataset, for each observed key (state, PNG or video)."""
    from worldrl.data import LeRobotDatasetReader

    return episode_start_observations(LeRobotDatasetReader(root), task)


def real_env_starts(task: TaskSpec, count: int) -> np.ndarray:
    """``count`` initial observations of the real task (fixed seeds: the pool is the same in every process)."""
    if not task.task_id or task.task_id not in gym.registry or task.is_keyed:
        raise EnvError(
            f"no start states: the model's task {task.task_id!r} is not a Gymnasium id with the model's observation "
            "keys, so pass start_states= (observations) or dataset= (a LeRobot dataset root)"
        )
    env = gym.make(task.task_id)
    try:
        task.check_compatible(env.observation_space, env.action_space)
        first, _ = env.reset(seed=0)
        return np.stack([first] + [env.reset()[0] for _ in range(count - 1)])
    finally:
        env.close()


def start_pool(
    task: TaskSpec,
    start_states: Any | None,
    dataset: str | os.PathLike | None,
    pool_size: int,
    recorded: torch.Tensor | TensorDict | None = None,
) -> Pool:
    """The observations episodes start from, validated against the task's observation shapes.

    Precedence: ``start_states``, then ``dataset``, then ``recorded`` (the training dataset's episode starts,
    saved in the checkpoint by the trainer), then resets of the real task's env.
    """
    if start_states is not None:
        pool, source = _numpy_pool(start_states), "start_states"
    elif dataset is not None:
        pool, source = dataset_episode_starts(dataset, task), f"dataset {dataset}"
    elif recorded is not None:
        pool, source = _numpy_pool(recorded), "the training dataset's episode starts (start_states.safetensors)"
    else:
        pool, source = real_env_starts(task, pool_size), f"{task.task_id} resets"
    check_pool(pool, task, source)
    return pool


def _numpy_pool(value: Any) -> Pool:
    if isinstance(value, Mapping | TensorDict):
        return {key: _as_array(value[key]) for key in value.keys()}
    return _as_array(value)


def _as_array(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def check_pool(pool: Pool, task: TaskSpec, source: str) -> None:
    """``EnvError`` naming the source when shapes, keys or values do not fit the task."""
    if task.is_keyed != isinstance(pool, dict):
        expected = f"a mapping with keys {task.obs_keys}" if task.is_keyed else "an array"
        raise EnvError(f"start states from {source} must be {expected}, got {type(pool).__name__}")
    arrays = pool if isinstance(pool, dict) else {task.obs_key: pool}
    missing = [key for key in task.obs_keys if key not in arrays]
    if missing:
        raise EnvError(f"start states from {source} lack the key(s) {missing}")
    for key in task.obs_keys:
        shape, array = tuple(task.key_space(key).shape), arrays[key]
        if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape or len(array) == 0:
            raise EnvError(
                f"start states from {source} must have shape (N, {', '.join(map(str, shape))})"
                f"{f' for {key!r}' if task.is_keyed else ''}, got {array.shape}"
            )
        if not np.isfinite(array.astype(np.float64)).all():
            raise EnvError(f"start states from {source} contain NaN or inf")
    if len({len(arrays[key]) for key in task.obs_keys}) != 1:
        raise EnvError(f"start states from {source} have different counts per key")


def pool_size(pool: Pool) -> int:
    return batch_size_of(pool)


__all__ = ["Pool", "check_pool", "dataset_episode_starts", "pool_size", "real_env_starts", "start_pool"]
