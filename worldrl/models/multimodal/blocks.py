"""Pre-norm transformer blocks: self-attention (optionally masked), optional cross-attention, MLP."""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.multimodal.attention import CrossModalAttention, MultiheadAttention


class TransformerBlock(nn.Module):
    """``x += SA(norm x)``; ``x += XA(norm x, context)`` when built with ``cross=True``; ``x += MLP(norm x)``."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, drop: float, attn_drop: float, cross: bool = False
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiheadAttention(dim, heads, attn_drop)
        self.cross = CrossModalAttention(dim, heads, attn_drop) if cross else None
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(drop)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, attn_mask=mask))
        if self.cross is not None and context is not None:
            x = self.cross(x, context)
        return x + self.drop(self.mlp(self.norm2(x)))


def block_causal_mask(steps: int, tokens: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask ``[T*S, T*S]`` (or ``[B, 1, T*S, T*S]`` with ``valid [B, T]``): a token of step t sees every
    token of steps <= t, and none of invalid steps (padding before an episode start) except itself."""
    step = torch.arange(steps * tokens) // tokens
    mask = step[:, None] >= step[None, :]
    if valid is None:
        return mask
    step = step.to(valid.device)
    keys = valid[:, step]  # [B, T*S]
    full = mask.to(valid.device)[None] & keys[:, None, :]
    full = full | torch.eye(steps * tokens, dtype=torch.bool, device=valid.device)[None]
    return full[:, None]


__all__ = ["TransformerBlock", "block_causal_mask"]
