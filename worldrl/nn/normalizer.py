"""Feature normalisation with statistics stored as buffers (so they travel inside model.safetensors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class Normalizer(nn.Module):
    """``(x - mean) / std`` over the trailing ``shape`` dims; identity until ``fit`` is called."""

    def __init__(self, shape: Sequence[int], eps: float = 1e-6, min_std: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(tuple(shape)))
        self.register_buffer("std", torch.ones(tuple(shape)))

    def fit(self, mean: Any, std: Any) -> None:
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(self.mean.shape)
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(self.std.shape)
        # A constant feature (std 0) would blow up; floor it so it normalises to ~0 instead.
        self.mean.copy_(mean_t)
        self.std.copy_(std_t.clamp_min(self.min_std))

    def fit_stats(self, stats: Mapping[str, Any]) -> None:
        """Fit from one feature's entry of ``meta/stats.json`` (keys ``mean`` and ``std``)."""
        self.fit(stats["mean"], stats["std"])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + self.eps)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.std + self.eps) + self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x)
