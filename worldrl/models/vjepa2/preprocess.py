"""Frames to encoder input in torch (torchvision is not needed): resize the shorter side, centre-crop a square,
scale to [0, 1] and normalise with the ImageNet statistics V-JEPA 2 was trained with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def frames_to_input(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., H, W, C]`` frames in [0, 255] (uint8 or float, C = 3) -> normalised float ``[..., C, size, size]``."""
    if frames.shape[-1] != 3:
        raise ValueError(f"frames must be RGB [..., H, W, 3], got shape {tuple(frames.shape)}")
    lead = frames.shape[:-3]
    h, w = frames.shape[-3:-1]
    x = frames.reshape(-1, h, w, 3).float().div(255.0).permute(0, 3, 1, 2)
    if (h, w) != (size, size):
        scale = size / min(h, w)
        rh, rw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (rh - size) // 2, (rw - size) // 2
        x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).reshape(*lead, 3, size, size)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "frames_to_input"]
