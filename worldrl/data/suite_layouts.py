"""How each robot-learning suite's observations map onto the dataset keys of LeRobot's published datasets.

``worldrl collect --env gym_pusht/PushT-v0 --pixels`` records what ``lerobot/pusht`` holds: ``observation.image``
(96x96 video), ``observation.state`` (the agent's xy), ``action``, ``next.reward``, ``next.success``, 10 fps; without
``--pixels`` it records ``lerobot/pusht_keypoints``' ``observation.environment_state`` (the block's 16 keypoint
coordinates) instead of the image. ALOHA records ``observation.images.top`` (480x640) and the 14 joint positions as
``observation.state`` at 50 fps (``lerobot/aloha_sim_*``). Gymnasium-Robotics' goal-conditioned Dict observations
become one feature per key: ``observation.state`` (the env's ``observation``), ``observation.achieved_goal`` and
``observation.desired_goal``. A layout names, for every dataset key, the path of the array inside the env's
(possibly nested) observation.

The dataset's ``robot_type`` stays the env id; ``check_dataset_task`` refuses a dataset recorded from one suite
for a model of another task, naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from worldrl.errors import DatasetError, EnvError
from worldrl.tasks.suites import suite_of

KeyPath = tuple[str, ...]
"""Where an array sits inside a nested observation: the dict keys leading to it."""


@dataclass(frozen=True)
class SuiteLayout:
    """The dataset keys of one suite's recordings and where each comes from."""

    reference: str
    """The published LeRobot dataset whose keys, shapes and fps this layout reproduces."""
    sources: dict[str, KeyPath]
    """Dataset key -> path of the array in the env's observation (state recordings)."""
    pixel_sources: dict[str, KeyPath] | None = None
    """The same for ``--pixels`` recordings; None: this suite records no frames."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments giving the observation the ``sources`` read."""
    pixel_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments for ``--pixels`` recordings."""
    success_info: str | None = "is_success"
    """The ``info`` entry recorded as ``next.success`` (None: the suite reports none)."""
    fps: int | None = None
    """The control rate of the published dataset (PushT's ``dt`` is its physics substep, not its 10 Hz control
    rate); None: the env's own (``worldrl.tasks.real_envs.env_fps``)."""

    def keys(self, pixels: bool) -> dict[str, KeyPath]:
        if not pixels:
            return self.sources
        if self.pixel_sources is None:
            raise EnvError(f"recording pixels is not supported for this suite (layout of {self.reference})")
        return self.pixel_sources

    def kwargs(self, pixels: bool) -> dict[str, Any]:
        return self.pixel_env_kwargs if pixels else self.env_kwargs


def lookup(obs: Any, path: KeyPath) -> Any:
    """The array at ``path`` inside a nested observation (``()``: the observation itself)."""
    for part in path:
        obs = obs[part]
    return obs


def dict_sources(space: spaces.Space, path: KeyPath = ()) -> dict[str, KeyPath]:
    """Every Box inside a (nested) Dict space as its own key: ``observation`` -> ``observation.state``, others
    ``observation.<key>[.<subkey>]`` (goal-conditioned envs: ``observation.achieved_goal``, ...)."""
    if isinstance(space, spaces.Box):
        name = ".".join(path)
        return {"observation.state" if name in ("", "observation") else f"observation.{name}": path}
    if isinstance(space, spaces.Dict):
        out: dict[str, KeyPath] = {}
        for key, sub in space.spaces.items():
            out.update(dict_sources(sub, (*path, key)))
        return out
    raise EnvError(f"observation space {space} cannot be recorded as keyed features (Box or Dict of Boxes)")


PUSHT_KWARGS = {"observation_width": 96, "observation_height": 96}
LAYOUTS: dict[str, SuiteLayout] = {
    "gym-pusht": SuiteLayout(
        reference="lerobot/pusht (pixels) and lerobot/pusht_keypoints (state)",
        sources={"observation.state": ("agent_pos",), "observation.environment_state": ("environment_state",)},
        pixel_sources={"observation.image": ("pixels",), "observation.state": ("agent_pos",)},
        env_kwargs={"obs_type": "environment_state_agent_pos", **PUSHT_KWARGS},
        pixel_env_kwargs={"obs_type": "pixels_agent_pos", **PUSHT_KWARGS},
        fps=10,
    ),
    "gym-aloha": SuiteLayout(
        reference="lerobot/aloha_sim_insertion_human, lerobot/aloha_sim_transfer_cube_human",
        sources={"observation.images.top": ("pixels", "top"), "observation.state": ("agent_pos",)},
        pixel_sources={"observation.images.top": ("pixels", "top"), "observation.state": ("agent_pos",)},
        env_kwargs={"obs_type": "pixels_agent_pos"},  # gym-aloha has no state-only observation
        pixel_env_kwargs={"obs_type": "pixels_agent_pos"},
        fps=50,
    ),
}
GOAL_CONDITIONED = "gymnasium-robotics"
"""Suites recorded through ``dict_sources`` of the env's own observation space."""


def suite_layout(env_id: str, observation_space: spaces.Space | None = None) -> SuiteLayout | None:
    """The layout for an env id of a robot-learning suite; None for every other env.

    Gymnasium-Robotics layouts follow from the env's ``observation_space`` (pass it; None: the layout is
    built when the space is known).
    """
    suite = suite_of(env_id)
    if suite is None:
        return None
    if suite.name in LAYOUTS:
        return LAYOUTS[suite.name]
    if suite.name == GOAL_CONDITIONED and observation_space is not None:
        sources = dict_sources(observation_space)
        return SuiteLayout(reference=f"{env_id} goal-conditioned Dict observation", sources=sources)
    return None


def keyed_features(
    layout: SuiteLayout, observation_space: spaces.Space, pixels: bool, image_storage: str
) -> dict[str, dict[str, Any]]:
    """The LeRobot features of the observation keys: images as ``image_storage``, vectors as float32."""
    features = {}
    for key, path in layout.keys(pixels).items():
        space = lookup(observation_space, path)
        if len(space.shape) == 3 and space.dtype == np.uint8:
            features[key] = {
                "dtype": image_storage,
                "shape": list(space.shape),
                "names": ["height", "width", "channels"],
            }
        else:
            n = int(np.prod(space.shape))
            features[key] = {"dtype": "float32", "shape": [n], "names": None, **space_bounds(space)}
    return features


def space_bounds(space: spaces.Space) -> dict[str, list[float]]:
    """The env's own finite bounds of a Box (``low``/``high``, flattened) for its feature entry; {} if unbounded.

    Training reads them back (``worldrl.training.run``) so a served model's observation space is the env's, and
    its predictions are clipped into it. LeRobot's loaders ignore the extra entries.
    """
    if not isinstance(space, spaces.Box) or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        return {}
    return {"low": space.low.reshape(-1).astype(float).tolist(), "high": space.high.reshape(-1).astype(float).tolist()}


def keyed_observations(layout: SuiteLayout, obs: Mapping[str, Any], pixels: bool) -> dict[str, np.ndarray]:
    """A vector env's observation batch -> dataset key -> ``[N, ...]`` (vectors flattened to float32)."""
    out = {}
    for key, path in layout.keys(pixels).items():
        arr = np.asarray(lookup(obs, path))
        out[key] = arr if arr.dtype == np.uint8 and arr.ndim == 4 else arr.reshape(arr.shape[0], -1).astype(np.float32)
    return out


def policy_input(observations: Mapping[str, np.ndarray]) -> np.ndarray:
    """What state-based policies see: the vector keys concatenated in the layout's order."""
    vectors = [v for v in observations.values() if v.ndim == 2]
    return np.concatenate(vectors, axis=1) if vectors else np.zeros((len(next(iter(observations.values()))), 0))


def check_dataset_task(recorded: str | None, task_id: str | None) -> None:
    """Refuse a dataset recorded from a suite's env for a model of another task, naming both."""
    if recorded is None or task_id is None or recorded == task_id:
        return
    if suite_of(recorded) is None and suite_of(task_id) is None:
        return
    raise DatasetError(
        f"dataset recorded from {recorded!r} cannot train a model for task {task_id!r}; record {task_id} "
        f"(`worldrl collect --env {task_id}`) or set data.task_id to {recorded!r}"
    )


__all__ = [
    "LAYOUTS",
    "SuiteLayout",
    "check_dataset_task",
    "dict_sources",
    "keyed_features",
    "keyed_observations",
    "lookup",
    "policy_input",
    "space_bounds",
    "suite_layout",
]
