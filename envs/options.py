"""``EnvOptions``: how a world model becomes an environment, shared by the Gymnasium, vector and TorchRL envs.

Each front end takes these fields as keyword arguments (``gym.make("WorldModel-v0", reward="task", ...)``) or one
``options=EnvOptions(...)``; ``EnvOptions.from_kwargs`` refuses unknown names, listing the known ones.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from worldrl.errors import EnvError
from worldrl.models.step_scoring import REWARD_SOURCES, TERMINATION_SOURCES

OBS_MODES = ("observation", "latent")
ACTION_POLICIES = ("clip", "error")


@dataclass
class EnvOptions:
    """Model, start states, reward and termination sources, sampling and action checks of a learned env."""

    model: Any = None
    """A ``WorldModel``, a checkpoint directory or a Hub id; None: the bundled default model."""
    revision: str | None = None
    """The Hub revision (branch, tag or commit) of a ``model`` given as a Hub id; None: main."""
    device: str | torch.device | None = None
    """Where the model runs; None keeps an instance where it is and loads checkpoints on the CPU."""
    obs_mode: str | None = None
    """``"observation"`` (decoded, in the task's space; a ``Dict`` for keyed tasks) or ``"latent"``; None:
    observation where the model can decode (``capabilities.can_decode``), else latent."""
    reward: str | None = None
    """``"model"`` (learned head), ``"task"`` (the task's known function on predicted observations) or ``"goal"``
    (minus the latent distance to a goal observation); None: model, else task, else goal
    (``worldrl.models.step_scoring``)."""
    termination: str | None = None
    """``"model"`` (learned terminal probability > ``terminal_threshold``), ``"task"`` or ``"none"``; None: model
    where ``capabilities.predicts_terminal``, else task where the task has a function, else none."""
    goal: Any = None
    """A goal observation for ``reward="goal"`` (``reset(options={"goal": obs})`` replaces it per episode)."""
    start_states: Any = None
    """Observations episodes start from ``[N, *obs_shape]`` (a mapping of such arrays for keyed tasks)."""
    dataset: str | os.PathLike | None = None
    """A LeRobot dataset root: episodes start from its episodes' first observations."""
    sample: bool = False
    """Stochastic imagination with the env's seeded ``torch.Generator``; False: the model's mean prediction."""
    action_policy: str = "clip"
    """Out-of-bounds actions: ``"clip"`` into the action space or ``"error"``. NaN/inf actions always raise."""
    terminal_threshold: float = 0.5
    """A learned terminal probability above this ends the episode."""
    task_id: str | None = None
    """Assert what the model simulates: a model trained for another task is refused."""
    start_pool_size: int = 1024
    """How many real-env resets make the start-state pool when start states come from the real task."""

    def __post_init__(self) -> None:
        for name, allowed in (
            ("obs_mode", OBS_MODES),
            ("reward", REWARD_SOURCES),
            ("termination", TERMINATION_SOURCES),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise EnvError(f"{name} must be one of {allowed} (or None for automatic), got {value!r}")
        if self.action_policy not in ACTION_POLICIES:
            raise EnvError(f"action_policy must be one of {ACTION_POLICIES}, got {self.action_policy!r}")
        if not 0.0 <= self.terminal_threshold <= 1.0:
            raise EnvError(f"terminal_threshold must be in [0, 1], got {self.terminal_threshold}")
        if self.start_pool_size < 1:
            raise EnvError(f"start_pool_size must be >= 1, got {self.start_pool_size}")

    @classmethod
    def from_kwargs(cls, options: EnvOptions | None, kwargs: dict[str, Any]) -> EnvOptions:
        """``options`` with ``kwargs`` applied on top; unknown names are an ``EnvError`` naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise EnvError(f"unknown world-model env option(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(options or cls(), **kwargs)


__all__ = ["ACTION_POLICIES", "OBS_MODES", "EnvOptions"]
