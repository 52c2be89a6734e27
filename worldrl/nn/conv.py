"""Convolutional image encoder and decoder shared by the pixel world models.

Both work on float images ``[N, C, H, W]`` with ``H = W = grid * 2**stages``: the encoder halves the side
``stages`` times (doubling channels) down to a ``grid x grid`` feature map; the decoder mirrors it from a vector
(plus optional spatial conditioning channels at the grid resolution, e.g. attention maps).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def num_stages(image_size: int, grid: int) -> int:
    """Stride-2 stages between ``image_size`` and ``grid``; raises ValueError when it is not a power of two."""
    ratio = image_size // grid if grid > 0 else 0
    if grid < 1 or image_size % grid or ratio & (ratio - 1):
        raise ValueError(f"image_size={image_size} must be grid={grid} times a power of two")
    return int(math.log2(ratio))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(1, channels)  # layer norm over (C, H, W): independent of batch size


class ConvEncoder(nn.Module):
    """``[N, C, H, W] -> [N, out_channels, grid, grid]``; ``out_channels = base_channels * 2**stages``."""

    def __init__(self, in_channels: int = 3, base_channels: int = 32, image_size: int = 64, grid: int = 8) -> None:
        super().__init__()
        stages = num_stages(image_size, grid)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 3, padding=1), _norm(base_channels), nn.SiLU()]
        channels = base_channels
        for _ in range(stages):
            layers += [nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1), _norm(2 * channels), nn.SiLU()]
            channels *= 2
        self.net = nn.Sequential(*layers)
        self.out_channels, self.grid, self.image_size = channels, grid, image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"ConvEncoder expects {self.image_size}x{self.image_size} images, got {tuple(images.shape)}"
            )
        return self.net(images)


class ConvDecoder(nn.Module):
    """``(vector [N, in_dim], cond [N, cond_channels, grid, grid] | None) -> [N, out_channels, H, W]``."""

    def __init__(
        self,
        in_dim: int,
        out_channels: int = 3,
        base_channels: int = 32,
        image_size: int = 64,
        grid: int = 8,
        cond_channels: int = 0,
    ) -> None:
        super().__init__()
        stages = num_stages(image_size, grid)
        channels = base_channels * 2**stages
        self.grid, self.channels, self.cond_channels = grid, channels, cond_channels
        self.fc = nn.Linear(in_dim, channels * grid * grid)
        layers: list[nn.Module] = [
            nn.Conv2d(channels + cond_channels, channels, 3, padding=1),
            _norm(channels),
            nn.SiLU(),
        ]
        for _ in range(stages):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1),
                _norm(channels // 2),
                nn.SiLU(),
            ]
            channels //= 2
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        feat = self.fc(x).reshape(-1, self.channels, self.grid, self.grid)
        if self.cond_channels:
            if cond is None or cond.shape[1:] != (self.cond_channels, self.grid, self.grid):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(
                    f"ConvDecoder needs cond [N, {self.cond_channels}, {self.grid}, {self.grid}], got {got}"
                )
            feat = torch.cat([feat, cond], dim=1)
        return self.net(feat)
