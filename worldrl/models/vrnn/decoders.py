"""Observation decoders p(o_t | z_t, A_t): z plus the attention maps A (if the schema is on) -> observation mean.

Vector decoders output the normalised observation; pixel decoders output [0, 1] images (channels first) with
the attention maps fed as extra channels at the conv feature-grid resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.models.vrnn.config import VRNNConfig
from worldrl.nn.conv import ConvDecoder
from worldrl.nn.mlp import mlp


class VectorDecoder(nn.Module):
    def __init__(self, obs_dim: int, map_size: int, config: VRNNConfig) -> None:
        super().__init__()
        self.net = mlp(config.latent_dim + map_size, [config.hidden_dim, config.hidden_dim], obs_dim)
        self.map_size = map_size

    def forward(self, z: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        x = z if not self.map_size else torch.cat([z, maps.flatten(-2)], dim=-1)
        return self.net(x)


class PixelDecoder(nn.Module):
    def __init__(self, channels: int, num_slots: int, config: VRNNConfig) -> None:
        super().__init__()
        self.grid = config.feature_grid
        self.conv = ConvDecoder(
            config.latent_dim, channels, config.decoder_base_channels, config.image_size, config.feature_grid, num_slots
        )

    def forward(self, z: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        cond = None if maps is None else maps.reshape(maps.shape[0], -1, self.grid, self.grid)
        return self.conv(z, cond)
