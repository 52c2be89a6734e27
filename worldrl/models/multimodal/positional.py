"""``SpatioTemporalEncoding``: position of a token in time and on the patch grid, learned or sinusoidal."""

from __future__ import annotations

import math

import torch
from torch import nn

from worldrl.errors import ModelConfigurationError


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The transformer's fixed ``[length, dim]`` sin/cos table (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class SpatioTemporalEncoding(nn.Module):
    """Adds ``time[t] + row[i] + col[j]`` to tokens ``x [B, T, S, D]`` laid out as a ``(rows, cols)`` grid per step.

    Tokens that are not on a grid (latent tokens) use ``grid=(1, S)``: one row, S columns. ``timesteps [B, T]``
    (integers) replaces ``0..T-1`` when given. Bounds: ``T``/timesteps < ``max_seq_len``, rows/cols <=
    ``max_spatial_size``.
    """

    def __init__(self, embed_dim: int, max_seq_len: int = 1000, max_spatial_size: int = 256, learnable: bool = True):
        super().__init__()
        self.max_seq_len, self.max_spatial_size, self.learnable = max_seq_len, max_spatial_size, learnable
        tables = {
            "time": sinusoid_table(max_seq_len, embed_dim),
            "row": sinusoid_table(max_spatial_size, embed_dim),
            "col": sinusoid_table(max_spatial_size, embed_dim),
        }
        for name, table in tables.items():
            if learnable:
                setattr(self, name, nn.Parameter(table * 0.02))
            else:
                self.register_buffer(name, table, persistent=False)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor | None = None, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        _, steps, tokens, _ = x.shape
        rows, cols = grid or (1, tokens)
        if rows * cols != tokens or max(rows, cols) > self.max_spatial_size:
            raise ModelConfigurationError(
                f"grid {rows}x{cols} does not fit {tokens} tokens within max_spatial_size={self.max_spatial_size}"
            )
        if timesteps is None:
            timesteps = torch.arange(steps, device=x.device)[None]
        if int(timesteps.max()) >= self.max_seq_len or int(timesteps.min()) < 0:
            raise ModelConfigurationError(
                f"timesteps must lie in [0, {self.max_seq_len}) (max_seq_len), got up to {int(timesteps.max())}"
            )
        return x + self.time[timesteps.long()][:, :, None] + self.spatial((rows, cols))[None, None]

    def spatial(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position-only part ``[rows * cols, D]`` (for queries that belong to no time step)."""
        rows, cols = grid
        return (self.row[:rows, None] + self.col[None, :cols]).reshape(rows * cols, -1)


__all__ = ["SpatioTemporalEncoding", "sinusoid_table"]
