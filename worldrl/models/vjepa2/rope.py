"""3D rotary position embeddings (time, row, column) as V-JEPA 2: the head dimension is split in three parts, one
per axis, each rotated by its own coordinate; dimensions left over when ``head_dim`` is not a multiple of 6 stay
unrotated. Pure functions."""

from __future__ import annotations

import torch


def axis_dim(head_dim: int) -> int:
    """Rotated dimensions per axis: the largest even number with 3 of them fitting in ``head_dim``."""
    dim = 2 * (head_dim // 6)
    if dim == 0:
        raise ValueError(f"3D RoPE needs a head dimension of at least 6, got {head_dim}")
    return dim


def _rotate(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs of ``x [..., N, d]`` (d even) by angles ``pos * base^(-2i/d)``; ``pos [..., N]`` broadcasts."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = pos.to(torch.float32)[..., None] * freqs  # [..., N, d/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


def apply_rope_3d(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """``x [B, heads, N, head_dim]`` rotated by ``positions [B or 1, N, 3]`` (t, h, w; float or int)."""
    d = axis_dim(x.shape[-1])
    pos = positions[:, None]  # [B, 1, N, 3]
    parts = [_rotate(x[..., i * d : (i + 1) * d], pos[..., i], base) for i in range(3)]
    return torch.cat([*parts, x[..., 3 * d :]], dim=-1)


def grid_positions(t: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """``[t*h*w, 3]`` coordinates of a (t, h, w) token grid in raster order (time slowest)."""
    tt, hh, ww = torch.meshgrid(
        torch.arange(t, device=device), torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3)


__all__ = ["apply_rope_3d", "axis_dim", "grid_positions"]
