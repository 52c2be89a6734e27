"""Cross-entropy method over action sequences: refit a diagonal Gaussian to the elites, with momentum.

Momentum on the mean and the std follows V-JEPA 2's planner and iCEM: ``new = m * old + (1 - m) * elite_stat``,
which keeps the plan from jumping to a noisy elite set when samples are few.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldrl.agents.planners.common import PlannerConfig, SamplingPlanner
from worldrl.config_loading import require


@dataclass
class CEMConfig(PlannerConfig):
    """CEM settings on top of the shared planner settings."""

    momentum_mean: float = 0.1
    """Weight of the previous mean in each refit (0 = plain CEM)."""
    momentum_std: float = 0.1
    """Weight of the previous std in each refit (0 = plain CEM)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "momentum_mean", 0.0 <= self.momentum_mean < 1.0, "in [0, 1)")
        require(self, "momentum_std", 0.0 <= self.momentum_std < 1.0, "in [0, 1)")


def top_k(candidates: torch.Tensor, returns: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best sequences per environment: ``candidates [B, N, H, A]``, ``returns [B, N]`` -> ``[B, k, ...]``."""
    elite_returns, index = returns.topk(k, dim=1)
    index = index[:, :, None, None].expand(-1, -1, *candidates.shape[2:])
    return candidates.gather(1, index), elite_returns


def cem_update(
    candidates: torch.Tensor,
    returns: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    num_elites: int,
    momentum_mean: float,
    momentum_std: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One CEM refit: ``(mean, std, mean elite return)``; the std is the elites' population std."""
    elites, elite_returns = top_k(candidates, returns, num_elites)
    new_mean = momentum_mean * mean + (1.0 - momentum_mean) * elites.mean(dim=1)
    new_std = momentum_std * std + (1.0 - momentum_std) * elites.std(dim=1, unbiased=False)
    return new_mean, new_std, elite_returns.mean(dim=1)


class CEMPlanner(SamplingPlanner):
    """``CEMPlanner(CEMConfig(...), value_fn=None, policy_prior=None).plan(model, state, prev_mean, generator)``."""

    config: CEMConfig

    def __init__(self, config: CEMConfig | None = None, **kwargs) -> None:
        super().__init__(config or CEMConfig(), **kwargs)

    def refit(self, candidates, returns, mean, std):
        cfg = self.config
        return cem_update(candidates, returns, mean, std, cfg.num_elites, cfg.momentum_mean, cfg.momentum_std)


__all__ = ["CEMConfig", "CEMPlanner", "cem_update", "top_k"]
