"""Causal Perceiver IO context: a fixed-size latent array that reads the frames one at a time.

At step t the latent array M (``num_latents x context_dim``) cross-attends to the keys ``[M_{t-1}; tokens_t]``
(its own previous rows plus the N tokens of frame t) and passes through an MLP: M_t summarises frames <= t and
never sees a later frame, so the context is causal by construction. The IO read-out is one learned query
attending to M_t, which gives c_t. Because M is fixed-size it is carried in the world-model state, and
imagination advances it with predicted frame tokens exactly as observation advances it with real ones.
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.nn.mlp import mlp


class CausalPerceiver(nn.Module):
    """``initial(B) -> M_0``; ``step(M_{t-1}, tokens_t [B, N, D]) -> (M_t, c_t [B, D])``."""

    def __init__(self, dim: int, num_latents: int, num_heads: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.query = nn.Parameter(torch.randn(1, dim) * 0.02)
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.ff = mlp(dim, [2 * dim], dim)
        self.norm_read = nn.LayerNorm(dim)
        self.read = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def initial(self, batch_size: int) -> torch.Tensor:
        return self.latents.unsqueeze(0).expand(batch_size, -1, -1)

    def context(self, memory: torch.Tensor) -> torch.Tensor:
        """The IO decoder: a learned query reads the latent array into one context vector."""
        kv = self.norm_read(memory)
        query = self.query.unsqueeze(0).expand(memory.shape[0], -1, -1)
        return self.read(query, kv, kv, need_weights=False)[0].squeeze(1)

    def step(self, memory: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.norm_latents(memory)
        kv = torch.cat([q, self.norm_tokens(tokens)], dim=1)
        memory = memory + self.cross(q, kv, kv, need_weights=False)[0]
        memory = memory + self.ff(self.norm_mlp(memory))
        return memory, self.context(memory)
