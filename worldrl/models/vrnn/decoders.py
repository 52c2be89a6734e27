"""Observation decoders p(o_t | h_t, z_t, A_t): the recurrent state, the latent and the attention maps -> mean.

``A_t`` are the maps the attention schema *predicts* from h_t (never the maps computed from o_t itself, which
would let the observation reach the decoder without passing the KL-priced latent). Vector decoders output the
normalised observation; pixel decoders output [0, 1] images (channels first) with the maps fed as extra
channels at the conv feature-grid resolution.
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
        in_dim = config.hidden_dim + config.latent_dim + map_size
        self.net = mlp(in_dim, [config.hidden_dim, config.hidden_dim], obs_dim, layer_norm=True)
        self.map_size = map_size

    def forward(self, feat: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        x = feat if not self.map_size else torch.cat([feat, maps.flatten(-2)], dim=-1)
        return self.net(x)


class PixelDecoder(nn.Module):
    """``channels`` colour planes, plus one keep-mask logit plane when ``config.reference_frame`` is set
    (blended with a real frame by ``worldrl.models.vrnn.reference.composite``).

    ``reference_channels``: channels of the encoded reference frame (``config.reference_features``), given to
    ``forward`` as ``reference_features [N, reference_channels, grid, grid]`` beside the attention maps.
    """

    def __init__(self, channels: int, num_slots: int, config: VRNNConfig, reference_channels: int = 0) -> None:
        super().__init__()
        self.grid = config.feature_grid
        self.conv = ConvDecoder(
            config.hidden_dim + config.latent_dim,
            channels + int(config.reference_frame),
            config.decoder_base_channels,
            config.image_size,
            config.feature_grid,
            num_slots + reference_channels,
        )

    def forward(
        self, feat: torch.Tensor, maps: torch.Tensor | None, reference_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        planes = [] if maps is None else [maps.reshape(maps.shape[0], -1, self.grid, self.grid)]
        if reference_features is not None:
            planes.append(reference_features)
        return self.conv(feat, torch.cat(planes, dim=1) if planes else None)
