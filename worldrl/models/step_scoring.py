"""Where an imagined step's reward and episode end come from: the model's heads, the task's rules, or a goal.

The one home of this choice, shared by the environments (``worldrl.envs``) and the planners
(``worldrl.agents.planners``):

* reward ``"model"``: the learned reward head; ``"task"``: the real task's known reward function applied to the
  predicted observations, as PETS plans (``worldrl.tasks.rules``, checked against the real envs there);
  ``"goal"``: minus the model's latent ``distance`` between the imagined state's embedding and a goal
  observation's embedding (latent-only families such as V-JEPA 2 plan this way).
* termination ``"model"`` (the learned terminal probability), ``"task"`` (the task's rule) or ``"none"``.

``None`` picks automatically from what the model can do (``Capabilities``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

REWARD_SOURCES = ("model", "task", "goal")
TERMINATION_SOURCES = ("model", "task", "none")


@dataclass
class StepScoring:
    """A resolved (reward source, termination source) pair for one model, validated once."""

    model: Any
    reward_source: str
    termination_source: str
    task_functions: Any | None
    """The task's ``TaskFunctions`` when a source is ``"task"``."""

    @classmethod
    def resolve(cls, model: Any, reward: str | None = None, termination: str | None = None) -> StepScoring:
        """Pick defaults from the model's capabilities and refuse combinations it cannot serve (``ValueError``)."""
        from worldrl.tasks.rules import has_task

        caps = model.capabilities
        if reward is not None and reward not in REWARD_SOURCES:
            raise ValueError(f"reward must be one of {REWARD_SOURCES} (or None for automatic), got {reward!r}")
        if termination is not None and termination not in TERMINATION_SOURCES:
            raise ValueError(f"termination must be one of {TERMINATION_SOURCES} (or None), got {termination!r}")
        reward = reward or ("model" if caps.predicts_reward else "task" if caps.can_decode else "goal")
        default_end = "task" if has_task(model.task.task_id) and caps.can_decode else "none"
        termination = termination or ("model" if caps.predicts_terminal else default_end)
        name = type(model).__name__
        if reward == "model" and not caps.predicts_reward:
            raise ValueError(f"{name} does not predict rewards: use reward='task' or reward='goal'")
        if termination == "model" and not caps.predicts_terminal:
            raise ValueError(f"{name} does not predict termination: use termination='task' or 'none'")
        functions = task_functions(model) if "task" in (reward, termination) else None
        return cls(model, reward, termination, functions)

    @property
    def needs_observations(self) -> bool:
        """Whether scoring reads decoded observations (the task's rules)."""
        return self.task_functions is not None

    def reward(
        self, obs: Any, action: torch.Tensor, next_obs: Any, next_state: TensorDict, goal: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Rewards ``[N]`` of transitions (flat batches); ``goal [N, D]`` is the goal embedding for ``"goal"``."""
        if self.reward_source == "task":
            return self.task_functions.reward(obs, action, next_obs).reshape(-1)
        if self.reward_source == "goal":
            if goal is None:
                raise ValueError(
                    "reward='goal' needs a goal: env.reset(options={'goal': obs}) or goal= at construction"
                )
            return -self.model.distance(self.model.state_embedding(next_state), goal).reshape(-1)
        return self.model.reward(next_state).reshape(-1)

    def termination_probability(
        self, obs: Any, action: torch.Tensor, next_obs: Any, next_state: TensorDict
    ) -> torch.Tensor:
        """Probability ``[N]`` that each transition ended the episode (the task's rule gives 0 or 1)."""
        if self.termination_source == "task":
            return self.task_functions.terminated(obs, action, next_obs).reshape(-1).float()
        if self.termination_source == "model":
            return self.model.terminal(next_state).reshape(-1).float()
        return torch.zeros(next_state.batch_size[0], device=action.device)


def task_functions(model: Any) -> Any:
    """The real task's rules for ``model``'s task, checked against what the model decodes (``ValueError`` if unusable)."""
    from worldrl.tasks.rules import available_tasks, get_task, has_task

    task = model.task
    if not has_task(task.task_id):
        raise ValueError(
            f"reward/termination='task' needs the task's functions, but none are registered for "
            f"{task.task_id!r} (known: {available_tasks()}); use 'model'"
        )
    functions = get_task(task.task_id)
    can_decode = model.capabilities.can_decode
    if not can_decode or task.is_keyed or tuple(task.obs_shape) != (functions.obs_dim,):
        shape = task.obs_keys if task.is_keyed else tuple(task.obs_shape)
        raise ValueError(
            f"reward/termination='task' applies {task.task_id}'s functions to decoded state vectors of "
            f"length {functions.obs_dim}; this model observes {shape} (can_decode={can_decode}); use 'model'"
        )
    if task.action_dim != functions.action_dim:
        raise ValueError(
            f"task functions of {task.task_id!r} expect {functions.action_dim} action dims, "
            f"the model has {task.action_dim}"
        )
    return functions


__all__ = ["REWARD_SOURCES", "TERMINATION_SOURCES", "StepScoring", "task_functions"]
