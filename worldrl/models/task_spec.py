"""What a world model simulates: the real task id, its spaces, and which dataset keys feed it.

Saved as ``task.json`` next to every checkpoint so an env built from the checkpoint exposes exactly the
spaces of the task it was trained on, and refuses to pretend to be another task.

Observations are keyed by their dataset feature names (``observation.state``, ``observation.images.<camera>``,
``observation.audio``). A task observed through one key holds that key's ``Box`` (the model then takes and
returns plain tensors, as every checkpoint before keyed observations did); a task observed through several
keys holds a Gymnasium ``Dict`` of Boxes, and models take and return ``TensorDict``s keyed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from worldrl.errors import CheckpointError

SUPERVISION_DIMS = "supervision_dims"
"""Key of ``TaskSpec.extra``: ``{dataset key: flat size}`` of the vectors a model is trained to predict but never
observes (a family's ``supervision_keys``), recorded by ``worldrl train`` so a checkpoint rebuilds its heads."""


@dataclass
class TaskSpec:
    """The real environment a model was trained to imitate."""

    observation_space: gym.spaces.Box | gym.spaces.Dict
    """Space of one observation: a ``Box`` (state vector, or an ``(H, W, C)`` uint8 image) for one key, or a
    ``Dict`` of Boxes keyed by dataset feature name for several."""
    action_space: gym.spaces.Box
    """Space of one action; only continuous ``Box`` actions are simulated."""
    task_id: str | None = None
    """Gymnasium id of the real env (``"Pendulum-v1"``), or None for data of unknown origin."""
    obs_key: str = "observation.state"
    """Dataset feature the model observes when it observes one key; with a ``Dict`` space, its first key."""
    fps: float = 0.0
    """Control frequency of the recorded data (from ``meta/info.json``)."""
    max_episode_steps: int | None = None
    """The real task's time limit, used as the learned env's default ``TimeLimit``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts (``render_shape``, the state key used for pixel rendering, ...)."""

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, gym.spaces.Box):
            raise TypeError(f"TaskSpec.action_space must be a gymnasium Box, got {type(self.action_space).__name__}")
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            if not space.spaces or not all(isinstance(s, gym.spaces.Box) for s in space.spaces.values()):
                raise TypeError(f"TaskSpec.observation_space must be a Box or a non-empty Dict of Boxes, got {space}")
            self.obs_key = next(iter(space.spaces))
        elif not isinstance(space, gym.spaces.Box):
            raise TypeError(f"TaskSpec.observation_space must be a gymnasium Box or Dict, got {type(space).__name__}")

    @classmethod
    def from_env_id(cls, task_id: str, **fields: Any) -> TaskSpec:
        """The spec of a registered Gymnasium task: its spaces and time limit, read from a fresh env."""
        env = gym.make(task_id)
        try:
            limit = env.spec.max_episode_steps if env.spec is not None else None
            return cls(env.observation_space, env.action_space, task_id, max_episode_steps=limit, **fields)
        finally:
            env.close()

    @classmethod
    def keyed(cls, spaces: dict[str, gym.spaces.Box], action_space: gym.spaces.Box, **fields: Any) -> TaskSpec:
        """A task observed through several dataset keys (one key gives the plain single-key spec)."""
        if len(spaces) == 1:
            ((key, space),) = spaces.items()
            return cls(space, action_space, obs_key=key, **fields)
        return cls(gym.spaces.Dict(dict(spaces)), action_space, **fields)

    @property
    def is_keyed(self) -> bool:
        """Several observation keys: models exchange ``TensorDict``s keyed by ``obs_keys``."""
        return isinstance(self.observation_space, gym.spaces.Dict)

    @property
    def obs_keys(self) -> list[str]:
        """The dataset keys observed, in the model's order."""
        return list(self.observation_space.spaces) if self.is_keyed else [self.obs_key]

    def key_space(self, key: str) -> gym.spaces.Box:
        """The ``Box`` of one observation key."""
        if key not in self.obs_keys:
            raise KeyError(f"task {self.task_id!r} observes {self.obs_keys}, not {key!r}")
        return self.observation_space[key] if self.is_keyed else self.observation_space

    def key_spaces(self) -> dict[str, gym.spaces.Box]:
        return {key: self.key_space(key) for key in self.obs_keys}

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of the single observation key (a keyed task has one shape per key: ``key_space(k).shape``)."""
        if self.is_keyed:
            raise ValueError(f"task {self.task_id!r} observes several keys {self.obs_keys}: use key_space(key).shape")
        return tuple(self.observation_space.shape)

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_space.shape))

    @property
    def is_pixel(self) -> bool:
        """The single key is an image (keyed tasks: see ``image_keys``)."""
        return not self.is_keyed and len(self.obs_shape) == 3

    @property
    def image_keys(self) -> list[str]:
        return [key for key, space in self.key_spaces().items() if len(space.shape) == 3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "obs_key": self.obs_key,
            "fps": self.fps,
            "max_episode_steps": self.max_episode_steps,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": box_to_dict(self.action_space),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        try:
            return cls(
                observation_space=space_from_dict(data["observation_space"]),
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
            if _shapes(theirs) != _shapes(mine):
                raise CheckpointError(
                    f"model trained for task {self.task_id!r} with {name} space {mine}, but the env has {theirs}"
                )


def _shapes(space: gym.Space) -> Any:
    """What two spaces must share to be interchangeable: Box shapes, per key for a Dict."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _shapes(sub) for key, sub in space.spaces.items()}
    return tuple(space.shape) if isinstance(space, gym.spaces.Box) else type(space).__name__


def space_to_dict(space: gym.spaces.Box | gym.spaces.Dict) -> dict[str, Any]:
    """JSON form of a Box, or of a Dict of Boxes (keys in order)."""
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": [[key, box_to_dict(sub)] for key, sub in space.spaces.items()]}
    return box_to_dict(space)


def space_from_dict(data: dict[str, Any]) -> gym.spaces.Box | gym.spaces.Dict:
    if data.get("type") == "Dict":
        entries = data.get("spaces")
        if not isinstance(entries, list) or not entries:
            raise CheckpointError("a Dict observation space in task.json needs a non-empty 'spaces' list of [key, Box]")
        return gym.spaces.Dict({str(key): box_from_dict(sub) for key, sub in entries})
    return box_from_dict(data)


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
    return [
        v if np.isfinite(v) else ("inf" if v > 0 else "-inf") for v in np.asarray(values, np.float64).ravel().tolist()
    ]


def _decode_bounds(values: list[Any]) -> list[float]:
    return [float(v) for v in values]
