"""Where a planner's per-step rewards and episode ends come from: the world model's heads or the real task's rules.

PETS and most MPC work score imagined trajectories with the task's KNOWN reward (and termination) applied to the
model's predicted observations, and learn only the dynamics. ``reward="task"`` / ``termination="task"`` do that
with the functions of ``worldrl.envs.tasks`` (checked against the real envs there); ``"model"`` uses the model's
own reward and terminal heads (the only choice for tasks without registered functions or for pixel models);
``termination="none"`` never ends an imagined episode.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

REWARD_SOURCES = ("model", "task")
TERMINATION_SOURCES = ("model", "task", "none")


def needs_task_functions(reward: str, termination: str) -> bool:
    return reward == "task" or termination == "task"


def check_step_scores(model: Any, reward: str, termination: str) -> None:
    """``ValueError`` when ``model`` cannot be scored as asked (unknown task, no decodable flat observations)."""
    if not needs_task_functions(reward, termination):
        return
    from worldrl.envs.tasks import available_tasks, get_task, has_task

    task = model.task
    if not has_task(task.task_id):
        raise ValueError(f"reward/termination='task' needs the task's functions, but none are registered for "
                         f"{task.task_id!r} (known: {available_tasks()}); use 'model'")
    if not getattr(model.capabilities, "can_decode", False) or tuple(task.obs_shape) != (get_task(task.task_id).obs_dim,):
        raise ValueError(f"reward/termination='task' applies {task.task_id}'s functions to decoded state vectors of "
                         f"length {get_task(task.task_id).obs_dim}; this model observes {tuple(task.obs_shape)} "
                         f"(can_decode={getattr(model.capabilities, 'can_decode', False)}); use 'model'")


def step_scores(
    model: Any, start: TensorDict, states: TensorDict, actions: torch.Tensor, reward: str, termination: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards and continuation flags ``[N, H]`` of rollouts ``states [N, H]`` from ``start [N]`` under
    ``actions [N, H, A]`` (model units)."""
    flat, horizon = actions.shape[:2]
    if needs_task_functions(reward, termination):
        from worldrl.envs.tasks import get_task

        functions = get_task(model.task.task_id)
        after = model.decode(states)
        before = torch.cat([model.decode(start)[:, None].to(after.dtype), after[:, :-1]], dim=1)
        transition = (before.reshape(flat * horizon, -1), actions.reshape(flat * horizon, -1).to(after.dtype),
                      after.reshape(flat * horizon, -1))
    if reward == "task":
        rewards = functions.reward(*transition).reshape(flat, horizon)
    else:
        rewards = _vector(model.reward(states), flat * horizon, "model.reward").reshape(flat, horizon)
    if termination == "none":
        continues = torch.ones_like(rewards)
    elif termination == "task":
        continues = 1.0 - functions.terminated(*transition).to(rewards.dtype).reshape(flat, horizon)
    else:
        continues = 1.0 - _vector(model.terminal(states), flat * horizon, "model.terminal").reshape(flat, horizon)
    return rewards.float(), continues.float()


def _vector(x: torch.Tensor, n: int, what: str) -> torch.Tensor:
    from worldrl.agents.planners.common import as_vector

    return as_vector(x, n, what)


__all__ = ["REWARD_SOURCES", "TERMINATION_SOURCES", "check_step_scores", "step_scores"]
