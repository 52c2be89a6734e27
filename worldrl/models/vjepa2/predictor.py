"""The narrow predictor of masked latent prediction: context tokens (projected to the predictor width) plus
learnable, zero-initialised mask tokens at the target positions, through a transformer with 3D RoPE; the outputs
at the mask tokens are projected back to the encoder width (V-JEPA 2: 12 layers, width 384)."""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.vjepa2.rope import grid_positions
from worldrl.models.vjepa2.transformer import Transformer


class MaskedPredictor(nn.Module):
    def __init__(
        self,
        encoder_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = Transformer(dim, depth, num_heads, mlp_ratio, checkpointing)
        self.out = nn.Linear(dim, encoder_dim)

    def forward(
        self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """``context [B, Kc, De]`` at token indices ``context_idx [B, Kc]`` -> predictions ``[B, Kt, De]`` at
        ``target_idx [B, Kt]`` of a token ``grid``."""
        b, kt = target_idx.shape
        positions = grid_positions(*grid, device=context.device)
        pos = torch.cat([positions[context_idx], positions[target_idx]], dim=1)  # [B, Kc + Kt, 3]
        x = torch.cat([self.embed(context), self.mask_token.expand(b, kt, -1)], dim=1)
        return self.out(self.transformer(x, pos)[:, -kt:])


__all__ = ["MaskedPredictor"]
