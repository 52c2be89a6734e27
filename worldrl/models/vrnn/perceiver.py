"""Causal Perceiver IO context: a small latent array reads the tokens of the last W frames.

For step t the latent array (``num_latents x dim``, learned) cross-attends to the tokens of frames
``t-W+1 .. t`` of the same episode (each token tagged with a learned embedding of its frame's age), passes
through an MLP, and one learned query reads it into the context c_t (the IO decoder). c_t never sees a frame
after t, so the context is causal by construction, and because every step's window is known up front, the
context of a whole training sequence is one batched call over ``B*T`` windows (no loop over time).
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.vrnn.ops import softmax
from worldrl.nn.mlp import mlp


def causal_windows(tokens: torch.Tensor, is_first: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack each step's last ``window`` frames: ``tokens [B, T, N, D]`` -> ``[B, T, W, N, D]`` and ``valid [B, T, W]``.

    Slot ``w`` holds frame ``t - w`` (age w). It is valid when that frame lies in the sequence and in the same
    episode as t (no ``is_first`` in ``t-w+1 .. t``); invalid slots hold zeros and are masked out.
    """
    T = tokens.shape[1]
    segment = is_first.long().cumsum(1)  # episode index within the sequence
    padded = torch.cat([tokens.new_zeros(tokens.shape[0], window - 1, *tokens.shape[2:]), tokens], 1)
    seg = torch.cat([segment.new_full((segment.shape[0], window - 1), -1), segment], 1)
    # unfold puts frames t-W+1 .. t on a last axis; flipped so that slot w is age w
    frames = padded.unfold(1, window, 1).movedim(-1, 2).flip(2)  # [B, T, W, ...]
    valid = seg.unfold(1, window, 1).flip(-1) == segment[..., None]
    return frames[:, :T], valid[:, :T]


def multihead_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, pad: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax attention ``q [M or 1, L, D]`` over ``k, v [M, K, D]`` with ``heads`` heads; ``pad [M, K]`` True = ignore."""
    M, K, D = k.shape
    L, dh = q.shape[1], D // heads
    qh = q.reshape(q.shape[0], L, heads, dh).transpose(1, 2)  # [M|1, h, L, dh]
    kh, vh = k.reshape(M, K, heads, dh).transpose(1, 2), v.reshape(M, K, heads, dh).transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) * dh**-0.5  # [M, h, L, K]
    if pad is not None:
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    return (softmax(scores, -1) @ vh).transpose(1, 2).reshape(M, L, D)


class CausalPerceiver(nn.Module):
    """``forward(tokens [B, T, N, D], is_first [B, T]) -> context [B, T, D]``: a Perceiver IO read per step's window.

    The latent array and the read-out query are learned constants, so their projections are computed once per
    call, not once per window; keys and values are the window's tokens (cross-attention), then an MLP.
    """

    def __init__(self, dim: int, num_latents: int, num_heads: int, window: int = 1) -> None:
        super().__init__()
        self.window, self.heads = window, num_heads
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.age = nn.Parameter(torch.randn(window, 2 * dim) * 0.02)  # added to a frame's keys and values
        self.query = nn.Parameter(torch.randn(1, dim) * 0.02)
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.cross_q, self.cross_kv, self.cross_out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.ff = mlp(dim, [2 * dim], dim)
        self.norm_read = nn.LayerNorm(dim)
        self.read_q, self.read_kv, self.read_out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor, is_first: torch.Tensor) -> torch.Tensor:
        """``tokens [B, T, N, D]`` of a sequence (``is_first [B, T]`` marks episode starts) -> ``context [B, T, D]``.

        Keys and values are projected once per frame; each step's window of W*N of them (a learned age
        embedding added to the keys and values of a frame W steps back, frames outside the window's episode
        masked) is gathered by one unfold, and the latents attend over it in one batched matmul.
        """
        B, T, N, D = tokens.shape
        W, H, L = self.window, self.heads, self.latents.shape[0]
        dh = D // H
        kv, valid = causal_windows(self.cross_kv(self.norm_tokens(tokens)), is_first, W)  # [B, T, W, N, 2D]
        kv = (kv + self.age[:, None]).reshape(B * T, W * N, 2, H, dh)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # [B*T, H, W*N, dh]
        q = self.cross_q(self.norm_latents(self.latents)).reshape(L, H, dh).transpose(0, 1) * dh**-0.5
        scores = q @ k.transpose(-1, -2)  # [B*T, H, L, W*N]
        outside = torch.zeros(valid.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~valid, float("-inf"))
        scores = scores + outside.repeat_interleave(N, dim=-1).reshape(B * T, 1, 1, W * N)
        attended = (softmax(scores, -1) @ v).transpose(1, 2).reshape(B * T, L, D)
        memory = self.latents + self.cross_out(attended)
        memory = memory + self.ff(self.norm_mlp(memory))
        k, v = self.read_kv(self.norm_read(memory)).chunk(2, -1)
        context = self.read_out(multihead_attention(self.read_q(self.query).unsqueeze(0), k, v, self.heads)).squeeze(1)
        return context.reshape(B, T, D)
