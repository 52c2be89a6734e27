"""Exponential moving average of a model's weights (a full copy of the module, so it can validate and save).

Only parameters are averaged; buffers (normalisation statistics fitted on the first batch, elite indices,
counters, running statistics) are copied from the live model, so a buffer that is set once is never
blended with its placeholder value. ``torch.optim.swa_utils.AveragedModel`` either averages every buffer
(failing on integer ones) or leaves them stale, hence this small class.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from worldrl.errors import ConfigError


def ema_update_(averaged: list[torch.Tensor], current: list[torch.Tensor], decay: float) -> None:
    """In place: ``averaged <- decay * averaged + (1 - decay) * current``."""
    if averaged:
        torch._foreach_lerp_(averaged, current, 1.0 - decay)


class EMA:
    """Holds ``module``, an averaged copy of the model given at construction."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        pairs = [(a, p.detach()) for a, p in zip(self.module.parameters(), model.parameters()) if p.is_floating_point()]
        ema_update_([a for a, _ in pairs], [p for _, p in pairs], self.decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers()):
            mine.copy_(theirs)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
