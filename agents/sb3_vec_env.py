"""A Stable-Baselines3 ``VecEnv`` over a Gymnasium vector env, so SB3 algorithms train on ``WorldModel-v0`` as is.

SB3 expects *same-step* autoreset: the step that ends an episode returns the NEXT episode's first observation,
with the final one in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` telling a
time-out from a true termination. Gymnasium vector envs come in two flavours, each handled by a registered
strategy (``AUTORESET_STRATEGIES``, keyed by ``metadata["autoreset_mode"]``):

* ``SAME_STEP`` (e.g. ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` of real envs): the final observation is
  already in ``infos["final_obs"]``; the adapter only renames it.
  ``WorldModelVectorEnv(autoreset_mode="same_step")`` is one: the way to train SB3 on a recurrent model.
* ``NEXT_STEP`` (``WorldModelVectorEnv``'s default): when rows finish, the adapter draws new
  start observations and calls ``env.reset(options={"observation": obs})`` with the running rows' current
  observations and the fresh starts. For a Markov model (the state *is* the observation, e.g. the ensemble) this
  continues the running rows exactly, except that sampled imagination re-draws their ensemble member; a
  recurrent model would lose its history, so it is refused with more than one env. Time limits are counted here
  per row (the vector env's own counters restart at every such reset).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvStepReturn,
)

StartSampler = Callable[[int], np.ndarray]
"""``n -> [n, *obs_shape]`` start observations (e.g. drawn from a replay buffer of real states)."""


class SB3VecEnv(VecEnv):
    """``SB3VecEnv(gym.make_vec("WorldModel-v0", num_envs=8, model=m))``: hand it to ``SAC("MlpPolicy", env)``.

    Args:
        env: a Gymnasium ``VectorEnv`` whose autoreset mode is ``NEXT_STEP`` (a ``WorldModelVectorEnv``) or
            ``SAME_STEP``.
        max_episode_steps: NEXT_STEP only: episode length limit counted by the adapter; ``"env"`` takes the vector
            env's ``max_episode_steps`` (None: no limit).
        start_sampler: NEXT_STEP only: where new episodes start; None draws them from the env's own start pool
            (one extra ``reset`` whose observations replace only the finished rows).
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        max_episode_steps: int | str | None = "env",
        start_sampler: StartSampler | None = None,
    ) -> None:
        mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if mode not in AUTORESET_STRATEGIES:
            raise ValueError(
                f"SB3VecEnv supports vector envs with autoreset mode {sorted(m.value for m in AUTORESET_STRATEGIES)}, "
                f"got {mode.value!r}"
            )
        self.env, self.autoreset_mode = env, mode
        self.max_episode_steps = (
            getattr(env, "max_episode_steps", None) if max_episode_steps == "env" else max_episode_steps
        )
        if self.max_episode_steps is not None and int(self.max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be a positive int or None, got {self.max_episode_steps!r}")
        self.start_sampler = start_sampler
        if mode == AutoresetMode.NEXT_STEP:
            _check_row_resettable(env)
        self._steps = np.zeros(env.num_envs, dtype=np.int64)
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else self._seeds
        self._obs, _ = self.env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self._steps[:] = 0
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs, *self.action_space.shape)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        self._steps += 1
        obs, truncated, final_obs = AUTORESET_STRATEGIES[self.autoreset_mode](self, obs, terminated, truncated, info)
        dones = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = final_obs[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        self._steps[dones] = 0
        self._obs = obs
        return obs, np.asarray(reward, np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)  # one batched env: the attribute is shared by every row

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    # ----------------------------------------------------------------- NEXT_STEP support
    def _fresh_starts(self, count: int) -> np.ndarray:
        if self.start_sampler is not None:
            starts = np.asarray(self.start_sampler(count))
            expected = (count, *self.observation_space.shape)
            if starts.shape != expected:
                raise ValueError(f"start_sampler returned shape {starts.shape}, expected {expected}")
            return starts
        pool_obs, _ = self.env.reset()  # draws every row from the env's start pool; only `count` are kept
        return pool_obs[:count]


# --------------------------------------------------------------------------- autoreset strategies
Strategy = Callable[[SB3VecEnv, np.ndarray, np.ndarray, np.ndarray, dict], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _same_step(adapter: SB3VecEnv, obs, terminated, truncated, info) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gymnasium already reset the finished rows; their last observation is in ``info["final_obs"]``."""
    final = np.array(obs, copy=True)
    mask = np.asarray(info.get("_final_obs", np.zeros(adapter.num_envs, bool)), bool)
    for i in np.flatnonzero(mask):
        final[i] = info["final_obs"][i]
    return obs, np.asarray(truncated, bool), final


def _next_step(adapter: SB3VecEnv, obs, terminated, truncated, info) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reset finished rows now (SB3's convention) by restarting the batch from current obs + fresh starts."""
    limit = adapter.max_episode_steps
    truncated = np.asarray(truncated, bool) | (adapter._steps >= limit if limit is not None else False)
    done = np.asarray(terminated, bool) | truncated
    final = np.array(obs, copy=True)
    if done.any():
        starts = np.array(obs, copy=True)
        starts[done] = adapter._fresh_starts(int(done.sum()))
        obs, _ = adapter.env.reset(options={"observation": starts})
    return obs, truncated, final


AUTORESET_STRATEGIES: dict[AutoresetMode, Strategy] = {
    AutoresetMode.SAME_STEP: _same_step,
    AutoresetMode.NEXT_STEP: _next_step,
}


def _check_row_resettable(env: gym.vector.VectorEnv) -> None:
    """NEXT_STEP envs are restarted from observations: that needs a learned simulator with a Markov model."""
    model = getattr(env, "model", None)
    if model is None:
        raise ValueError(
            f"{type(env).__name__} uses next-step autoreset and is not a learned simulator that can restart from "
            "observations; build it with autoreset_mode=AutoresetMode.SAME_STEP for Stable-Baselines3"
        )
    capabilities = getattr(model, "capabilities", None)
    if capabilities is not None and capabilities.recurrent and env.num_envs > 1:
        raise ValueError(
            f"{type(model).__name__} is recurrent: restarting the batch from observations would erase the running "
            "episodes' memory; use num_envs=1 or gym.make_vec('WorldModel-v0', ..., autoreset_mode='same_step')"
        )


__all__ = ["AUTORESET_STRATEGIES", "SB3VecEnv", "StartSampler"]
