"""The Agent protocol, the registry of agents by name, and the observation window agents encode with.

An agent acts Gymnasium-style on numpy observations (one env ``[*obs_shape]`` or a batch ``[B, *obs_shape]``)
and keeps whatever per-environment memory it needs until ``reset(env_indices)``. Learners also have
``update(replay) -> metrics``, one signature for all of them; planners do not. Agents are found by name so scripts and the CLI never if-chain over classes:
``make_agent("mpc-cem", model=model, horizon=10)``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.errors import ConfigError

AGENT_CONFIG_NAME = "agent.json"


@runtime_checkable
class Agent(Protocol):
    """What evaluation loops call. Learners add ``update(replay) -> dict[str, float]`` (see ``is_learner``)."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation ``[*obs_shape] -> [A]`` or a batch ``[B, *obs_shape] -> [B, A]``."""
        ...

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        """Forget per-environment memory (all environments when None), e.g. after an episode ends."""
        ...

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the agent's settings (and weights, if it has any) into ``directory``; no pickle."""
        ...

    def load(self, directory: str | os.PathLike) -> None:
        """Restore what ``save`` wrote into this agent (the world model is passed at construction)."""
        ...


def is_learner(agent: Any) -> bool:
    """Whether ``agent`` learns: it has ``update(replay)``, which takes the real-step ``ReplayBuffer`` and returns
    metrics; it decides itself how much to learn from the rows added since its last call."""
    return callable(getattr(agent, "update", None))


# ----------------------------------------------------------------------------- registry
AgentFactory = Callable[..., Agent]
_AGENTS: dict[str, AgentFactory] = {}
# Imported on first use so `import worldrl.agents` stays light and modules register themselves.
_LAZY_AGENTS: dict[str, str] = {
    "mpc-cem": "worldrl.agents.mpc",
    "mpc-mppi": "worldrl.agents.mpc",
    "mpc-goal": "worldrl.agents.goal_mpc",
    "dreamer": "worldrl.agents.actor_critic",
    "mpc-ac": "worldrl.agents.mpc_ac",
    "mbpo": "worldrl.agents.mbpo",  # reserved: model-based SAC registers itself from its own module
}


def register_agent(name: str, factory: AgentFactory) -> None:
    """Make ``make_agent(name, **kwargs)`` call ``factory(**kwargs)``."""
    _AGENTS[name] = factory


def available_agents() -> list[str]:
    return sorted(set(_AGENTS) | set(_LAZY_AGENTS))


def make_agent(name: str, **kwargs: Any) -> Agent:
    """Build an agent by registered name; unknown names raise ``ConfigError`` listing the known ones."""
    if name not in _AGENTS and name in _LAZY_AGENTS:
        module = _LAZY_AGENTS[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency inside the module: let it surface
                raise
            raise ConfigError(f"agent {name!r} is reserved but {module} is not installed in this version") from None
    if name not in _AGENTS:
        raise ConfigError(f"unknown agent {name!r}; known agents: {available_agents()}")
    return _AGENTS[name](**kwargs)


# ----------------------------------------------------------------------------- observations
def as_batch(obs: Any, obs_shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, bool]:
    """Observation(s) as a ``[B, *obs_shape]`` tensor, and whether the input was a single observation."""
    array = np.asarray(obs)
    if array.shape == obs_shape:
        array, single = array[None], True
    elif array.ndim == len(obs_shape) + 1 and array.shape[1:] == obs_shape:
        single = False
    else:
        raise ValueError(f"observation has shape {array.shape}; expected {obs_shape} or (B, *{obs_shape})")
    tensor = torch.as_tensor(array, device=device)
    if tensor.is_floating_point():
        tensor = tensor.float()  # gymnasium hands out float64; models run in float32
    return tensor, single


class ObservationHistory:
    """Per-environment rolling window of ``(obs, prev_action, is_first)`` encoded with ``model.observe_last``.

    Markov models need a window of 1; recurrent models re-encode the last ``context_length`` steps each call,
    which is exact for models whose memory is that short and a truncation otherwise (the protocol has no
    one-step posterior update). A reset environment's window is filled with its first observation marked
    ``is_first``, so padding steps only reset the model's state again.
    """

    def __init__(self, model: Any, context_length: int, device: torch.device) -> None:
        if context_length < 1:
            raise ConfigError(f"context_length must be >= 1, got {context_length}")
        self.model = model
        self.context_length = context_length
        self.device = device
        self.action_dim = int(model.task.action_dim)
        self.num_envs: int | None = None

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        if env_indices is None or self.num_envs is None:
            self.num_envs = None
            return
        index = torch.as_tensor(list(env_indices), dtype=torch.long, device=self.device)
        self.fresh[index] = True
        self.pending_action[index] = 0.0

    def encode(self, obs: torch.Tensor) -> TensorDict:
        """Append this step's observations ``[B, *obs_shape]`` and return the model states ``[B]``."""
        batch = obs.shape[0]
        if self.num_envs is None:
            self._allocate(obs)
        elif batch != self.num_envs:
            raise ValueError(
                f"got {batch} observations but the agent tracks {self.num_envs} environments; "
                "call reset() before changing the number of environments"
            )
        self.obs = torch.cat([self.obs[:, 1:], obs[:, None]], dim=1)
        self.prev_action = torch.cat([self.prev_action[:, 1:], self.pending_action[:, None]], dim=1)
        self.is_first = torch.cat([self.is_first[:, 1:], self.fresh[:, None]], dim=1)
        fresh = self.fresh
        self.obs[fresh] = obs[fresh, None].expand_as(self.obs[fresh])
        self.prev_action[fresh] = 0.0
        self.is_first[fresh] = True
        self.fresh = torch.zeros_like(fresh)
        return self.model.observe_last(self.obs, self.prev_action, self.is_first)

    def record_action(self, action: torch.Tensor) -> None:
        """The actions taken after the last ``encode``: next step's ``prev_action``."""
        self.pending_action = action.detach().to(self.device, torch.float32).reshape(-1, self.action_dim)

    def _allocate(self, obs: torch.Tensor) -> None:
        batch, k = obs.shape[0], self.context_length
        self.num_envs = batch
        self.obs = obs[:, None].expand(batch, k, *obs.shape[1:]).clone()
        self.prev_action = torch.zeros(batch, k, self.action_dim, device=self.device)
        self.is_first = torch.ones(batch, k, dtype=torch.bool, device=self.device)
        self.pending_action = torch.zeros(batch, self.action_dim, device=self.device)
        self.fresh = torch.ones(batch, dtype=torch.bool, device=self.device)


def default_context_length(model: Any) -> int:
    capabilities = getattr(model, "capabilities", None)
    return 16 if capabilities is not None and capabilities.recurrent else 1


def to_action_array(action: torch.Tensor, space: Any, single: bool) -> np.ndarray:
    """Numpy actions inside ``space`` (clipped, in its dtype), unbatched for a single environment."""
    array = np.clip(action.detach().cpu().double().numpy(), space.low, space.high).astype(space.dtype)
    return array[0] if single else array


__all__ = [
    "AGENT_CONFIG_NAME",
    "Agent",
    "ObservationHistory",
    "as_batch",
    "available_agents",
    "default_context_length",
    "is_learner",
    "make_agent",
    "register_agent",
    "to_action_array",
]
