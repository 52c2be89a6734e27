"""Model predictive path integral control: a return-weighted average of sampled sequences.

Weights are ``exp((R - max R) / temperature)`` normalised: subtracting the max first keeps them finite for any
return scale (costs of 1e8 included), and the best sample always has weight exp(0) = 1 before normalising.
As in TD-MPC2 the average runs over the top ``num_elites`` samples and the std adapts; ``num_elites ==
num_samples`` with ``adapt_std=False`` is the classic MPPI of Williams et al. with a fixed noise std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldrl.agents.planners.cem import top_k
from worldrl.agents.planners.common import PlannerConfig, SamplingPlanner
from worldrl.config_loading import require


@dataclass
class MPPIConfig(PlannerConfig):
    """MPPI settings on top of the shared planner settings."""

    temperature: float = 0.5
    """Return scale of the exponential weights: smaller = greedier (weights ~ exp(R / temperature))."""
    noise_std: float | None = None
    """Std of the sampling noise in normalised action units (first iteration; fixed when ``adapt_std`` is off);
    None uses ``max_std``."""
    adapt_std: bool = True
    """Refit the std to the weighted samples each iteration (TD-MPC2); False keeps ``noise_std``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "temperature", self.temperature > 0.0, "> 0")
        if self.noise_std is not None:
            require(self, "noise_std", self.min_std <= self.noise_std <= self.max_std, "in [min_std, max_std]")

    @property
    def init_std(self) -> float:
        return self.max_std if self.noise_std is None else self.noise_std


def mppi_weights(returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised path-integral weights over dim 1 of ``returns [B, K]``; finite for any finite returns."""
    scores = torch.exp((returns - returns.max(dim=1, keepdim=True).values) / temperature)
    return scores / scores.sum(dim=1, keepdim=True)


def mppi_update(
    candidates: torch.Tensor,
    returns: torch.Tensor,
    std: torch.Tensor,
    num_elites: int,
    temperature: float,
    adapt_std: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MPPI refit: weighted ``(mean, std, expected return)`` over the top ``num_elites`` candidates."""
    elites, elite_returns = top_k(candidates, returns, num_elites)
    weights = mppi_weights(elite_returns.double(), temperature).to(candidates.dtype)
    w = weights[:, :, None, None]
    mean = (w * elites).sum(dim=1)
    if adapt_std:
        std = ((w * (elites - mean.unsqueeze(1)) ** 2).sum(dim=1)).sqrt()
    expected = (weights * elite_returns).sum(dim=1)
    return mean, std, expected


class MPPIPlanner(SamplingPlanner):
    """``MPPIPlanner(MPPIConfig(...), value_fn=None, policy_prior=None).plan(model, state, prev_mean, generator)``."""

    config: MPPIConfig

    def __init__(self, config: MPPIConfig | None = None, **kwargs) -> None:
        super().__init__(config or MPPIConfig(), **kwargs)

    def refit(self, candidates, returns, mean, std):
        cfg = self.config
        return mppi_update(candidates, returns, std, cfg.num_elites, cfg.temperature, cfg.adapt_std)


__all__ = ["MPPIConfig", "MPPIPlanner", "mppi_update", "mppi_weights"]
