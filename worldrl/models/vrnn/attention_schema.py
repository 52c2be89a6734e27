"""Attention schema: slot-attention maps over frame tokens, and a model of how they move.

Slot attention (Locatello et al. 2020, deterministic learned slot initialisation) assigns each of the N frame
tokens (conv feature-map positions for images, observation dimensions for vectors) softly to ``num_slots`` slots;
the maps ``A [B, S, N]`` (softmax over slots) condition the decoder. Only the last refinement iteration is
differentiated (the fixed-point view of slot attention: stabler, and a third of the backward ops). The schema
predicts the maps of step t from h_t (before seeing the frame): this prediction is what conditions the decoder
in imagination. Losses: the attention dynamics cross-entropy (prediction vs the detached maps), a Gram penalty
on overlapping slots and the normalised spatial entropy of each slot (focused slots).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.models.vrnn.ops import log_softmax, softmax
from worldrl.nn.mlp import mlp


class SlotAttention(nn.Module):
    """``forward(tokens [B, N, F]) -> maps [B, S, N]`` (each position's weights over slots sum to one)."""

    def __init__(self, token_features: int, num_slots: int, slot_dim: int, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations
        self.slots_init = nn.Parameter(torch.randn(num_slots, slot_dim) * slot_dim**-0.5)
        self.norm_tokens = nn.LayerNorm(token_features)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.norm_ff = nn.LayerNorm(slot_dim)
        self.to_k = nn.Linear(token_features, slot_dim, bias=False)
        self.to_v = nn.Linear(token_features, slot_dim, bias=False)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.ff = mlp(slot_dim, [2 * slot_dim], slot_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm_tokens(tokens)
        k, v = self.to_k(x), self.to_v(x)
        init = self.slots_init.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        slots = init
        k_t = k.transpose(1, 2) * k.shape[-1] ** -0.5  # [B, D, N], scaled once for every iteration
        for i in range(self.iterations):
            if i == self.iterations - 1 and i > 0:
                # first-order implicit differentiation (Chang et al. 2022): only the last refinement is
                # backpropagated; the learned initial slots get the straight-through gradient (BO-QSA)
                slots = slots.detach() + init - init.detach()
            q = self.to_q(self.norm_slots(slots))
            maps = softmax(torch.bmm(q, k_t), dim=1)  # competition between slots
            weights = maps / maps.sum(-1, keepdim=True).clamp_min(1e-8)
            updates = torch.bmm(weights, v)
            slots = self.gru(updates.reshape(-1, updates.shape[-1]), slots.reshape(-1, slots.shape[-1])).view_as(slots)
            slots = slots + self.ff(self.norm_ff(slots))
        return maps


class AttentionSchema(nn.Module):
    """Slot attention on frames plus a predictor of the maps from the recurrent state."""

    def __init__(
        self, token_features: int, n_tokens: int, hidden_dim: int, num_slots: int, slot_dim: int, iterations: int
    ) -> None:
        super().__init__()
        self.num_slots, self.n_tokens = num_slots, n_tokens
        self.slots = SlotAttention(token_features, num_slots, slot_dim, iterations)
        self.predictor = mlp(hidden_dim, [hidden_dim], num_slots * n_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.slots(tokens)

    def predict_log_maps(self, h: torch.Tensor) -> torch.Tensor:
        """log of the predicted maps ``[..., S, N]`` (log-softmax over slots, like the real maps)."""
        logits = self.predictor(h).reshape(*h.shape[:-1], self.num_slots, self.n_tokens)
        return log_softmax(logits, dim=-2)


def attention_dynamics_loss(log_predicted: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over slots between the real maps (detached target) and the prediction, averaged over N: ``[...]``."""
    return -(maps.detach() * log_predicted).sum(-2).mean(-1)


def slot_distributions(maps: torch.Tensor) -> torch.Tensor:
    """Each slot's map normalised over positions: ``[..., S, N]`` rows summing to one."""
    return maps / maps.sum(-1, keepdim=True).clamp_min(1e-8)


def gram_loss(maps: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal cosine similarity between slot maps ``[..., S, N] -> [...]`` (0 = disjoint slots)."""
    unit = F.normalize(maps, dim=-1)
    gram = unit @ unit.transpose(-1, -2)
    s = maps.shape[-2]
    off = gram * (1.0 - torch.eye(s, device=maps.device, dtype=maps.dtype))
    return off.pow(2).sum((-1, -2)) / max(s * (s - 1), 1)


def spatial_entropy(maps: torch.Tensor) -> torch.Tensor:
    """Entropy of each slot's spatial distribution divided by log N, averaged over slots: ``[...]`` in [0, 1]."""
    p = slot_distributions(maps)
    n = maps.shape[-1]
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    return h.mean(-1) / max(math.log(n), 1e-8)
