"""Per-step rewards and continuation flags of imagined rollouts, for planners.

Which source scores a step (the model's heads, the real task's rules on predicted observations as PETS plans, or
a latent goal distance) is decided in one place, ``worldrl.models.step_scoring``; this module only lays rollouts
out as the flat transition batches it scores and back as ``[N, H]``.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from worldrl.models.step_scoring import REWARD_SOURCES, TERMINATION_SOURCES, StepScoring


def planner_scoring(model: Any, reward: str, termination: str) -> StepScoring:
    """``StepScoring`` for a planner. The model's own heads need no checks (any ``PlanningModel`` has them, a
    model without a terminal head reports probability 0); the task's rules and goals are validated."""
    if reward == "model" and termination in ("model", "none"):
        return StepScoring(model, reward, termination, None)
    if termination == "model" and not model.capabilities.predicts_terminal:
        termination = "none"
    return StepScoring.resolve(model, reward, termination)


def check_step_scores(model: Any, reward: str, termination: str) -> None:
    """``ValueError`` when ``model`` cannot be scored as asked (unknown task, no decodable flat observations)."""
    planner_scoring(model, reward, termination)


def step_scores(
    model: Any,
    start: TensorDict,
    states: TensorDict,
    actions: torch.Tensor,
    reward: str,
    termination: str,
    goal: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards and continuation flags ``[N, H]`` of rollouts ``states [N, H]`` from ``start [N]`` under
    ``actions [N, H, A]`` (model units); ``goal [N, D]`` is the goal embedding for ``reward="goal"``."""
    scoring = planner_scoring(model, reward, termination)
    flat, horizon = actions.shape[:2]
    before = after = None
    if scoring.needs_observations:
        after = model.decode(states)
        before = torch.cat([model.decode(start)[:, None].to(after.dtype), after[:, :-1]], dim=1)
        before, after = before.reshape(flat * horizon, -1), after.reshape(flat * horizon, -1)
        actions = actions.to(after.dtype)
    flat_actions = actions.reshape(flat * horizon, -1)
    flat_states = changing_leaves(states).reshape(flat * horizon)
    goals = None if goal is None else goal.repeat_interleave(horizon, dim=0)
    rewards = _vector(scoring.reward(before, flat_actions, after, flat_states, goals), flat * horizon, "reward")
    ends = scoring.termination_probability(before, flat_actions, after, flat_states)
    continues = 1.0 - _vector(ends, flat * horizon, "terminal").to(rewards.dtype)
    return rewards.reshape(flat, horizon).float(), continues.reshape(flat, horizon).float()


def changing_leaves(states: TensorDict) -> TensorDict:
    """Rollout states ``[N, H]`` without the leaves every step shares (``stack_states`` keeps those as one expanded
    view, like the vrnn's last real frame): they are carried, not scored, and flattening ``[N, H]`` would copy
    them once per step (2.8 GB for a plan of 12,800 candidates over 8 steps from 96x96 frames)."""
    shared = [
        key
        for key, leaf in states.items(include_nested=True, leaves_only=True)
        if leaf.dim() > 1 and leaf.shape[1] > 1 and leaf.stride(1) == 0
    ]
    return states.exclude(*shared) if shared else states


def _vector(x: torch.Tensor, n: int, what: str) -> torch.Tensor:
    from worldrl.agents.planners.common import as_vector

    return as_vector(x, n, what)


__all__ = ["REWARD_SOURCES", "TERMINATION_SOURCES", "check_step_scores", "planner_scoring", "step_scores"]
