"""The target encoder's EMA momentum per step: V-JEPA 2's constant (0.99925) or a linear ramp to 1."""

from __future__ import annotations

import torch


def ema_momentum(step: int, start: float, end: float | None, ramp_steps: int) -> float:
    """``start`` while ``end`` is None; else linear from ``start`` to ``end`` over ``ramp_steps``, then ``end``."""
    if end is None or ramp_steps <= 0:
        return start
    frac = min(max(step, 0) / ramp_steps, 1.0)
    return start + (end - start) * frac


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online``, parameter by parameter."""
    t = [p for p in target.parameters()]
    o = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(t, o, 1.0 - momentum)


__all__ = ["ema_momentum", "ema_update"]
