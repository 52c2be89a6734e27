"""Observation encoders (frame tokens + a pooled embedding) and the Gaussian posterior head q(z_t | h_t, o_t, c_t).

Both encoders return ``tokens [N, n_tokens, token_features]`` (read by the Perceiver and the attention schema)
and ``embedding [N, hidden_dim]`` (read by the posterior). Vector observations are tokenised per dimension
(value * w_d + b_d), so the attention schema attends over observation dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldrl.models.vrnn.config import VRNNConfig
from worldrl.nn.conv import ConvEncoder
from worldrl.nn.mlp import mlp


class VectorEncoder(nn.Module):
    def __init__(self, obs_dim: int, config: VRNNConfig) -> None:
        super().__init__()
        self.n_tokens, self.token_features = obs_dim, config.token_dim
        self.weight = nn.Parameter(torch.randn(obs_dim, config.token_dim))
        self.bias = nn.Parameter(torch.randn(obs_dim, config.token_dim) * 0.02)
        self.embed = nn.Sequential(mlp(obs_dim, [config.hidden_dim], config.hidden_dim), nn.SiLU())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = obs.unsqueeze(-1) * self.weight + self.bias
        return tokens, self.embed(obs)


class PixelEncoder(nn.Module):
    def __init__(self, channels: int, config: VRNNConfig) -> None:
        super().__init__()
        self.conv = ConvEncoder(channels, config.encoder_base_channels, config.image_size, config.feature_grid)
        self.n_tokens, self.token_features = config.feature_grid**2, self.conv.out_channels
        self.embed = nn.Sequential(nn.Linear(self.n_tokens * self.token_features, config.hidden_dim), nn.SiLU())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv(images)  # [N, C, g, g]
        tokens = feat.flatten(2).transpose(1, 2)  # [N, g*g, C], row-major positions
        return tokens, self.embed(feat.flatten(1))


class PosteriorHead(nn.Module):
    """q(z_t | h_t, o_t, c_t) as ``(mean, logvar)``, split so only the h-dependent part runs inside the time loop.

    ``project(obs_features)`` (the frame embedding and Perceiver context, known for the whole sequence up front)
    is one batched call; ``forward(h, projected)`` adds the recurrent state and applies the output layers.
    """

    def __init__(self, hidden_dim: int, obs_features: int, out_dim: int, logvar_range: tuple[float, float]) -> None:
        super().__init__()
        self.from_obs = nn.Linear(obs_features, hidden_dim)
        self.from_h = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.out = nn.Sequential(nn.LayerNorm(hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 2 * out_dim))
        self.logvar_range = logvar_range

    def project(self, obs_features: torch.Tensor) -> torch.Tensor:
        return self.from_obs(obs_features)

    def h_weight(self) -> torch.Tensor:
        """The transposed weight on h (taken once per sequence by the time loop)."""
        return self.from_h.weight.t()

    def forward(
        self, h: torch.Tensor, projected: torch.Tensor, h_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h_weight = self.h_weight() if h_weight is None else h_weight
        mean, logvar = self.out(torch.addmm(projected, h, h_weight)).chunk(2, dim=-1)
        return mean, logvar.clamp(*self.logvar_range)


def pixels_to_model(obs: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """``[N, H, W, C]`` frames in [0, 255] (uint8 or float) -> float ``[N, C, S, S]`` in [0, 1], resized if needed
    (``image_size=None``: kept at ``H x W``)."""
    x = obs.float().div(255.0).permute(0, 3, 1, 2)
    return x if image_size is None else resize_square(x, image_size)


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float ``[N, C, H, W]`` -> ``[N, C, size, size]`` (antialiased bilinear; unchanged when already that size)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def model_to_pixels(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """float ``[N, C, S, S]`` in [0, 1] -> uint8 ``[N, H, W, C]`` at the task's size."""
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
