"""Episode returns of a policy on the REAL environment: the number that judges a model-based agent.

Episodes run in a gymnasium vector env with same-step autoreset. Each copy is given a fixed quota of episodes
(``episodes`` split as evenly as possible) so the sample is not biased towards short episodes, which would
otherwise finish first and be over-counted. Copy i is seeded with ``seed + i``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from worldrl.errors import ConfigError
from worldrl.evaluation.stats import Summary, summarize

ActFn = Callable[[np.ndarray], np.ndarray]
"""Batched policy: observations ``[num_envs, *obs_shape]`` -> actions ``[num_envs, *action_shape]``."""


@dataclass(frozen=True)
class ReturnStats(Summary):
    """Undiscounted episode returns on the real env: their ``Summary`` (mean, std, 95% CI, median, IQR) and the
    episodes behind it."""

    returns: list[float]
    """Every episode's return, grouped by env copy."""
    lengths: list[int]
    """Every episode's length, in the order of ``returns``."""
    episodes: int = 0
    """Number of episodes."""
    env_id: str = ""
    """The real env."""

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return (
            f"{self.env_id}: return {self.mean:.1f} +- {self.std:.1f} "
            f"(95% CI [{self.ci95_low:.1f}, {self.ci95_high:.1f}], {self.episodes} episodes)"
        )


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Episodes per env copy: ``episodes`` split as evenly as possible, earlier copies taking the remainder."""
    base, extra = divmod(episodes, num_envs)
    return np.array([base + (i < extra) for i in range(num_envs)], dtype=np.int64)


def _make_vector_env(env_id: str, num_envs: int, **env_kwargs: Any) -> gym.vector.VectorEnv:
    same_step = gym.vector.AutoresetMode.SAME_STEP
    try:
        from worldrl.tasks.real_envs import make_real_vector_env
    except ImportError:  # the real-env factory is optional here; plain gymnasium ids work without it
        return gym.make_vec(
            env_id, num_envs, vectorization_mode="sync", vector_kwargs={"autoreset_mode": same_step}, **env_kwargs
        )
    return make_real_vector_env(env_id, num_envs, "sync", autoreset_mode=same_step, **env_kwargs)


def _check_actions(actions: Any, space: gym.Space, num_envs: int) -> np.ndarray:
    actions = np.asarray(actions)
    expected = (num_envs, *space.shape)
    if actions.shape != expected:
        raise ValueError(f"act_fn returned actions of shape {actions.shape}, expected {expected}")
    if np.issubdtype(actions.dtype, np.floating) and not np.all(np.isfinite(actions)):
        raise ValueError("act_fn returned NaN or inf actions")
    return actions.astype(space.dtype, copy=False)


def evaluate_on_real_env(
    act_fn: ActFn,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    num_envs: int = 1,
    max_steps: int = 10_000_000,
    progress: bool = False,
    **env_kwargs: Any,
) -> ReturnStats:
    """Run ``act_fn`` on ``num_envs`` copies of the real ``env_id`` until ``episodes`` episodes have ended."""
    if episodes < 1 or num_envs < 1:
        raise ConfigError(f"episodes and num_envs must be >= 1, got episodes={episodes}, num_envs={num_envs}")
    num_envs = min(num_envs, episodes)  # an extra copy would only run episodes that are thrown away
    quota = episode_quotas(episodes, num_envs)
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    env = _make_vector_env(env_id, num_envs, **env_kwargs)
    try:
        obs, _ = env.reset(seed=[seed + i for i in range(num_envs)])
        running, steps = np.zeros(num_envs), np.zeros(num_envs, dtype=np.int64)
        with tqdm(total=episodes, desc=f"{env_id} episodes", disable=not progress, leave=False) as bar:
            for _ in range(max_steps):
                done_counts = np.array([len(r) for r in returns])
                if np.all(done_counts >= quota):
                    break
                actions = _check_actions(act_fn(obs), env.single_action_space, num_envs)
                obs, reward, terminated, truncated, _ = env.step(actions)
                running += reward
                steps += 1
                for i in np.flatnonzero(terminated | truncated):
                    if len(returns[i]) < quota[i]:
                        returns[i].append(float(running[i]))
                        lengths[i].append(int(steps[i]))
                        bar.update(1)
                    running[i], steps[i] = 0.0, 0
            else:
                raise RuntimeError(f"{env_id}: {episodes} episodes did not finish within max_steps={max_steps}")
    finally:
        env.close()
    flat = [r for per_env in returns for r in per_env]
    s = summarize(flat)
    return ReturnStats(
        **asdict(s),
        returns=flat,
        lengths=[n for per_env in lengths for n in per_env],
        episodes=len(flat),
        env_id=env_id,
    )
