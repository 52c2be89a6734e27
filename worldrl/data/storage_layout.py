"""How an env's observation and action spaces map onto a LeRobot dataset's flat columns.

``check_storable(env_id, observation_space, action_space)`` returns the ``StorageLayout`` the collector writes
with, or raises ``UnsupportedSpaceError`` naming the env and the space. What a dataset can store:

- observation: a ``Box`` of any shape, flattened row-major to float32 ``observation.state``; or a
  ``Dict`` of Boxes, each flattened and concatenated in the Dict's own key order (gymnasium sorts
  the keys of a plain dict, so the order is alphabetical unless the env built the Dict unsorted).
- action: a ``Box`` (float32, flattened) or a ``Discrete`` (one int64 element holding the index,
  so ``action`` has shape ``[1]`` and dtype ``int64``; offsets other than 0 are kept as given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from worldrl.errors import EnvError


class UnsupportedSpaceError(EnvError):
    """An observation or action space that a LeRobot dataset cannot hold."""


# Feature names for tasks whose observation/action layout is documented upstream.
KNOWN_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "Pendulum-v1": (["cos_theta", "sin_theta", "theta_dot"], ["torque"]),
    "InvertedPendulum-v4": (["slider_pos", "hinge_angle", "slider_vel", "hinge_vel"], ["slider_force"]),
    "InvertedPendulum-v5": (["slider_pos", "hinge_angle", "slider_vel", "hinge_vel"], ["slider_force"]),
    "CartPole-v1": (["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"], ["push"]),
    "MountainCarContinuous-v0": (["position", "velocity"], ["force"]),
}


@dataclass(frozen=True)
class StorageLayout:
    """How an env's observations and actions map onto flat dataset columns."""

    state_dim: int
    """Length of the flattened ``observation.state`` vector."""
    state_names: list[str] | None
    """One name per state element, or None where unknown."""
    dict_keys: tuple[str, ...] | None
    """Flatten order of a Dict observation; None for a Box observation."""
    action_shape: tuple[int, ...]
    """Shape of one action as the env takes it (``()`` for Discrete)."""
    action_dim: int
    """Length of the stored ``action`` vector."""
    action_dtype: str
    """``"float32"`` for Box actions, ``"int64"`` for Discrete ones."""
    action_names: list[str] | None
    """One name per action element, or None where unknown."""

    def flatten_obs(self, obs: Any) -> np.ndarray:
        """A batch of observations ``[N, ...]`` (or Dict of batches) -> float32 ``[N, state_dim]``."""
        if self.dict_keys is None:
            arr = np.asarray(obs)
            return arr.reshape(arr.shape[0], -1).astype(np.float32)
        parts = [np.asarray(obs[k]) for k in self.dict_keys]
        return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1).astype(np.float32)

    def store_action(self, actions: np.ndarray) -> np.ndarray:
        """A batch of env actions -> the stored ``[N, action_dim]`` rows."""
        arr = np.asarray(actions)
        return arr.reshape(arr.shape[0], self.action_dim).astype(self.action_dtype)


def _flat_box_names(prefix: str, box: spaces.Box) -> list[str]:
    size = int(np.prod(box.shape))
    return [prefix] if size == 1 else [f"{prefix}.{i}" for i in range(size)]


def check_storable(env_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> StorageLayout:
    """The storage layout for these spaces, or ``UnsupportedSpaceError`` naming env and space."""
    if isinstance(observation_space, spaces.Box):
        dict_keys, state_dim, state_names = None, int(np.prod(observation_space.shape)), None
    elif isinstance(observation_space, spaces.Dict) and all(
        isinstance(s, spaces.Box) for s in observation_space.spaces.values()
    ):
        dict_keys = tuple(observation_space.spaces.keys())
        state_names = [n for k in dict_keys for n in _flat_box_names(k, observation_space[k])]
        state_dim = len(state_names)
    else:
        raise UnsupportedSpaceError(
            f"env {env_id!r}: observation space {observation_space} cannot be stored; expected a Box or a Dict of Boxes"
        )
    if isinstance(action_space, spaces.Box):
        action_shape, action_dim, action_dtype = action_space.shape, int(np.prod(action_space.shape)), "float32"
    elif isinstance(action_space, spaces.Discrete):
        action_shape, action_dim, action_dtype = (), 1, "int64"
    else:
        raise UnsupportedSpaceError(
            f"env {env_id!r}: action space {action_space} cannot be stored; expected a Box or a Discrete"
        )
    known_state, known_action = KNOWN_NAMES.get(env_id, (None, None))
    if known_state is not None and len(known_state) == state_dim:
        state_names = known_state
    action_names = known_action if known_action is not None and len(known_action) == action_dim else None
    return StorageLayout(state_dim, state_names, dict_keys, tuple(action_shape), action_dim, action_dtype, action_names)


def is_storable(env_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> bool:
    """Whether ``check_storable`` accepts these spaces."""
    try:
        check_storable(env_id, observation_space, action_space)
    except UnsupportedSpaceError:
        return False
    return True


__all__ = ["KNOWN_NAMES", "StorageLayout", "UnsupportedSpaceError", "check_storable", "is_storable"]
