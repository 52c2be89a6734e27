"""Known reward and termination rules of real tasks, on batches of predicted transitions.

A learned simulator can score its predicted observations with the real task's own reward instead of a learned
reward head (``WorldModelEnv(reward="task")``), and end episodes with the task's own termination rule. Every
function takes ``(obs [B, D], action [B, A], next_obs [B, D])`` torch tensors and returns ``[B]`` (float rewards
or bool terminations), vectorised, on the inputs' device.

Exactness against the real Gymnasium envs (checked in tests/test_tasks.py):

* Pendulum-v1, InvertedPendulum-v5, Reacher-v5: exact up to float32 rounding (1e-5), and the termination rules
  are exact.
* HalfCheetah-v5, Hopper-v5, Walker2d-v5: the real forward reward is ``(x_after - x_before) / dt``, a finite
  difference of the root x *position*, which the observation excludes. We estimate it from the root x *velocity*
  before and after the step (``step_mean_velocity``): the mean velocity over the step's physics substeps,
  interpolated linearly. Measured against the real envs under random actions, the error is about 0.09 mean /
  0.65 max for HalfCheetah (Euler, 5 substeps) and below 0.03 mean / 0.1 max for Hopper and Walker2d (RK4, 4
  substeps; their observations also clip velocities to +-10); tests/test_tasks.py asserts these bounds. Their
  health terminations are exact, except Hopper's ``|qvel| < 100`` check, which the clipped observation cannot see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

TransitionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TaskFunctions:
    """The reward and termination rules of one real task."""

    task_id: str
    """Gymnasium id of the real env these functions reproduce."""
    reward: TransitionFn
    """``(obs, action, next_obs) -> reward [B]`` (float)."""
    terminated: TransitionFn
    """``(obs, action, next_obs) -> terminated [B]`` (bool)."""
    obs_dim: int
    """Length of the observation vector the functions index into (checked before use)."""
    action_dim: int
    """Length of the action vector."""


_TASKS: dict[str, TaskFunctions] = {}


def register_task(functions: TaskFunctions) -> None:
    """Make a task's functions reachable by its Gymnasium id (overrides an earlier registration)."""
    _TASKS[functions.task_id] = functions


def has_task(task_id: str | None) -> bool:
    return task_id is not None and task_id in _TASKS


def get_task(task_id: str | None) -> TaskFunctions:
    if not has_task(task_id):
        raise KeyError(f"no reward/termination functions for task {task_id!r}; known tasks: {available_tasks()}")
    return _TASKS[task_id]  # type: ignore[index]


def available_tasks() -> list[str]:
    return sorted(_TASKS)


# --------------------------------------------------------------------------- shared math
def never(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """A task without termination (time limits only)."""
    return torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)


def step_mean_velocity(before: torch.Tensor, after: torch.Tensor, weight_after: float) -> torch.Tensor:
    """Mean velocity over a step's substeps from its end points (linear interpolation).

    Semi-implicit Euler moves by each substep's *new* velocity, so over n substeps the mean weights the end
    point by (n + 1) / (2n) (0.6 for n = 5); RK4 integrates the trapezoid, 0.5.
    """
    return weight_after * after + (1.0 - weight_after) * before


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    return x.square().sum(-1)


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    """Wrap angles into [-pi, pi) exactly as Gymnasium's Pendulum does."""
    return ((theta + torch.pi) % (2 * torch.pi)) - torch.pi


def all_finite(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x).all(-1)


# --------------------------------------------------------------------------- Pendulum-v1
PENDULUM_MAX_TORQUE = 2.0


def pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``-(angle^2 + 0.1 thdot^2 + 0.001 u^2)`` of the state *before* the step (obs = cos, sin, thdot)."""
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    torque = action[:, 0].clamp(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
    return -(angle_normalize(theta).square() + 0.1 * obs[:, 2].square() + 0.001 * torque.square())


# --------------------------------------------------------------------------- InvertedPendulum-v5
def inverted_pendulum_terminated(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """The pole angle (obs[1]) leaves [-0.2, 0.2] or the state is not finite."""
    return ~all_finite(next_obs) | (next_obs[:, 1].abs() > 0.2)


def inverted_pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """1 while the pole stays up, 0 on the terminating step."""
    return (~inverted_pendulum_terminated(obs, action, next_obs)).to(obs.dtype)


# --------------------------------------------------------------------------- HalfCheetah-v5
def half_cheetah_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Forward velocity (obs[8] = root x velocity; Euler, 5 substeps) minus 0.1 |a|^2."""
    return 1.0 * step_mean_velocity(obs[:, 8], next_obs[:, 8], 0.6) - 0.1 * squared_norm(action)


# --------------------------------------------------------------------------- Reacher-v5
def reacher_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``-|fingertip - target| - |a|^2``; the vector is next_obs[8:10] (its z part is 0 in the model)."""
    return -torch.linalg.vector_norm(next_obs[:, 8:10], dim=-1) - squared_norm(action)


# --------------------------------------------------------------------------- Hopper-v5 / Walker2d-v5
def _in_open_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return (x > low) & (x < high)


def hopper_healthy(obs: torch.Tensor) -> torch.Tensor:
    """z (obs[0]) > 0.7, |angle| (obs[1]) < 0.2 and qpos[2:], qvel within +-100 (obs[1:], velocities clipped)."""
    state_ok = _in_open_range(obs[:, 1:], -100.0, 100.0).all(-1)
    return state_ok & (obs[:, 0] > 0.7) & _in_open_range(obs[:, 1], -0.2, 0.2)


def walker_healthy(obs: torch.Tensor) -> torch.Tensor:
    """0.8 < z (obs[0]) < 2.0 and -1 < angle (obs[1]) < 1."""
    return _in_open_range(obs[:, 0], 0.8, 2.0) & _in_open_range(obs[:, 1], -1.0, 1.0)


def _locomotion_reward(healthy: Callable[[torch.Tensor], torch.Tensor], velocity_index: int) -> TransitionFn:
    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        alive = healthy(next_obs).to(obs.dtype)
        velocity = step_mean_velocity(obs[:, velocity_index], next_obs[:, velocity_index], 0.5)  # RK4
        return velocity + alive - 1e-3 * squared_norm(action)

    return reward


def _unhealthy(healthy: Callable[[torch.Tensor], torch.Tensor]) -> TransitionFn:
    def terminated(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return ~healthy(next_obs)

    return terminated


for _functions in (
    TaskFunctions("Pendulum-v1", pendulum_reward, never, obs_dim=3, action_dim=1),
    TaskFunctions("InvertedPendulum-v5", inverted_pendulum_reward, inverted_pendulum_terminated, 4, 1),
    TaskFunctions("HalfCheetah-v5", half_cheetah_reward, never, obs_dim=17, action_dim=6),
    TaskFunctions("Reacher-v5", reacher_reward, never, obs_dim=10, action_dim=2),
    TaskFunctions("Hopper-v5", _locomotion_reward(hopper_healthy, 5), _unhealthy(hopper_healthy), 11, 3),
    TaskFunctions("Walker2d-v5", _locomotion_reward(walker_healthy, 8), _unhealthy(walker_healthy), 17, 6),
):
    register_task(_functions)
