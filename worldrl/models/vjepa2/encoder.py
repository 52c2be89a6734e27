"""The video encoder: a ViT over 3D tubelets (``tubelet`` frames x ``patch`` x ``patch`` pixels) with 3D RoPE.

Input ``[B, T, C, S, S]`` (normalised, ``preprocess.frames_to_input``); tokens in (t, h, w) raster order, as
V-JEPA 2 and transformers' ``VJEPA2Model`` order them. ``keep`` (token indices ``[B, K]``) encodes only those
tokens (the context of masked prediction); positions stay those of the full grid.
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.vjepa2.rope import grid_positions
from worldrl.models.vjepa2.transformer import Transformer


class VideoViT(nn.Module):
    def __init__(
        self,
        image_size: int,
        patch_size: int,
        tubelet: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size, self.patch_size, self.tubelet, self.dim = image_size, patch_size, tubelet, dim
        self.patch_embed = nn.Conv3d(
            3, dim, kernel_size=(tubelet, patch_size, patch_size), stride=(tubelet, patch_size, patch_size)
        )
        self.transformer = Transformer(dim, depth, num_heads, mlp_ratio, checkpointing)

    @property
    def grid_hw(self) -> int:
        return self.image_size // self.patch_size

    def grid(self, frames: int) -> tuple[int, int, int]:
        """Token grid (t, h, w) of a clip of ``frames`` frames."""
        return frames // self.tubelet, self.grid_hw, self.grid_hw

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = x.shape
        if t < self.tubelet:
            raise ValueError(f"a clip of {t} frame(s) is shorter than a tubelet of {self.tubelet}")
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"frames of {h}x{w} given to an encoder of {self.image_size}x{self.image_size}")
        t = t - t % self.tubelet
        tokens = self.patch_embed(x[:, :t].transpose(1, 2)).flatten(2).transpose(1, 2)  # [B, N, D]
        positions = grid_positions(*self.grid(t), device=x.device)[None].expand(b, -1, -1)
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, self.dim))
            positions = torch.gather(positions, 1, keep[..., None].expand(-1, -1, 3))
        return self.transformer(tokens, positions)


def frame_clip(x: torch.Tensor, tubelet: int) -> torch.Tensor:
    """Single frames ``[N, C, S, S]`` as clips of one tubelet ``[N, tubelet, C, S, S]`` (the frame repeated), as
    V-JEPA 2-AC encodes each frame alone."""
    return x[:, None].expand(-1, tubelet, -1, -1, -1)


__all__ = ["VideoViT", "frame_clip"]
