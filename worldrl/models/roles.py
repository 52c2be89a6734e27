"""The protocol's roles: the smallest interfaces consumers ask for.

``WorldModel`` (``worldrl.models.base``) is their union and every family implements it; consumers type their
inputs with the role they use, so a planner works with anything that has ``Dynamics`` + ``RewardModel`` (a TorchRL env qualifies), a goal
reward with anything that has ``LatentTargets``, and a renderer with an ``ObservationDecoder``. These are
structural (``typing.Protocol``): a test double or an adapter needs no inheritance.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from tensordict import TensorDict

from worldrl.models.observations import Observation


@runtime_checkable
class Encoder(Protocol):
    """Real observations (and the actions between them) to model states."""

    def initial_state(self, batch_size: int) -> TensorDict: ...

    def observe(self, obs: Observation, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict: ...

    def observe_last(self, obs: Observation, prev_action: torch.Tensor, is_first: torch.Tensor) -> TensorDict: ...


@runtime_checkable
class Dynamics(Protocol):
    """The learned transition: one step, or an open-loop rollout of an action sequence."""

    def imagine(
        self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None
    ) -> TensorDict: ...

    def rollout(
        self, state: TensorDict, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> TensorDict: ...


@runtime_checkable
class ObservationDecoder(Protocol):
    """States back to observations in the task's units: a tensor, or a TensorDict with one entry per key."""

    def decode(self, state: TensorDict) -> Observation: ...


@runtime_checkable
class RewardModel(Protocol):
    """Read-outs of the transition that led to a state."""

    def reward(self, state: TensorDict) -> torch.Tensor: ...

    def terminal(self, state: TensorDict) -> torch.Tensor: ...


@runtime_checkable
class LatentTargets(Protocol):
    """A latent space where observations and imagined states meet (goal rewards, latent fidelity, planning)."""

    def latent(self, state: TensorDict) -> torch.Tensor: ...

    def embed(self, obs: Observation) -> torch.Tensor: ...

    def state_embedding(self, state: TensorDict) -> torch.Tensor: ...

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Trainable(Protocol):
    """What the shared trainer needs: losses per group, optimiser groups and normalisation."""

    def loss_groups(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], dict[str, float]]: ...

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]: ...

    def fit_normalization(self, stats: dict[str, dict[str, Any]]) -> None: ...


__all__ = ["Dynamics", "Encoder", "LatentTargets", "ObservationDecoder", "RewardModel", "Trainable"]
