"""World latents -> Gemma-width tokens: the two layouts, and the trainable projector.

``spatial``: one token per latent position (T'*H'*W' tokens of C features); ``channel``: one token per channel
and latent frame (T'*C tokens of H'*W' features). A learned temporal embedding tells latent frames apart (the
observed one from the predicted ones). The projector's output is an *unscaled* embedding row: the model multiplies
it by Gemma's ``sqrt(hidden)`` embedding scale, exactly as text rows are scaled.
"""

from __future__ import annotations

import torch
from torch import nn

from worldrl.errors import ModelConfigurationError


def latents_to_tokens(latents: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C, T, H, W]`` -> (tokens ``[B, N, F]``, latent frame index of each token ``[N]``)."""
    b, c, t, h, w = latents.shape
    if mode == "spatial":
        tokens = latents.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)
        times = torch.arange(t, device=latents.device).repeat_interleave(h * w)
    else:
        tokens = latents.permute(0, 2, 1, 3, 4).reshape(b, t * c, h * w)
        times = torch.arange(t, device=latents.device).repeat_interleave(c)
    return tokens, times


def token_count(channels: int, frames: int, grid: tuple[int, int], mode: str) -> int:
    """World tokens for ``frames`` latent frames: T'*H'*W' (spatial) or T'*C (channel)."""
    return frames * (grid[0] * grid[1] if mode == "spatial" else channels)


class WorldProjector(nn.Module):
    """Linear -> GELU -> Linear (as TheWorld), plus a temporal embedding per latent frame."""

    def __init__(self, channels: int, grid: tuple[int, int], hidden: int, mode: str, max_frames: int) -> None:
        super().__init__()
        self.channels, self.grid, self.mode, self.max_frames = channels, tuple(grid), mode, max_frames
        features = channels if mode == "spatial" else grid[0] * grid[1]
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.temporal = nn.Embedding(max_frames, hidden)
        nn.init.normal_(self.temporal.weight, std=0.02)
        self.boundary = nn.Parameter(torch.randn(2, hidden) * 0.02)
        """Learned rows of ``<start_of_world>`` and ``<end_of_world>`` (they train even when Gemma is frozen)."""

    def check(self, latents: torch.Tensor) -> None:
        """One line naming the problem when ``latents`` is not ``[B, C, T', H', W']`` of this projector."""
        want = f"[B, {self.channels}, T<={self.max_frames}, {self.grid[0]}, {self.grid[1]}]"
        ok = (
            latents.ndim == 5
            and latents.shape[1] == self.channels
            and tuple(latents.shape[3:]) == self.grid
            and 1 <= latents.shape[2] <= self.max_frames
        )
        if not ok:
            raise ModelConfigurationError(
                f"world latents must be {want} ({self.mode} mode), got {tuple(latents.shape)}"
            )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, C, T', H', W']`` -> the unscaled rows ``[B, N + 2, hidden]`` of start, world tokens and end."""
        self.check(latents)
        tokens, times = latents_to_tokens(latents, self.mode)
        weight = self.net[0].weight
        world = self.net(tokens.to(weight.dtype)) + self.temporal(times).to(weight.dtype)
        start, end = (row.to(world.dtype).expand(world.shape[0], 1, -1) for row in self.boundary[:, None])
        return torch.cat([start, world, end], dim=1)


__all__ = ["WorldProjector", "latents_to_tokens", "token_count"]
