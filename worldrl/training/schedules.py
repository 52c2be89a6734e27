"""Learning-rate schedules as pure functions of the step: linear warm-up, then a registered decay shape."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from worldrl.errors import ConfigError

# progress in [0, 1] after warm-up -> multiplier in [0, 1] before the floor is applied
Decay = Callable[[float], float]


def constant_decay(progress: float) -> float:
    return 1.0


def linear_decay(progress: float) -> float:
    return 1.0 - progress


def cosine_decay(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, Decay] = {"constant": constant_decay, "linear": linear_decay, "cosine": cosine_decay}


def lr_multiplier(step: int, *, max_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float = 0.0) -> float:
    """Factor on the peak lr for optimizer step ``step`` (0-based): warm-up ramps to 1, then decays to the floor."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # never 0, so the first step already moves the weights
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * SCHEDULES[schedule](progress)


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, max_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_multiplier`; its state dict is plain numbers (JSON-safe)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; known: {sorted(SCHEDULES)}")

    def factor(step: int) -> float:
        return lr_multiplier(
            step, max_steps=max_steps, warmup_steps=warmup_steps, schedule=schedule, min_lr_ratio=min_lr_ratio
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
