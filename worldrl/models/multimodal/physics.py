"""The physics head and the state layouts it understands.

The head predicts a residual on the object states (normalised ``observation.state``) from the state feature, the
action and the current state. Where the task's state layout is known (``STATE_LAYOUTS``: Playground scenes store, per
object slot, position xyz, orientation quaternion, linear and angular velocity), the head integrates its own
velocities: the residual is a velocity change, ``v' = v + dv`` and ``p' = p + dt (v + v') / 2`` (in real units), so a
zero residual is exactly constant-velocity extrapolation (the strong baseline on these scenes) and position errors
only enter through ``dt * dv``. Other entries (orientation, angular velocity) and layouts-less states get a plain
residual (zero = unchanged). The output layer starts at zero, so an untrained head extrapolates at constant velocity.
A consistency term asks that predicted velocities agree with the differences of predicted positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldrl.errors import ModelConfigurationError
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


def constant_velocity_step(
    state: torch.Tensor, residual: torch.Tensor, layout: StateLayout, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Next normalised state from the current one ``state [.., S]`` (normalised as ``(x - mean) / std``) and a
    residual ``[.., S]`` in normalised units: velocities change by the residual, positions integrate the mean of
    the old and new velocity over ``layout.dt`` (their own residual entries are unused), the rest adds the residual.
    A zero residual gives ``p + v dt`` and unchanged velocities: constant-velocity extrapolation."""
    real = state * std + mean
    nxt = real + residual * std
    blocks, out = real.unflatten(-1, (layout.objects, layout.per_object)), nxt.unflatten(-1, (layout.objects, -1))
    (p0, p1), (v0, v1) = layout.position, layout.velocity
    v_old, v_new = blocks[..., v0:v1], out[..., v0:v1]
    position = blocks[..., p0:p1] + 0.5 * layout.dt * (v_old + v_new)
    out = torch.cat([out[..., :p0], position, out[..., p1:]], -1)
    return (out.flatten(-2) - mean) / std


class PhysicsHead(nn.Module):
    """``[feature (latent_dim + D), current normalised state (S)] -> next normalised state [.., S]``.

    With a ``layout`` the residual is integrated (``constant_velocity_step``) using the state statistics held in the
    buffers ``state_mean`` / ``state_std`` (the family copies its state normaliser there, ``set_state_stats``);
    without one it is added to the current state.
    """

    def __init__(self, in_dim: int, hidden: int, state_dim: int, layout: StateLayout | None = None) -> None:
        super().__init__()
        if layout is not None and layout.state_dim != state_dim:
            raise ModelConfigurationError(f"state layout covers {layout.state_dim} values, the state has {state_dim}")
        self.layout = layout
        self.net = mlp(in_dim, [hidden, hidden], state_dim, layer_norm=True)
        last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def set_state_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The ``(x - mean) / std`` statistics the states arrive normalised with."""
        self.state_mean.copy_(mean.reshape(self.state_mean.shape))
        self.state_std.copy_(std.reshape(self.state_std.shape))

    def residual(self, feature: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([feature, state], -1))

    def step(self, state: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """The next normalised state of ``state`` given the head's ``residual`` (both ``[.., S]``)."""
        if self.layout is None:
            return state + residual
        return constant_velocity_step(state, residual, self.layout, self.state_mean, self.state_std)

    def forward(self, feature: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.step(state, self.residual(feature, state))


__all__ = [
    "STATE_LAYOUTS",
    "PhysicsHead",
    "StateLayout",
    "constant_velocity_step",
    "positions",
    "velocities",
    "velocity_consistency",
]
