"""The physics head and the state layouts it understands.

The head predicts the change of the object states (normalised ``observation.state``) to the next step from the
state feature, the action and the current state. Where the task's state layout is known (``STATE_LAYOUTS``: Playground scenes store, per object slot,
position xyz, orientation quaternion, linear and angular velocity), the predicted positions and velocities are read
out of it and a consistency term asks that predicted velocities agree with the differences of predicted positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldrl.nn.mlp import mlp


@dataclass(frozen=True)
class StateLayout:
    """Where positions and linear velocities sit in a flat state vector of ``objects * per_object`` values."""

    objects: int
    per_object: int
    position: tuple[int, int]
    """[start, stop) of the xyz position inside one object's block."""
    velocity: tuple[int, int]
    """[start, stop) of the linear velocity inside one object's block."""
    dt: float
    """Seconds between two observations."""

    @property
    def state_dim(self) -> int:
        return self.objects * self.per_object


STATE_LAYOUTS: dict[str, StateLayout] = {
    # worldrl.tasks.scenes: MAX_OBJECTS=6 slots of 13 values, 50 Hz (TIMESTEP 0.002 x FRAME_SKIP 10)
    "worldrl/Playground-v0": StateLayout(objects=6, per_object=13, position=(0, 3), velocity=(7, 10), dt=0.02),
}


def positions(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[..., objects, 3]`` positions of a flat ``[..., state_dim]`` state."""
    blocks = state.reshape(*state.shape[:-1], layout.objects, layout.per_object)
    return blocks[..., layout.position[0] : layout.position[1]]


def velocities(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    blocks = state.reshape(*state.shape[:-1], layout.objects, layout.per_object)
    return blocks[..., layout.velocity[0] : layout.velocity[1]]


def velocity_consistency(states: torch.Tensor, layout: StateLayout, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared gap between ``(p[t+1] - p[t]) / dt`` and the mean of ``v[t]``, ``v[t+1]``, for predicted states
    ``[B, T, state_dim]`` in real units (``mask [B, T-1]``: pairs inside one episode)."""
    p, v = positions(states, layout), velocities(states, layout)
    gap = (p[:, 1:] - p[:, :-1]) / layout.dt - 0.5 * (v[:, 1:] + v[:, :-1])
    err = gap.pow(2).mean((-1, -2))
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)


class PhysicsHead(nn.Module):
    """``[feature (latent_dim + D), current normalised state (S)] -> change of the normalised state [.., S]``."""

    def __init__(self, in_dim: int, hidden: int, state_dim: int) -> None:
        super().__init__()
        self.net = mlp(in_dim, [hidden, hidden], state_dim, layer_norm=True)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.net(feature)


__all__ = ["STATE_LAYOUTS", "PhysicsHead", "StateLayout", "positions", "velocities", "velocity_consistency"]
