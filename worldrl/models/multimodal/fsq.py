"""Finite scalar quantisation (Mentzer et al. 2023): each code dimension rounded to one of L_i levels.

A code is the mixed-radix integer of the per-dimension level indices; the vocabulary is prod(L_i) and every code is
reachable (no codebook, no dead codes). Pure functions.
"""

from __future__ import annotations

import torch


def _levels(levels: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(levels, dtype=like.dtype, device=like.device)


def bound(z: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Squash ``z [..., d]`` so that rounding gives L_i values per dim, centred on 0 (odd and even L alike)."""
    lv = _levels(levels, z)
    half = (lv - 1) * (1 - 1e-3) / 2
    offset = torch.where(lv % 2 == 0, 0.5, 0.0)
    shift = torch.atanh(offset / half)
    return torch.tanh(z + shift) * half - offset


def quantize(z: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Rounded, straight-through, scaled to [-1, 1]: ``[..., d]``."""
    bounded = bound(z, levels)
    rounded = bounded + (torch.round(bounded) - bounded).detach()
    return rounded / (_levels(levels, z) // 2)


def codes_from_quantized(q: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Integer codes ``[...]`` of quantised vectors ``[..., d]`` (output of ``quantize``)."""
    lv = _levels(levels, q)
    half = lv // 2
    idx = torch.round(q * half + half).long()
    basis = torch.cumprod(torch.as_tensor([1, *levels[:-1]], device=q.device), 0)
    return (idx * basis).sum(-1)


def quantized_from_codes(codes: torch.Tensor, levels: list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of ``codes_from_quantized``: ``[...]`` -> ``[..., d]`` in [-1, 1]."""
    basis = torch.cumprod(torch.as_tensor([1, *levels[:-1]], device=codes.device), 0)
    lv = torch.as_tensor(levels, device=codes.device)
    idx = (codes[..., None] // basis) % lv
    half = (lv // 2).to(dtype)
    return (idx.to(dtype) - half) / half


def codebook(levels: list[int]) -> torch.Tensor:
    """Every code's quantised vector ``[prod(levels), d]`` in code order."""
    total = 1
    for level in levels:
        total *= level
    return quantized_from_codes(torch.arange(total), levels)


__all__ = ["bound", "codebook", "codes_from_quantized", "quantize", "quantized_from_codes"]
