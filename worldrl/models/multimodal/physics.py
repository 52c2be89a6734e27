"""The physics head and the state layouts it understands.

The head predicts the next object states (normalised ``observation.state``) from the current state, the transformer's
state feature and the action. Where the task's state layout is known (``STATE_LAYOUTS``: Playground scenes store, per
object slot, position xyz, orientation quaternion, linear and angular velocity) it is an interaction network over
the objects, in real units:

* per object: its own state (scaled by the largest per-entry standard deviation over the slots, one scale for the
  three axes of a position or velocity: ``isotropic_scale``; the losses use the same scale), and the sum of
  messages from every other present object (an MLP of both states and their relative position and velocity:
  contacts are pairwise); the transformer feature enters every object through one zero-initialised projection;
* a **velocity change** ``dv`` per object behind a hard gate: ``dv`` is applied only where the gate logit is
  positive. Free flight (rolling, resting) is exactly constant velocity: small systematic ``dv`` of an ungated head
  integrate into position drift (on held-out collide starts a head without the gate drifted 1-2 cm in 20 steps
  where constant velocity was exact). The gate is trained to recognise velocity *events* (``|dv_true| > tau``:
  contacts, sliding friction), the change is regressed on those events;
* optionally (``contact_radius`` > 0) the gate opens only for objects with another present object's centre within
  that radius: velocity events in a scene of free objects are contacts between them, and a head rolled out on its
  own states otherwise opens its gate for objects far from any other (the collide scenes: docs/benchmarks.md
  "Multimodal family"); events of a lone object (a drop onto the floor, a wall) then stay constant velocity;
* optionally (``contact_features``) every pair's message also reads whether the two touch within the next step
  (``contact_features``: the gap between them now and after one step at their relative velocity, their closing speed
  and the steps until contact), quantities an MLP of positions and velocities has to discover from few contacts;
  one step from true held-out collide states, the gate of a head trained on the same episodes caught 0.81 of the
  velocity changes above 0.3 m/s with them, 0.53 without (docs/benchmarks.md "Multimodal family");
* positions integrate the velocities, ``p' = p + dt (v + v') / 2``, so a zero ``dv`` is exactly constant-velocity
  extrapolation; orientation and angular velocity get a plain (ungated) change.

``physics_terms`` is the head's training objective on a window of true states: gate cross-entropy, one-step
regression of the change on events, and the error of the head's own open-loop rollout (from the window's first
step, on its own predicted states) in positions and velocities, so errors that compound are what is trained.
A consistency term (``velocity_consistency``) asks that predicted velocities agree with the differences of predicted
positions. States without a layout get an MLP residual on the normalised state (zero = unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    presence: tuple[int, int] | None = None
    """[start, stop) of entries whose norm is > 0.5 for a present object (a unit quaternion); None: a slot is present
    when any of its values is non-zero."""
    event_threshold: float = 0.02
    """A velocity change larger than this (state units per step) is an event the gate must open for."""

    @property
    def state_dim(self) -> int:
        return self.objects * self.per_object


STATE_LAYOUTS: dict[str, StateLayout] = {
    # worldrl.tasks.scenes: MAX_OBJECTS=6 slots of 13 values, 50 Hz (TIMESTEP 0.002 x FRAME_SKIP 10); a rolling
    # sphere changes velocity by < 0.003 m/s per step, contacts and sliding friction (~0.18 m/s per step) by more
    "worldrl/Playground-v0": StateLayout(
        objects=6, per_object=13, position=(0, 3), velocity=(7, 10), dt=0.02, presence=(3, 7), event_threshold=0.02
    ),
}


def blocks(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[..., objects, per_object]`` view of a flat ``[..., state_dim]`` state."""
    return state.reshape(*state.shape[:-1], layout.objects, layout.per_object)


def positions(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[..., objects, 3]`` positions of a flat ``[..., state_dim]`` state."""
    return blocks(state, layout)[..., layout.position[0] : layout.position[1]]


def velocities(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    return blocks(state, layout)[..., layout.velocity[0] : layout.velocity[1]]


def present(state: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[..., objects]`` bool: the slots of a real-unit state that hold an object."""
    b = blocks(state, layout)
    if layout.presence is None:
        return b.abs().sum(-1) > 0
    return b[..., layout.presence[0] : layout.presence[1]].norm(dim=-1) > 0.5


def velocity_events(now: torch.Tensor, nxt: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[..., objects]`` bool: each object's velocity changes by more than ``event_threshold`` between the
    real-unit states ``now`` and ``nxt`` (contacts, sliding friction: what the gate must open for)."""
    return (velocities(nxt, layout) - velocities(now, layout)).norm(dim=-1) > layout.event_threshold


def present_pairs(here: torch.Tensor) -> torch.Tensor:
    """``[..., i, j]`` bool: objects ``i`` and ``j`` are both present (``here [..., objects]``) and distinct."""
    eye = torch.eye(here.shape[-1], dtype=torch.bool, device=here.device)
    return here[..., None, :] & here[..., :, None] & ~eye


def near_another(real: torch.Tensor, layout: StateLayout, radius: float) -> torch.Tensor:
    """``[..., objects]`` bool: present objects with another present object's centre closer than ``radius`` metres
    (real-unit state ``[..., state_dim]``)."""
    p = positions(real, layout)
    dist = (p[..., :, None, :] - p[..., None, :, :]).norm(dim=-1)
    return (dist < radius).logical_and(present_pairs(present(real, layout))).any(-1)


CONTACT_SCALE = 0.05
"""Metres: the length unit of ``contact_features`` gaps (Playground objects' half-sizes are 0.04-0.09 m)."""

CONTACT_FEATURES = 5
"""Width of ``contact_features``."""


def contact_features(p: torch.Tensor, v: torch.Tensor, dt: float) -> torch.Tensor:
    """``[.., i, j, CONTACT_FEATURES]``: whether objects ``i`` and ``j`` (positions ``p`` and velocities ``v``
    ``[.., objects, 3]``, metres and m/s) touch within the next step of ``dt`` seconds.

    Each object's extent is its height above the floor (the centre of an object resting on a floor at z = 0 sits at
    its half-height; a sphere's radius), so ``gap = |p_j - p_i| - z_i - z_j``. The features: the gap now and after
    one step at the current relative velocity (both in ``CONTACT_SCALE`` units), the change of the distance over that
    step, the closing speed along the line between the centres (m/s, > 0 when approaching) and the steps until the
    gap closes at that speed (/10). Clamped to [-20, 20]: far pairs saturate instead of dominating the message MLP.
    """
    dp = p[..., None, :, :] - p[..., :, None, :]
    dv = v[..., None, :, :] - v[..., :, None, :]
    dist = dp.norm(dim=-1, keepdim=True)
    dist_next = (dp + dv * dt).norm(dim=-1, keepdim=True)
    extent = (p[..., None, :, 2] + p[..., :, None, 2])[..., None]
    closing = -(dp * dv).sum(-1, keepdim=True) / dist.clamp_min(1e-3)
    gap = dist - extent
    steps = gap.clamp(0.0, 1.0) / (closing.clamp_min(1e-2) * dt) / 10.0
    out = [
        gap / CONTACT_SCALE,
        (dist_next - extent) / CONTACT_SCALE,
        (dist_next - dist) / CONTACT_SCALE,
        closing,
        steps,
    ]
    return torch.cat(out, -1).clamp(-20.0, 20.0)


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


def integrate(real: torch.Tensor, change: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """Next real-unit state of ``real [.., S]`` given a real-unit ``change [.., S]``: velocities and the other entries
    add the change, positions integrate the mean of the old and new velocity over ``layout.dt`` (their own change
    entries are unused). A zero change gives ``p + v dt`` and unchanged velocities: constant velocity."""
    nxt = real + change
    old, new = blocks(real, layout), blocks(nxt, layout)
    (p0, p1), (v0, v1) = layout.position, layout.velocity
    position = old[..., p0:p1] + 0.5 * layout.dt * (old[..., v0:v1] + new[..., v0:v1])
    return torch.cat([new[..., :p0], position, new[..., p1:]], -1).flatten(-2)


def constant_velocity_step(
    state: torch.Tensor, residual: torch.Tensor, layout: StateLayout, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """``integrate`` on normalised states (``(x - mean) / std``) with a residual in normalised units."""
    return (integrate(state * std + mean, residual * std, layout) - mean) / std


def isotropic_scale(std: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """``[per_object]`` scale of a flat real-unit ``std [S]``: each entry's largest standard deviation over the slots,
    shared by the three axes of the position and of the velocity. They are Euclidean vectors, scored as distances:
    with one scale per axis, the vertical velocity's small spread (0.035 m/s against 0.3-0.9 horizontally on
    Playground scenes) made its contact jitter, half of all velocity events there, outweigh horizontal errors by the
    squared ratio of the spreads (``scripts/benchmark_multimodal_physics.py --data-stats``)."""
    scale = blocks(std, layout).amax(0).clamp_min(1e-3)
    for start, stop in (layout.position, layout.velocity):
        scale[start:stop] = scale[start:stop].max()
    return scale


class InteractionDynamics(nn.Module):
    """Per-object velocity change (gated), orientation/angular-velocity change and gate logit, in real units.

    ``forward(real [.., S], context [.., C]) -> (change [.., O, P], gate_logit [.., O])``: ``change`` in real units
    (velocity entries not yet gated; zero for absent objects), ``gate_logit`` > 0 opens the velocity change. With
    ``contact_radius`` > 0 the gate of an object without another within that radius is held shut (``can_open``);
    with ``contact_features`` each pair's message also reads ``contact_features``.
    """

    SHUT = -1e4
    """The gate logit of an object that cannot open (``contact_radius``)."""

    def __init__(
        self,
        layout: StateLayout,
        context_dim: int,
        hidden: int,
        contact_radius: float = 0.0,
        contact_features: bool = False,
    ) -> None:
        super().__init__()
        self.layout, self.contact_radius, self.contact_features = layout, contact_radius, contact_features
        P = layout.per_object
        edge = max(hidden // 2, 8)  # pairs outnumber objects: the messages are the head's cost
        self.edge = mlp(2 * P + 7 + (CONTACT_FEATURES if contact_features else 0), [edge], edge, layer_norm=True)
        self.context = nn.Linear(context_dim, hidden)
        nn.init.zeros_(self.context.weight)  # the transformer feature starts unused: state-only physics first
        nn.init.zeros_(self.context.bias)
        self.node = mlp(P + 1 + edge + hidden, [hidden, hidden], P + 1, layer_norm=True)
        last = self.node[-1]
        nn.init.zeros_(last.weight)  # an untrained head changes nothing and keeps its gates shut
        nn.init.zeros_(last.bias)
        with torch.no_grad():
            last.bias[-1] = -2.0
        self.register_buffer("scale", torch.ones(P))

    def set_scale(self, std: torch.Tensor) -> None:
        """Per-entry input and loss scale (``isotropic_scale``)."""
        self.scale.copy_(isotropic_scale(std, self.layout))

    def forward(self, real: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.layout
        obj = blocks(real, L) / self.scale  # [.., O, P]
        here = present(real, L)
        n_obj = L.objects
        p = obj[..., L.position[0] : L.position[1]] * self.scale[L.position[0] : L.position[1]]  # metres
        v = obj[..., L.velocity[0] : L.velocity[1]] * self.scale[L.velocity[0] : L.velocity[1]]
        dp = p[..., None, :, :] - p[..., :, None, :]  # [.., i, j, 3]: j relative to i
        dv = v[..., None, :, :] - v[..., :, None, :]
        dist = dp.norm(dim=-1, keepdim=True)
        parts = [
            obj[..., :, None, :].expand(*obj.shape[:-2], n_obj, n_obj, -1),
            obj[..., None, :, :].expand(*obj.shape[:-2], n_obj, n_obj, -1),
            dp,
            dv,
            dist,
        ]
        if self.contact_features:
            parts.append(contact_features(p, v, L.dt))
        pair = torch.cat(parts, -1)
        others = present_pairs(here)
        messages = (self.edge(pair) * others[..., None].to(obj.dtype)).sum(-2)
        ctx = self.context(context)[..., None, :].expand(*obj.shape[:-1], -1)
        out = self.node(torch.cat([obj, here[..., None].to(obj.dtype), messages, ctx], -1))
        change = out[..., :-1] * self.scale * here[..., None].to(obj.dtype)
        gate = out[..., -1]
        if self.contact_radius > 0:
            gate = gate.masked_fill(~self.can_open(real), self.SHUT)
        return change, gate

    def can_open(self, real: torch.Tensor) -> torch.Tensor:
        """``[.., O]`` bool: the objects whose gate may open (all present ones without a ``contact_radius``)."""
        if self.contact_radius > 0:
            return near_another(real, self.layout, self.contact_radius)
        return present(real, self.layout)


def gated(change: torch.Tensor, gate_logit: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """Flat real-unit change ``[.., S]`` with each object's velocity change kept only where its gate is open."""
    keep = torch.ones_like(change)
    v0, v1 = layout.velocity
    keep[..., v0:v1] = (gate_logit > 0).to(change.dtype)[..., None]
    return (change * keep).flatten(-2)


class PhysicsHead(nn.Module):
    """``[feature (in_dim - state_dim), current normalised state (state_dim)] -> next normalised state [.., S]``.

    With a ``layout``: the gated interaction network (``InteractionDynamics``) in real units, using the state
    statistics held in the buffers ``state_mean`` / ``state_std`` (the family copies its state normaliser there,
    ``set_state_stats``). Without one: an MLP residual added to the current normalised state.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        state_dim: int,
        layout: StateLayout | None = None,
        contact_radius: float = 0.0,
        contact_features: bool = False,
    ) -> None:
        super().__init__()
        if layout is not None and layout.state_dim != state_dim:
            raise ModelConfigurationError(f"state layout covers {layout.state_dim} values, the state has {state_dim}")
        if in_dim < state_dim:
            raise ModelConfigurationError(f"physics head input {in_dim} is smaller than the state ({state_dim})")
        self.layout, self.state_dim = layout, state_dim
        if layout is None:
            self.net = mlp(in_dim, [hidden, hidden], state_dim, layer_norm=True)
            last = self.net[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        else:
            self.dynamics = InteractionDynamics(layout, in_dim - state_dim, hidden, contact_radius, contact_features)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def set_state_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The ``(x - mean) / std`` statistics the states arrive normalised with."""
        self.state_mean.copy_(mean.reshape(self.state_mean.shape))
        self.state_std.copy_(std.reshape(self.state_std.shape))
        if self.layout is not None:
            self.dynamics.set_scale(self.state_std)

    def real(self, state: torch.Tensor) -> torch.Tensor:
        return state * self.state_std + self.state_mean

    def normalised(self, real: torch.Tensor) -> torch.Tensor:
        return (real - self.state_mean) / self.state_std

    def real_step(self, feature: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Next real-unit state (layouts only)."""
        return self._real_step_and_gate(feature, real)[0]

    def _real_step_and_gate(self, feature: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        change, gate = self.dynamics(real, feature)
        return integrate(real, gated(change, gate, self.layout), self.layout), gate

    def forward(self, feature: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.step_with_cue(feature, state)[0]

    @property
    def cue_dim(self) -> int:
        """Width of the cue of ``step_with_cue``."""
        return 2 * self.state_dim + (self.layout.objects if self.layout is not None else 0)

    def step_with_cue(self, feature: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(next normalised state, what the head knows about a contact between t and t+1 ``[.., cue_dim]``: the
        normalised state, its predicted successor and, with a layout, each object's probability that its velocity
        changes, the gate)."""
        if self.layout is None:
            nxt = state + self.net(torch.cat([feature, state], -1))
            return nxt, torch.cat([state, nxt], -1)
        real, gate = self._real_step_and_gate(feature, self.real(state))
        nxt = self.normalised(real)
        return nxt, torch.cat([state, nxt, torch.sigmoid(gate)], -1)


def physics_terms(
    head: PhysicsHead, feature: torch.Tensor, state: torch.Tensor, pair_mask: torch.Tensor, horizon: int = 8
) -> dict[str, torch.Tensor]:
    """The layout head's training terms on a window: ``feature [B, T, F]`` (the step's feature, teacher-forced),
    true normalised ``state [B, T, S]``, ``pair_mask [B, T-1]`` (t -> t+1 inside one episode).

    * ``physics_gate``: cross-entropy of each present object's gate against ``|v[t+1] - v[t]| > event_threshold``
      (objects whose gate cannot open, ``InteractionDynamics.can_open``, left out);
    * ``physics_event``: squared error of the (ungated) change against the true change on events, and of the
      orientation / angular-velocity change everywhere (in units of the head's input scale);
    * ``physics_rollout``: the head rolls out on its own states from the window's first step, up to ``horizon``
      steps inside the window and the episode; squared position and velocity errors (in input-scale units),
      averaged over steps (windows start at every step of the data, so every step is some window's start).
    """
    L, dyn = head.layout, head.dynamics
    real = head.real(state)
    now, nxt = real[:, :-1], real[:, 1:]
    here = present(now, L) & pair_mask[..., None]
    w = here.to(real.dtype)
    change, gate = dyn(now, feature[:, :-1])
    true_change = blocks(nxt - now, L)
    v0, v1 = L.velocity
    event = velocity_events(now, nxt, L)
    bce = F.binary_cross_entropy_with_logits(gate, event.to(gate.dtype), reduction="none")
    w_gate = (here & dyn.can_open(now)).to(real.dtype)
    terms = {"physics_gate": (bce * w_gate).sum() / w_gate.sum().clamp_min(1.0)}
    err = ((change - true_change) / dyn.scale).pow(2)
    rest = torch.ones(L.per_object, dtype=torch.bool, device=real.device)
    rest[v0:v1] = False
    rest[L.position[0] : L.position[1]] = False
    per_obj = err[..., v0:v1].sum(-1) * event.to(err.dtype) + err[..., rest].sum(-1)
    terms["physics_event"] = (per_obj * w).sum() / w.sum().clamp_min(1.0)
    terms["physics_rollout"] = _rollout_error(head, feature, real, pair_mask, horizon)
    return terms


def _rollout_error(
    head: PhysicsHead, feature: torch.Tensor, real: torch.Tensor, pair_mask: torch.Tensor, horizon: int
) -> torch.Tensor:
    """Mean over k of the k-step open-loop error from the window's first step, on the head's own states
    (``physics_terms``); steps after the episode ends (``pair_mask``) are left out."""
    L = head.layout
    (p0, p1), (v0, v1) = L.position, L.velocity
    cols = torch.cat([torch.arange(p0, p1), torch.arange(v0, v1)]).to(real.device)
    scale = head.dynamics.scale[cols]
    here = present(real[:, 0], L)
    guess, alive = real[:, 0], torch.ones_like(pair_mask[:, 0])
    total, count = real.new_zeros(()), real.new_zeros(())
    for k in range(1, min(horizon, real.shape[1] - 1) + 1):
        guess = head.real_step(feature[:, k - 1], guess)
        alive = alive & pair_mask[:, k - 1]
        m = (here & alive[:, None]).to(real.dtype)
        err = ((blocks(guess, L)[..., cols] - blocks(real[:, k], L)[..., cols]) / scale).pow(2).sum(-1)
        total = total + (err * m).sum()
        count = count + m.sum()
    return total / count.clamp_min(1.0)


__all__ = [
    "CONTACT_FEATURES",
    "CONTACT_SCALE",
    "STATE_LAYOUTS",
    "InteractionDynamics",
    "PhysicsHead",
    "StateLayout",
    "blocks",
    "constant_velocity_step",
    "contact_features",
    "gated",
    "integrate",
    "isotropic_scale",
    "near_another",
    "physics_terms",
    "present_pairs",
    "positions",
    "present",
    "velocities",
    "velocity_consistency",
    "velocity_events",
]
