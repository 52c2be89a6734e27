"""How far imagination may be trusted: ensemble disagreement and the data's reward range, as pure functions.

Learners that train on imagined transitions (the imagination actor-critic, MBPO) exploit model errors wherever
the model is wrong, and it is most wrong far from the data. Two guards, both computed from what the model and the
replay buffer already know (no task rules):

* **disagreement penalty** (MOPO / M2AC): ``r - penalty * u(s, a)`` where ``u`` is the largest std, across the
  ensemble's elite members, of their predicted mean targets in the model's normalised units (1 = one data std).
  Members agree where they saw data and diverge off it, so ``u`` grows exactly where imagination leaves the data.
* **reward range** (a cut-off): imagined rewards are clipped to the range of real rewards in the replay buffer,
  widened by ``margin`` times its width. A model can then never promise a reward no real step ever paid (or
  threaten one no real step ever cost), which is what made Dreamer collapse on InvertedPendulum-v5 (imagined
  -9.7 per step where every real step pays +1).

Families register how to measure their disagreement in ``DISAGREEMENT``; a family without an entry reports None
and only the reward range applies to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.models.ensemble.model import EnsembleWorldModel

DisagreementFn = Callable[[Any, TensorDict, torch.Tensor], torch.Tensor]
"""``(model, state [N], action [N, A]) -> u [N]``: disagreement of the transition from ``state`` under ``action``."""


def ensemble_disagreement(model: EnsembleWorldModel, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
    """Largest std across the elite members' predicted means (normalised targets: obs delta and reward)."""
    mean, _, _ = model.predict_state(state, action, model.elite_idx)
    if mean.shape[0] < 2:
        return torch.zeros(mean.shape[1], device=mean.device, dtype=mean.dtype)
    return mean.std(dim=0, unbiased=False).amax(dim=-1)


DISAGREEMENT: dict[type, DisagreementFn] = {EnsembleWorldModel: ensemble_disagreement}
"""Families that can say how much their members disagree, by model class."""


def disagreement_fn(model: Any) -> DisagreementFn | None:
    """The model's disagreement measure (by its class or a base class), or None when its family has none."""
    for cls in type(model).__mro__:
        if cls in DISAGREEMENT:
            return DISAGREEMENT[cls]
    return None


@torch.no_grad()
def observation_disagreement(model: Any, fn: DisagreementFn, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """``u [N]`` of transitions given as observations ``[N, *obs_shape]`` and actions ``[N, A]`` (each observation
    encoded as an episode start: exact for Markov families such as the ensemble, the ones that measure ``u``)."""
    device = model.device
    obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device)
    batch = obs_t.shape[0]
    state = model.observe_last(
        obs_t[:, None],
        torch.zeros(batch, 1, model.task.action_dim, device=device),
        torch.ones(batch, 1, dtype=torch.bool, device=device),
    )
    action_t = torch.as_tensor(np.asarray(action), dtype=torch.float32, device=device).reshape(batch, -1)
    return fn(model, state, action_t).detach().cpu().numpy()


def penalised_reward(reward: torch.Tensor, uncertainty: torch.Tensor | None, penalty: float) -> torch.Tensor:
    """MOPO's ``r - penalty * u``; unchanged without an uncertainty estimate or with ``penalty == 0``."""
    if uncertainty is None or penalty == 0.0:
        return reward
    return reward - penalty * uncertainty.reshape(reward.shape).to(reward)


def data_reward_bounds(rewards: np.ndarray, margin: float) -> tuple[float, float] | None:
    """``[min - margin * width, max + margin * width]`` of the real rewards; None when there are none yet."""
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    rewards = rewards[np.isfinite(rewards)]
    if rewards.size == 0:
        return None
    low, high = float(rewards.min()), float(rewards.max())
    width = high - low
    return low - margin * width, high + margin * width


def clip_reward(reward: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    """Rewards clipped into ``bounds`` (no gradient pushes a clipped reward further out); unchanged for None."""
    return reward if bounds is None else reward.clamp(bounds[0], bounds[1])


__all__ = [
    "DISAGREEMENT",
    "DisagreementFn",
    "clip_reward",
    "data_reward_bounds",
    "disagreement_fn",
    "ensemble_disagreement",
    "observation_disagreement",
    "penalised_reward",
]
