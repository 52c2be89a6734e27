"""The learned simulator next to the real env: same start observation, same actions, step by step.

This is the check a user runs first ("does `gym.make("WorldModel-v0")` move like the real thing?"), done
through the public env APIs only: the real env via ``gymnasium.make``, the learned one via
``gym.make("WorldModel-v0", model=..., options={"observation": real_start})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from worldrl.evaluation.fidelity import TrajectoryExamples
from worldrl.evaluation.plots import plot_trajectories
from worldrl.models.base import WorldModel


@dataclass
class HorizonError:
    horizon: int
    rmse: np.ndarray
    """[obs_dim] RMSE at this step over rollouts, in the task's units."""
    nrmse: float
    """Mean over dims of RMSE divided by the std of the real observations (all steps, all rollouts)."""
    reward_rmse: float


@dataclass
class SideBySide:
    real_obs: np.ndarray
    """[n, H+1, D] real observations; index 0 is the shared start."""
    imagined_obs: np.ndarray
    """[n, H+1, D] the learned env's observations under the same actions."""
    real_reward: np.ndarray
    """[n, H] real rewards."""
    imagined_reward: np.ndarray
    """[n, H] the learned env's rewards."""
    actions: np.ndarray
    """[n, H, A] the actions both received."""
    task_id: str

    def errors_at(self, horizon: int) -> HorizonError:
        if not 1 <= horizon < self.real_obs.shape[1]:
            raise ValueError(f"horizon must be in [1, {self.real_obs.shape[1] - 1}], got {horizon}")
        diff = self.imagined_obs[:, horizon] - self.real_obs[:, horizon]
        rmse = np.sqrt(np.mean(diff**2, axis=0))
        scale = np.maximum(self.real_obs.reshape(-1, self.real_obs.shape[-1]).std(0), 1e-6)
        rdiff = self.imagined_reward[:, horizon - 1] - self.real_reward[:, horizon - 1]
        return HorizonError(horizon, rmse, float(np.mean(rmse / scale)), float(np.sqrt(np.mean(rdiff**2))))


def imagine_vs_real(
    model: WorldModel, env_id: str, horizon: int = 50, num_rollouts: int = 8, seed: int = 0
) -> SideBySide:
    """Roll the real env and the learned env from the same starts under the same uniformly random actions.

    Episodes that end early in the real env keep their last observation (and zero reward) for the rest of the
    horizon, so every rollout has ``horizon`` steps; pick a task and horizon where that is rare.
    """
    real = gym.make(env_id)
    learned = gym.make("WorldModel-v0", model=model, time_limit=None)
    model.task.check_compatible(real.observation_space, real.action_space)
    space = real.action_space
    space.seed(seed)
    shape = (num_rollouts, horizon + 1, *real.observation_space.shape)
    real_obs, imag_obs = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    real_rew, imag_rew = np.zeros((num_rollouts, horizon)), np.zeros((num_rollouts, horizon))
    actions = np.stack([[space.sample() for _ in range(horizon)] for _ in range(num_rollouts)])
    try:
        for i in range(num_rollouts):
            obs, _ = real.reset(seed=seed + i)
            imagined, _ = learned.reset(seed=seed + i, options={"observation": obs})
            real_obs[i, 0], imag_obs[i, 0] = obs, imagined
            done = False
            for t in range(horizon):
                if not done:
                    obs, r, term, trunc, _ = real.step(actions[i, t])
                    real_rew[i, t], done = r, term or trunc
                real_obs[i, t + 1] = obs
                imagined, r_hat, *_ = learned.step(actions[i, t])
                imag_obs[i, t + 1], imag_rew[i, t] = imagined, r_hat
    finally:
        real.close()
        learned.close()
    return SideBySide(real_obs, imag_obs, real_rew, imag_rew, actions, env_id)


def plot_imagined_vs_real(comparison: SideBySide, path: str | Path) -> Path:
    n, steps = comparison.real_obs.shape[:2]
    examples = TrajectoryExamples(
        real=comparison.real_obs,
        imagined=comparison.imagined_obs,
        length=np.full(n, steps - 1),
        episode=np.arange(n),
        start=np.zeros(n, dtype=np.int64),
    )
    title = f"{comparison.task_id}: real (solid) vs imagined in WorldModel-v0 (dashed), same actions"
    return plot_trajectories(examples, path, title=title)
