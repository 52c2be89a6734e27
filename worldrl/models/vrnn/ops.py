"""Softmax written out (max-subtracted exp over a sum): on CPU, torch's fused kernel is several times slower than
these few elementwise ops when the reduced dimension is short (4 to 64 entries, as over slots or window keys)."""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``softmax(x, dim)``; ``-inf`` entries get weight 0 (a row must keep one finite entry)."""
    e = (x - x.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``log_softmax(x, dim)`` (finite ``x``)."""
    shifted = x - x.amax(dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim, keepdim=True).log()
