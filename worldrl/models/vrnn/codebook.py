"""Vector quantisation of the Perceiver's frame tokens (VQ-VAE style codebook) with dead-code restarts.

Each token is replaced by its nearest codebook entry; gradients pass straight through to the token. The loss
``||sg(e) - q||^2 + commitment * ||e - sg(q)||^2`` moves codes towards the tokens and keeps the tokens close to
their codes. A plain codebook collapses onto a handful of codes; here each code's usage is tracked as an EMA of
its assignment share, and in training every code whose share falls below ``dead_fraction / codebook_size`` is
restarted on a randomly chosen token of the current batch (as in Jukebox / SoundStream).
"""

from __future__ import annotations

import torch
from torch import nn


class VectorQuantizer(nn.Module):
    """``forward(tokens [..., D]) -> (quantised [..., D], indices [...], loss [...])``."""

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        commitment_weight: float = 0.25,
        usage_decay: float = 0.99,
        dead_fraction: float = 0.03,
    ) -> None:
        super().__init__()
        self.commitment_weight, self.usage_decay, self.dead_fraction = commitment_weight, usage_decay, dead_fraction
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim))
        self.register_buffer("usage", torch.full((codebook_size,), 1.0 / codebook_size))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = tokens.reshape(-1, tokens.shape[-1])
        indices = torch.cdist(flat.detach(), self.codebook.detach()).argmin(-1)
        if self.training:
            self._track_and_restart(flat.detach(), indices)
        codes = self.codebook[indices].reshape(tokens.shape)
        loss = (codes - tokens.detach()).pow(2).mean(-1) + self.commitment_weight * (tokens - codes.detach()).pow(
            2
        ).mean(-1)
        quantised = tokens + (codes - tokens).detach()  # straight-through estimator
        return quantised, indices.reshape(tokens.shape[:-1]), loss

    @torch.no_grad()
    def _track_and_restart(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        size = self.codebook.shape[0]
        share = torch.bincount(indices, minlength=size).float() / max(len(indices), 1)
        self.usage.mul_(self.usage_decay).add_((1.0 - self.usage_decay) * share)
        dead = (self.usage < self.dead_fraction / size).nonzero().squeeze(-1)
        if len(dead):
            pick = torch.randint(len(flat), (len(dead),), device=flat.device)
            self.codebook.data[dead] = flat[pick]
            self.usage[dead] = 1.0 / size


def codebook_perplexity(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """exp(entropy of the code usage histogram): how many codes are effectively in use."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    p = counts / counts.sum().clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
