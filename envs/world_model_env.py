"""``WorldModelEnv``: a learned world model as a Gymnasium environment (``gym.make("WorldModel-v0", ...)``).

The model predicts; this module owns everything an environment must add: start states, action checks, the
reward and termination source, observation clipping, seeding and rendering. ``LearnedSimulator`` holds that
logic on torch batches, so the single env (batch 1), the native vector env (batch N, ``vector_env.py``) and
the TorchRL env (``torchrl_env.py``) behave identically.

Observations. ``obs_mode="observation"`` returns the decoded prediction in the real task's space: cast to the
space's dtype and clipped to its finite bounds (e.g. Pendulum's cos/sin to [-1, 1] and thdot to [-8, 8]),
because a learned model can drift slightly outside the set the real dynamics can reach and the Gymnasium
contract requires observations inside the declared space. A non-finite prediction (a diverged model) is
replaced by 0 (then clipped) and ends the episode (``terminated=True``, ``info["model_diverged"]=True``).
``obs_mode="latent"`` returns ``model.latent(state)`` in ``Box(-inf, inf, (latent_dim,))``.

Goals: with ``reward="goal"`` the reward is minus the model's latent distance between the imagined state and a
goal observation's embedding (``model.embed``), the goal given by ``reset(options={"goal": obs})`` or fixed at
construction with ``goal=obs``; latent-only families (V-JEPA 2) use this with ``obs_mode="latent"``.

Keyed tasks (several observation keys, ``TaskSpec.is_keyed``) observe a Gymnasium ``Dict`` with one entry per key.

Start states, in order of precedence: ``reset(options={"observation": obs})``; ``start_states=`` (an array of
observations); ``dataset=`` (a LeRobot dataset root: the first frame of each episode); else ``start_pool_size``
resets of the real task's env (``task_id`` must be a Gymnasium id), drawn once with fixed seeds and then
sampled with the env's ``np_random`` (so resets are cheap and deterministic for a seed).

Time limits are not the env's business: ``gym.make("WorldModel-v0", ...)`` goes through
``make_world_model_env``, which adds ``TimeLimit(task.max_episode_steps)`` (override with ``time_limit=N``, or
``time_limit=None`` for none; gym.make's own ``max_episode_steps=N`` adds an outer limit, which can only
shorten episodes).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from worldrl.envs.options import EnvOptions
from worldrl.envs.rendering import Renderer, Size, make_renderer
from worldrl.envs.simulator import (  # noqa: F401  (re-exported for users of the old location)
    ACTION_POLICIES,
    OBS_MODES,
    REWARD_SOURCES,
    TERMINATION_SOURCES,
    LearnedSimulator,
    SimulatorOptions,
    Transition,
    batched,
    open_simulator,
    resolve_model,
    start_pool,
)
from worldrl.envs.start_states import check_in_space
from worldrl.errors import EnvError
from worldrl.models import observations as keyed
from worldrl.models.base import WorldModel
from worldrl.models.task_spec import TaskSpec

RESET_OPTIONS = ("observation", "goal")
"""What ``reset(options=...)`` understands: a start observation, and a goal observation for ``reward="goal"``."""


# =========================================================================== the Gymnasium env
class WorldModelEnv(gym.Env):
    """One learned simulator as a Gymnasium env with the real task's spaces (see the module docstring).

    ``model`` and every field of ``EnvOptions`` are keyword options (``gym.make("WorldModel-v0", reward="task")``);
    ``options=EnvOptions(...)`` passes them as one object.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        model: WorldModel | str | os.PathLike | None = None,
        *,
        render_mode: str | None = None,
        render_size: Size = (240, 240),
        options: EnvOptions | None = None,
        **option_fields: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if model is not None:
            option_fields["model"] = model
        setup = open_simulator(EnvOptions.from_kwargs(options, option_fields))
        self.model, self.sim, self._pool, self._default_goal = setup.model, setup.sim, setup.pool, setup.goal
        self.task: TaskSpec = self.model.task
        self.task_id = self.task.task_id
        self.observation_space = self.sim.single_observation_space
        self.action_space = self.sim.single_action_space
        self.render_mode, self.render_size = render_mode, tuple(render_size)
        self.metadata = {**self.metadata, "render_fps": int(round(self.task.fps)) or 30}
        self._generator = self.sim.make_generator()
        self._current: Transition | None = None
        self._goal: torch.Tensor | None = None
        self._renderer: Renderer | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._generator.manual_seed(seed)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise EnvError(f"unknown reset option(s) {unknown}; supported: {list(RESET_OPTIONS)}")
        self._goal = self._episode_goal(options)
        self._current = self.sim.start(self._start_observation(options))
        return self.sim.to_numpy(keyed.row(self._current.view, 0)), self._info(self._current)

    def _start_observation(self, options: dict[str, Any]) -> Any:
        """A batch of one start observation: the one given, else one drawn from the pool."""
        if "observation" in options:
            keyed.to_torch(options["observation"], self.task, "cpu", 0, what="options['observation']")
            check_in_space(options["observation"], self.task)
            return batched(options["observation"])
        index = int(self.np_random.integers(keyed.batch_size_of(self._pool)))
        return keyed.row(self._pool, slice(index, index + 1))

    def _episode_goal(self, options: dict[str, Any]) -> torch.Tensor | None:
        if "goal" not in options:
            if self.sim.uses_goal and self._default_goal is None:
                raise EnvError("reward='goal' needs a goal: reset(options={'goal': obs}) or goal= when making the env")
            return self._default_goal
        if not self.sim.uses_goal:
            raise EnvError(
                f"options['goal'] is given but reward={self.sim.reward_source!r}; make the env with reward='goal'"
            )
        keyed.to_torch(options["goal"], self.task, "cpu", 0, what="options['goal']")
        return self.sim.embed_goal(batched(options["goal"]))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._current is None:
            raise RuntimeError("WorldModelEnv.step() called before reset(): call env.reset() first")
        act = self.sim.check_actions(action, ())
        self._current = self.sim.step(self._current.state, self._current.obs, act, self._generator, self._goal)
        t = self._current
        obs = self.sim.to_numpy(keyed.row(t.view, 0))
        return obs, float(t.reward[0]), bool(t.terminated[0]), False, self._info(t)

    def _info(self, t: Transition) -> dict[str, Any]:
        return {"task_id": self.task_id, "model_diverged": bool(t.diverged[0])}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self._current is None:
            raise RuntimeError("render() called before reset()")
        if self._renderer is None:
            self._renderer = make_renderer(self.task, self.render_size, self.sim.can_decode)
        return self._renderer(self.sim.render_vector(self._current, 0))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_world_model_env(time_limit: int | str | None = "task", **kwargs: Any) -> gym.Env:
    """Entry point of ``WorldModel-v0``: the env plus ``TimeLimit`` (``"task"``: the model's task default)."""
    env = WorldModelEnv(**kwargs)
    steps = env.task.max_episode_steps if time_limit == "task" else time_limit
    if steps is not None and not (isinstance(steps, int) and steps > 0):
        raise EnvError(f"time_limit must be 'task', a positive int or None, got {time_limit!r}")
    return gym.wrappers.TimeLimit(env, steps) if steps is not None else env


make_world_model_env.metadata = WorldModelEnv.metadata  # lets gym.make check render_mode before building
