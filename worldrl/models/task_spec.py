"""What a world model simulates: the real task id, its spaces, and which dataset keys feed it.

Saved as ``task.json`` next to every checkpoint so an env built from the checkpoint exposes exactly the
spaces of the task it was trained on, and refuses to pretend to be another task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from worldrl.errors import CheckpointError


@dataclass
class TaskSpec:
    """The real environment a model was trained to imitate."""

    observation_space: gym.spaces.Box
    """Space of one observation (state vector, or an ``(H, W, C)`` uint8 image for pixel models)."""
    action_space: gym.spaces.Box
    """Space of one action; only continuous ``Box`` actions are simulated."""
    task_id: str | None = None
    """Gymnasium id of the real env (``"Pendulum-v1"``), or None for data of unknown origin."""
    obs_key: str = "observation.state"
    """Dataset feature the model observes (``observation.state`` or ``observation.images.<camera>``)."""
    fps: float = 0.0
    """Control frequency of the recorded data (from ``meta/info.json``)."""
    max_episode_steps: int | None = None
    """The real task's time limit, used as the learned env's default ``TimeLimit``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts (``render_shape``, the state key used for pixel rendering, ...)."""

    def __post_init__(self) -> None:
        for name in ("observation_space", "action_space"):
            space = getattr(self, name)
            if not isinstance(space, gym.spaces.Box):
                raise TypeError(f"TaskSpec.{name} must be a gymnasium Box, got {type(space).__name__}")

    @classmethod
    def from_env_id(cls, task_id: str, **fields: Any) -> "TaskSpec":
        """The spec of a registered Gymnasium task: its spaces and time limit, read from a fresh env."""
        env = gym.make(task_id)
        try:
            limit = env.spec.max_episode_steps if env.spec is not None else None
            return cls(env.observation_space, env.action_space, task_id, max_episode_steps=limit, **fields)
        finally:
            env.close()

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space.shape)

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_space.shape))

    @property
    def is_pixel(self) -> bool:
        return len(self.obs_shape) == 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "obs_key": self.obs_key,
            "fps": self.fps,
            "max_episode_steps": self.max_episode_steps,
            "observation_space": box_to_dict(self.observation_space),
            "action_space": box_to_dict(self.action_space),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskSpec":
        try:
            return cls(
                observation_space=box_from_dict(data["observation_space"]),
                action_space=box_from_dict(data["action_space"]),
                task_id=data.get("task_id"),
                obs_key=data.get("obs_key", "observation.state"),
                fps=float(data.get("fps", 0.0)),
                max_episode_steps=data.get("max_episode_steps"),
                extra=dict(data.get("extra", {})),
            )
        except KeyError as err:
            raise CheckpointError(f"task.json is missing the field {err.args[0]!r}") from None

    def check_compatible(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Raise ``ValueError`` naming the mismatch when a real env's spaces differ from the trained ones."""
        for name, mine, theirs in (
            ("observation", self.observation_space, observation_space),
            ("action", self.action_space, action_space),
        ):
            if not isinstance(theirs, gym.spaces.Box) or tuple(theirs.shape) != tuple(mine.shape):
                raise CheckpointError(
                    f"model trained for task {self.task_id!r} with {name} space {mine}, but the env has {theirs}"
                )


def box_to_dict(space: gym.spaces.Box) -> dict[str, Any]:
    """JSON form of a Box; infinities become strings so the file stays strict JSON."""
    return {
        "type": "Box",
        "shape": list(space.shape),
        "dtype": np.dtype(space.dtype).name,
        "low": _encode_bounds(space.low),
        "high": _encode_bounds(space.high),
    }


def box_from_dict(data: dict[str, Any]) -> gym.spaces.Box:
    if data.get("type") != "Box":
        raise CheckpointError(f"only Box spaces are supported in task.json, got {data.get('type')!r}")
    dtype = np.dtype(data["dtype"])
    shape = tuple(data["shape"])
    low = np.asarray(_decode_bounds(data["low"]), dtype=np.float64).reshape(shape).astype(dtype)
    high = np.asarray(_decode_bounds(data["high"]), dtype=np.float64).reshape(shape).astype(dtype)
    return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)


def _encode_bounds(values: np.ndarray) -> list[Any]:
    return [v if np.isfinite(v) else ("inf" if v > 0 else "-inf") for v in np.asarray(values, np.float64).ravel().tolist()]


def _decode_bounds(values: list[Any]) -> list[float]:
    return [float(v) for v in values]
