"""dm_control suite tasks as Gymnasium envs (``make_real_env("dmc:cartpole-swingup")``); needs ``worldrl[dmc]``.

The extra pins mujoco below 4: dm-control 1.0.50 with mujoco 4.0 fails in its generated bindings (a missing
``MjModel`` field) before any task loads; with mujoco 3.17 (or 3.8.1 next to gym-aloha's dm-control 1.0.41) the
benchmark tasks load and step (tests/test_dmc.py).
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldrl.errors import EnvError, MissingDependencyError
from worldrl.tasks.real_envs import UnknownEnvError

DMC_INSTALL_HINT = "dm_control is not installed: `pip install worldrl[dmc]` (or `pip install dm-control`)"


class DMCEnv(gym.Env):
    """A dm_control suite task as a Gymnasium env.

    The observation dict is flattened in the order of the task's observation spec (dm_control
    keeps it ordered) into a float32 Box; the action Box comes from the action spec. dm_control
    episodes end only by its time limit, reported as truncation unless the task sets discount 0.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        render_mode: str | None = None,
        width: int = 64,
        height: int = 64,
        camera: str | int | None = None,
        task_kwargs: dict | None = None,
        environment_kwargs: dict | None = None,
    ):
        try:
            from dm_control import suite
        except ImportError as err:
            raise MissingDependencyError(DMC_INSTALL_HINT) from err
        if (domain, task) not in suite.ALL_TASKS:
            close = difflib.get_close_matches(f"{domain}-{task}", [f"{d}-{t}" for d, t in suite.ALL_TASKS], n=5)
            raise UnknownEnvError(f"unknown dm_control task 'dmc:{domain}-{task}'; close matches: {close}")
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"DMCEnv supports render_mode None or 'rgb_array', got {render_mode!r}")
        self._suite, self.domain, self.task = suite, domain, task
        self._task_kwargs, self._env_kwargs = dict(task_kwargs or {}), dict(environment_kwargs or {})
        self.render_mode, self.width, self.height = render_mode, width, height
        self.camera = 0 if camera is None else camera
        try:
            self._env = self._load(self._task_kwargs.get("random"))
        except AttributeError as err:  # dm_control's generated bindings lag behind a newer mujoco
            import mujoco

            raise MissingDependencyError(
                f"dm_control cannot load 'dmc:{domain}-{task}' with mujoco {mujoco.__version__} ({err}); "
                "no dm-control release loads its tasks with mujoco 4: `pip install worldrl[dmc]` (mujoco < 4)"
            ) from err
        self.dt = float(self._env.control_timestep())
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        obs_spec = self._env.observation_spec()
        self._obs_keys = tuple(obs_spec.keys())
        size = sum(int(np.prod(s.shape)) for s in obs_spec.values())
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        act = self._env.action_spec()
        self.action_space = spaces.Box(
            np.broadcast_to(act.minimum, act.shape).astype(np.float32),
            np.broadcast_to(act.maximum, act.shape).astype(np.float32),
            dtype=np.float32,
        )

    @property
    def observation_names(self) -> list[str]:
        """One name per flattened observation element (``key`` or ``key.i``)."""
        spec = self._env.observation_spec()
        names = []
        for k in self._obs_keys:
            n = int(np.prod(spec[k].shape))
            names += [k] if n == 1 else [f"{k}.{i}" for i in range(n)]
        return names

    def _load(self, random: Any):
        return self._suite.load(
            self.domain,
            self.task,
            task_kwargs={**self._task_kwargs, "random": random},
            environment_kwargs=self._env_kwargs,
        )

    def _flatten(self, observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], np.float32).ravel() for k in self._obs_keys])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # dm_control draws its randomness from a RandomState fixed at load time
            self._env = self._load(seed)
        step = self._env.reset()
        return self._flatten(step.observation), {}

    def step(self, action):
        step = self._env.step(np.asarray(action, np.float64))
        ended = step.last()
        terminated = bool(ended and step.discount == 0.0)
        return (
            self._flatten(step.observation),
            float(step.reward or 0.0),
            terminated,
            bool(ended and not terminated),
            {},
        )

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self._env.physics.render(height=self.height, width=self.width, camera_id=self.camera)

    def close(self):
        self._env.close()


__all__ = ["DMC_INSTALL_HINT", "DMCEnv"]
