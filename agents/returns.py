"""Return estimators and return normalisation as pure functions (plus one tiny buffer module).

Time alignment follows the world-model protocol: for an imagined trajectory ``s_0 .. s_H`` driven by actions
``a_0 .. a_{H-1}``, ``rewards[:, t]`` is ``reward(s_{t+1})`` and ``continues[:, t]`` is ``1 - terminal(s_{t+1})``,
the probability that the transition ``t`` did not end the episode.
"""

from __future__ import annotations

import torch
from torch import nn


def alive_weights(continues: torch.Tensor) -> torch.Tensor:
    """Probability that the episode is still running *before* each transition: ``[B, H] -> [B, H + 1]``.

    ``out[:, 0] = 1`` and ``out[:, t] = prod_{k < t} continues[:, k]``; ``out[:, H]`` weighs a bootstrap value.
    """
    ones = torch.ones_like(continues[..., :1])
    return torch.cat([ones, continues], dim=-1).cumprod(dim=-1)


def discounted_return(
    rewards: torch.Tensor,
    continues: torch.Tensor,
    discount: float,
    terminal_value: torch.Tensor | None = None,
) -> torch.Tensor:
    """Termination-aware discounted return of whole sequences: ``[..., H] -> [...]``.

    ``sum_t discount^t * alive_t * r_t + discount^H * alive_H * V(s_H)``: the reward of the transition that
    terminates still counts, nothing after it does (in expectation over the terminal probabilities).
    """
    horizon = rewards.shape[-1]
    powers = discount ** torch.arange(horizon + 1, device=rewards.device, dtype=rewards.dtype)
    alive = alive_weights(continues)
    total = (powers[:horizon] * alive[..., :horizon] * rewards).sum(dim=-1)
    if terminal_value is not None:
        total = total + powers[horizon] * alive[..., horizon] * terminal_value
    return total


def lambda_returns(
    rewards: torch.Tensor,
    continues: torch.Tensor,
    values: torch.Tensor,
    discount: float,
    lambda_: float,
) -> torch.Tensor:
    """TD(lambda) returns ``R_t`` for ``t < H`` (DreamerV1-3): ``rewards, continues [B, H]``, ``values [B, H + 1]``.

    ``R_H = v_H`` and ``R_t = r_t + discount * c_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1})``.
    """
    horizon = rewards.shape[-1]
    if values.shape[-1] != horizon + 1:
        raise ValueError(f"values must have horizon + 1 = {horizon + 1} steps, got shape {tuple(values.shape)}")
    returns = []
    last = values[..., horizon]
    for t in reversed(range(horizon)):
        last = rewards[..., t] + discount * continues[..., t] * ((1.0 - lambda_) * values[..., t + 1] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], dim=-1)


def ema_percentile_range(
    returns: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    decay: float,
    percentiles: tuple[float, float] = (0.05, 0.95),
) -> tuple[torch.Tensor, torch.Tensor]:
    """EMA update of the ``percentiles`` of a batch of returns (DreamerV3's return range): new ``(low, high)``."""
    flat = returns.detach().float().flatten()
    q = torch.quantile(flat, torch.tensor(percentiles, device=flat.device, dtype=flat.dtype))
    return decay * low + (1.0 - decay) * q[0], decay * high + (1.0 - decay) * q[1]


def return_scale(low: torch.Tensor, high: torch.Tensor, floor: float = 1.0) -> torch.Tensor:
    """``max(floor, high - low)``: divide returns by it so large returns shrink and small ones are not amplified."""
    return torch.clamp(high - low, min=floor)


class ReturnNormalizer(nn.Module):
    """Holds the EMA percentile range as buffers (so it travels in safetensors); math lives in the functions above."""

    def __init__(self, decay: float = 0.99, percentiles: tuple[float, float] = (0.05, 0.95), floor: float = 1.0):
        super().__init__()
        self.decay = decay
        self.percentiles = percentiles
        self.floor = floor
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold a batch of returns into the range and return the current scale ``S``."""
        # The first batch sets the range directly; an EMA started at zero would understate it for ~1/(1-decay) steps.
        decay = self.decay if bool(self.initialised) else 0.0
        low, high = ema_percentile_range(returns, self.low, self.high, decay, self.percentiles)
        self.low.copy_(low)
        self.high.copy_(high)
        self.initialised.fill_(True)
        return self.scale()

    def scale(self) -> torch.Tensor:
        return return_scale(self.low, self.high, self.floor)


__all__ = [
    "ReturnNormalizer",
    "alive_weights",
    "discounted_return",
    "ema_percentile_range",
    "lambda_returns",
    "return_scale",
]
