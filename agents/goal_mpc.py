"""Planning toward a goal observation (a goal image) in a model's latent space, as V-JEPA 2-AC plans.

``GoalMPCAgent(model, goal=goal_obs)`` embeds the goal with ``model.embed`` and runs CEM (or MPPI) with
``reward="goal"``: each candidate plan scores minus the latent distance (``model.distance``: V-JEPA 2's L1 energy)
between the imagined states and the goal embedding, summed over the horizon (with ``horizon=1`` exactly the
energy after the plan). Observations may be keyed (camera + state): a mapping per step, as the real env gives
them. ``set_goal`` changes the goal between episodes; registered as ``mpc-goal``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.agents.mpc import MPCAgent
from worldrl.agents.planners import PlanResult
from worldrl.agents.protocol import register_agent, to_action_array
from worldrl.errors import ConfigError
from worldrl.models import observations as keyed


class GoalMPCAgent(MPCAgent):
    """MPC toward ``goal`` (one observation, or one per environment) in latent space."""

    def __init__(self, model: Any, goal: Any = None, planner: str = "cem", **kwargs: Any) -> None:
        kwargs.setdefault("reward", "goal")
        kwargs.setdefault("termination", "none")
        if kwargs["reward"] != "goal":
            raise ConfigError(f"mpc-goal plans with reward='goal', got reward={kwargs['reward']!r}")
        super().__init__(model, planner=planner, **kwargs)
        self.goal: torch.Tensor | None = None
        if goal is not None:
            self.set_goal(goal)

    def set_goal(self, goal: Any) -> torch.Tensor:
        """Embed one goal observation (or a batch, one per environment); returns the embeddings ``[B, D]``."""
        task = self.model.task
        try:
            obs = keyed.to_torch(goal, task, self.device, batch_dims=0, what="goal")
            obs = obs.unsqueeze(0)
        except ValueError:
            obs = keyed.to_torch(goal, task, self.device, batch_dims=1, what="goal")
        with torch.no_grad():
            self.goal = self.model.embed(obs)
        return self.goal

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        if self.goal is None:
            raise ConfigError("mpc-goal needs a goal: GoalMPCAgent(model, goal=obs) or agent.set_goal(obs)")
        task = self.model.task
        try:
            tensor, single = keyed.to_torch(obs, task, self.device, batch_dims=0).unsqueeze(0), True
        except ValueError:
            tensor, single = keyed.to_torch(obs, task, self.device, batch_dims=1), False
        state = self.history.encode(tensor)
        result = self.plan(state)
        self.history.record_action(result.action)
        return to_action_array(result.action, self.space, single)

    def plan(self, state: TensorDict) -> PlanResult:
        batch = state.batch_size[0]
        goal = self.goal if self.goal.shape[0] == batch else self.goal.expand(batch, -1)
        prev = (
            self.prev_mean
            if self.warm_start and self.prev_mean is not None and self.prev_mean.shape[0] == batch
            else None
        )
        result = self.planner.plan(self.model, state, prev, self.generator, goal=goal)
        self.prev_mean = result.mean.clone()
        self.last_result = result
        return result

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "agent": "mpc-goal"}


register_agent("mpc-goal", functools.partial(GoalMPCAgent, planner="cem"))

__all__ = ["GoalMPCAgent"]
