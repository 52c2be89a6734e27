"""The document's attention components: ``MultiheadAttention`` (separate key/value widths) and
``CrossModalAttention`` (one modality queries another, with a softmax temperature).

Both run ``torch.nn.functional.scaled_dot_product_attention`` (flash/memory-efficient kernels where available).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.errors import ModelConfigurationError


class MultiheadAttention(nn.Module):
    """Multi-head attention with queries of width ``embed_dim`` and keys/values of widths ``kdim``/``vdim``.

    ``forward(query [B, Lq, E], key [B, Lk, kdim], value [B, Lk, vdim], attn_mask=None, scale=None)`` ->
    ``[B, Lq, E]``. ``attn_mask`` is a bool mask ``[Lq, Lk]`` or ``[B, 1, Lq, Lk]`` (True = may attend).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ModelConfigurationError(f"num_heads={num_heads} must divide embed_dim={embed_dim}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        scale: float | None = None,
    ) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop, scale=scale)
        return self.out_proj(out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.embed_dim))


class CrossModalAttention(nn.Module):
    """Tokens of one modality attend to another's, pre-norm and residual: ``x + attn(norm(x), norm(context))``.

    ``temperature`` divides the attention logits (> 1 spreads attention over more tokens of the other modality,
    < 1 sharpens it).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ModelConfigurationError(f"CrossModalAttention temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.norm_q, self.norm_kv = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)
        self.attn = MultiheadAttention(embed_dim, num_heads, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        head_dim = self.attn.embed_dim // self.attn.num_heads
        scale = 1.0 / (head_dim**0.5 * self.temperature)
        kv = self.norm_kv(context)
        return x + self.attn(self.norm_q(x), kv, kv, attn_mask=attn_mask, scale=scale)


__all__ = ["CrossModalAttention", "MultiheadAttention"]
