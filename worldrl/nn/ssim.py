"""Per-frame SSIM as a differentiable loss input, shared by the pixel families' structure terms."""

from __future__ import annotations

import torch


def frame_ssim(frames: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SSIM (torchmetrics' Gaussian-window form) of ``frames [..., C, H, W]`` in [0, 1] (clamped) against
    ``targets`` of the same shape, one value per frame ``[...]``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    lead = frames.shape[:-3]
    flat = frames.flatten(0, -4).clamp(0.0, 1.0), targets.flatten(0, -4)
    return structural_similarity_index_measure(*flat, data_range=1.0, reduction="none").reshape(lead)


__all__ = ["frame_ssim"]
