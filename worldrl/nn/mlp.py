"""Plain MLP used by every family's heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: type[nn.Module] = nn.SiLU,
    layer_norm: bool = False,
) -> nn.Sequential:
    """``in -> [Linear (LayerNorm) act] * len(hidden) -> Linear -> out``."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers.append(nn.Linear(a, b))
        if layer_norm:
            layers.append(nn.LayerNorm(b))
        layers.append(activation())
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def orthogonal_init_(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Orthogonal weights and zero biases for Linear/LSTM/GRU layers (a common stabiliser for RNN world models)."""
    for name, param in module.named_parameters():
        if param.dim() >= 2 and "weight" in name:
            nn.init.orthogonal_(param, gain=gain)
        elif "bias" in name:
            nn.init.zeros_(param)
    return module


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["mlp", "num_parameters", "orthogonal_init_", "torch"]
