"""Batched ensemble layers: M independent MLPs evaluated as one ``baddbmm`` per layer.

Weights are stored as ``[M, in, out]`` so the whole ensemble is one kernel launch per layer, which is what
makes large planning batches fast. ``members`` selects a subset (or a reordering) of the M networks, so a
caller can run only the elites, or only the members some batch rows were assigned to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """``y[m] = x[m] @ W[m] + b[m]`` for each member m; ``x [M', N, in] -> [M', N, out]``."""

    def __init__(self, num_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.num_members, self.in_features, self.out_features = num_members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, out_features))
        self._selected: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # MBPO's init: truncated normal with std 1 / (2 sqrt(fan_in)), zero bias.
        std = 1.0 / (2.0 * math.sqrt(self.in_features))
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self._select(members)
        if x.shape[0] != weight.shape[0]:
            raise ValueError(f"EnsembleLinear got {x.shape[0]} input groups for {weight.shape[0]} members")
        return torch.baddbmm(bias, x, weight)

    def _select(self, members: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights of ``members``. Gathering them costs more than the matmul at small batch, so in
        inference (no grad) the gathered copy is cached until the member ids or the parameters change
        (an optimizer step or ``load_state_dict`` bumps the parameters' version counters)."""
        if members is None:
            return self.weight, self.bias
        if torch.is_grad_enabled():
            return self.weight[members], self.bias[members]
        key = (tuple(members.tolist()), self.weight._version, self.bias._version, self.weight.device, self.weight.dtype)
        if self._selected is None or self._selected[0] != key:
            self._selected = (key, self.weight[members], self.bias[members])
        return self._selected[1], self._selected[2]

    def extra_repr(self) -> str:
        return f"num_members={self.num_members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Module):
    """M MLPs ``in -> [EnsembleLinear act] * len(hidden) -> EnsembleLinear -> out`` run in one batch."""

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        activation: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(num_members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation()

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, members)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x

    def weight_l2(self, decays: Sequence[float]) -> torch.Tensor:
        """MBPO's per-layer penalty ``sum_i decay_i * ||W_i||^2 / 2`` (summed over members)."""
        terms = [d * 0.5 * layer.weight.pow(2).sum() for d, layer in zip(decays, self.layers)]
        return torch.stack(terms).sum()


def soft_clamp(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Smoothly keep ``x`` inside ``[low, high]`` (PETS log-variance bounds); gradients reach the bounds."""
    x = high - F.softplus(high - x)
    return low + F.softplus(x - low)


def forward_routed(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, members: torch.Tensor
) -> torch.Tensor:
    """Evaluate row n of ``x [N, in]`` with member ``members[n]`` only: ``fn(x [U, G, in], ids [U]) -> [U, G, out]``.

    Rows are grouped by member and padded to the largest group, so the cost is about ``U * max_group`` rows
    instead of ``M * N`` for running every member on every row (trajectory sampling at large batch).
    """
    uniq, inverse, counts = torch.unique(members, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    group = inverse[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(members.numel(), device=members.device) - starts[group]
    padded = x.new_zeros(uniq.numel(), int(counts.max()), x.shape[-1])
    padded[group, slot] = x[order]
    out = fn(padded, uniq)
    result = out.new_empty(x.shape[0], out.shape[-1])
    result[order] = out[group, slot]
    return result
