"""Vector quantisation of the Perceiver's frame tokens (VQ-VAE style codebook).

Each token is replaced by its nearest codebook entry; gradients pass straight through to the token. The loss
``||sg(e) - q||^2 + commitment * ||e - sg(q)||^2`` moves codes towards the tokens and keeps the tokens close to
their codes. What it buys here: the Perceiver memory only ever sees a finite vocabulary of frame tokens, so the
tokens predicted during imagination (snapped to the same codebook) come from the distribution it was trained on.
"""

from __future__ import annotations

import torch
from torch import nn


class VectorQuantizer(nn.Module):
    """``forward(tokens [..., D]) -> (quantised [..., D], indices [...], loss [...])``."""

    def __init__(self, codebook_size: int, dim: int, commitment_weight: float = 0.25) -> None:
        super().__init__()
        self.commitment_weight = commitment_weight
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = tokens.reshape(-1, tokens.shape[-1])
        indices = torch.cdist(flat.detach(), self.codebook.detach()).argmin(-1)
        codes = self.codebook[indices].reshape(tokens.shape)
        loss = (codes - tokens.detach()).pow(2).mean(-1) + self.commitment_weight * (tokens - codes.detach()).pow(2).mean(-1)
        quantised = tokens + (codes - tokens).detach()  # straight-through estimator
        return quantised, indices.reshape(tokens.shape[:-1]), loss


def codebook_perplexity(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """exp(entropy of the code usage histogram): how many codes are effectively in use."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    p = counts / counts.sum().clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
