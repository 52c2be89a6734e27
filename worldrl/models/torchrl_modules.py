"""Every world-model family as TorchRL modules: ``TensorDictModule``s with declared ``in_keys``/``out_keys``.

``torchrl_modules(model)`` wraps any ``WorldModel`` into the pieces TorchRL's model-based stack is written against
(``torchrl.envs.model_based``, ``torchrl.objectives.dreamer``), so a TorchRL script takes worldrl's modules where it
would take ``torchrl.modules.models.model_based``'s. The model's weights are shared, not copied: training a
module trains the model.

Keys (TorchRL conventions: the successor of a transition under ``"next"``, ``[..., 1]`` rewards and flags):

=============  =====================================================  ==========================================
module         in_keys                                                out_keys
=============  =====================================================  ==========================================
encoder        ``observation``, ``action``, ``is_init`` (optional)    ``state``, ``belief``
transition     ``state``, ``action``                                  ``("next", "state")``, ``("next", "belief")``
reward         ``("next", "state")``                                  ``("next", "reward")``
termination    ``("next", "state")``                                  ``("next", "terminated")``, ``("next", "done")``
decoder        ``state``                                              ``observation``
step           ``state``, ``action``                                  transition + reward + termination out_keys
world_model    as ``step`` (TorchRL's ``WorldModelWrapper``)          as ``step``
=============  =====================================================  ==========================================

* ``state``: the family's own state, a nested TensorDict (its entries are the family's business, as in
  ``worldrl.models.base``); ``belief``: ``model.latent(state)``, the flat feature vector ``[..., latent_dim]`` that
  actors and critics read (``DreamerActorLoss``'s ``belief`` key).
* ``observation``: the real task's observation, a tensor for a single-key task and a TensorDict keyed by dataset
  feature (``observation.state``, ``observation.images.<camera>``) for a keyed task, in the task's units.
* The encoder reads a tensordict of batch ``[]`` or ``[B]`` (or one without ``action``: a policy's input) as
  episode starts, and one of batch ``[B, T]`` as trajectories
  (TorchRL's layout: ``action[t]`` is the action taken at step t, so the previous action of step t is
  ``action[t-1]``; ``is_init`` from ``torchrl.envs.InitTracker`` marks episode starts, default: step 0 only).
  It writes every step's posterior state.
* ``termination``: ``terminated`` is ``model.terminal(state) > 0.5``; families that predict no termination never end.
* The decoder exists for families that decode (``capabilities.can_decode``); the reward head for those that
  predict rewards (``capabilities.predicts_reward``).
* Imagination is the mean prediction unless the modules get a ``torch.Generator`` (``generator=``): then it samples.
* ``world_model`` is ``torchrl.modules.WorldModelWrapper(transition + termination, reward)``: what
  ``torchrl.envs.model_based.ModelBasedEnvBase`` (and ``DreamerEnv``) take as ``world_model``; ``None`` without a
  reward head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.modules import WorldModelWrapper

from worldrl.models.base import WorldModel

STATE, BELIEF, OBSERVATION, ACTION, IS_INIT = "state", "belief", "observation", "action", "is_init"
NEXT_STATE, NEXT_BELIEF = ("next", STATE), ("next", BELIEF)
NEXT_REWARD, NEXT_TERMINATED, NEXT_DONE = ("next", "reward"), ("next", "terminated"), ("next", "done")


class _Encode(nn.Module):
    """Observations (and the actions between them) to posterior states and beliefs."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, observation, action: torch.Tensor | None = None, is_init: torch.Tensor | None = None):
        obs = observation
        task = self.model.task
        batch = obs.batch_size if isinstance(obs, TensorDictBase) else obs.shape[: obs.dim() - len(task.obs_shape)]
        if action is None:  # a policy's input: no action yet, each step encoded as an episode start
            action = torch.zeros(*batch, task.action_dim, device=self.model.device)
            is_init = None
        if len(batch) == 0:
            state, belief = self.forward(obs.unsqueeze(0), action.unsqueeze(0))
            return state[0], belief[0]
        batch = action.shape[:-1]
        if len(batch) == 1:  # single steps: each one an episode start
            seq = obs.unsqueeze(1) if isinstance(obs, TensorDictBase) else obs[:, None]
            is_first = torch.ones(batch[0], 1, dtype=torch.bool, device=action.device)
            state = self.model.observe_last(seq, torch.zeros_like(action)[:, None], is_first)
        elif len(batch) == 2:
            is_first = torch.zeros(batch, dtype=torch.bool, device=action.device)
            is_first[:, 0] = True
            if is_init is not None:
                is_first = is_first | is_init.reshape(batch).bool()
            prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], dim=1)
            prev_action = prev_action * (~is_first)[..., None]
            state = self.model.observe(obs, prev_action, is_first)
        else:
            raise ValueError(f"the encoder reads batches [B] or [B, T], got action of shape {tuple(action.shape)}")
        return state, self.model.latent(state)


class _Transition(nn.Module):
    def __init__(self, model: WorldModel, generator: torch.Generator | None) -> None:
        super().__init__()
        self.model, self.generator = model, generator

    def forward(self, state: TensorDictBase, action: torch.Tensor):
        batch = state.batch_size
        flat_state = state.reshape(-1)
        nxt = self.model.imagine(flat_state, action.reshape(-1, action.shape[-1]), self.generator)
        return nxt.reshape(batch), self.model.latent(nxt).reshape(*batch, -1)


class _Reward(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, state: TensorDictBase) -> torch.Tensor:
        return self.model.reward(state.reshape(-1)).reshape(*state.batch_size, 1)


class _Termination(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, state: TensorDictBase):
        terminated = (self.model.terminal(state.reshape(-1)) > 0.5).reshape(*state.batch_size, 1)
        return terminated, terminated.clone()


class _Decode(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, state: TensorDictBase):
        obs = self.model.decode(state.reshape(-1))
        if isinstance(obs, TensorDictBase):
            return obs.reshape(state.batch_size)
        return obs.reshape(*state.batch_size, *obs.shape[1:])


def encoder_module(model: WorldModel) -> TensorDictModule:
    return TensorDictModule(
        _Encode(model), in_keys=[OBSERVATION, ACTION, IS_INIT], out_keys=[STATE, BELIEF], strict=False
    )


def transition_module(model: WorldModel, generator: torch.Generator | None = None) -> TensorDictModule:
    return TensorDictModule(_Transition(model, generator), in_keys=[STATE, ACTION], out_keys=[NEXT_STATE, NEXT_BELIEF])


def reward_module(model: WorldModel, state_key=NEXT_STATE, reward_key=NEXT_REWARD) -> TensorDictModule:
    return TensorDictModule(_Reward(model), in_keys=[state_key], out_keys=[reward_key])


def termination_module(model: WorldModel, state_key=NEXT_STATE) -> TensorDictModule:
    prefix = state_key[:-1] if isinstance(state_key, tuple) else ()
    return TensorDictModule(
        _Termination(model), in_keys=[state_key], out_keys=[(*prefix, "terminated"), (*prefix, "done")]
    )


def decoder_module(model: WorldModel, state_key=STATE, observation_key=OBSERVATION) -> TensorDictModule:
    return TensorDictModule(_Decode(model), in_keys=[state_key], out_keys=[observation_key])


@dataclass
class WorldModelModules:
    """One family's TorchRL modules (see the module docstring for their keys); ``None`` where it has no such head."""

    model: WorldModel
    encoder: TensorDictModule
    transition: TensorDictModule
    reward: TensorDictModule | None
    termination: TensorDictModule
    decoder: TensorDictModule | None
    step: TensorDictSequential
    """One imagination step: ``state``, ``action`` -> ``("next", state/belief/reward/terminated/done)``."""
    world_model: WorldModelWrapper | None = None
    """The same step as TorchRL's ``WorldModelWrapper`` (transition operator, reward operator)."""


def torchrl_modules(model: WorldModel, generator: torch.Generator | None = None) -> WorldModelModules:
    """The TorchRL modules of ``model`` (sharing its weights); ``generator``: sample imagination from it."""
    caps = model.capabilities
    transition = transition_module(model, generator)
    reward = reward_module(model) if caps.predicts_reward else None
    termination = termination_module(model)
    heads = [transition, *([reward] if reward is not None else []), termination]
    wrapper = WorldModelWrapper(TensorDictSequential(transition, termination), reward) if reward is not None else None
    return WorldModelModules(
        model=model,
        encoder=encoder_module(model),
        transition=transition,
        reward=reward,
        termination=termination,
        decoder=decoder_module(model) if caps.can_decode else None,
        step=TensorDictSequential(*heads),
        world_model=wrapper,
    )


def initial_tensordict(model: WorldModel, observation, action_dim: int | None = None) -> TensorDict:
    """A ``[B]`` tensordict with ``state`` and ``belief`` encoded from observations ``[B, ...]`` (episode starts)."""
    batch = observation.batch_size[0] if isinstance(observation, TensorDictBase) else observation.shape[0]
    device = model.device
    td = TensorDict(
        {OBSERVATION: observation, ACTION: torch.zeros(batch, action_dim or model.task.action_dim, device=device)},
        batch_size=[batch],
        device=device,
    )
    return encoder_module(model)(td).exclude(ACTION)


__all__ = [
    "WorldModelModules",
    "decoder_module",
    "encoder_module",
    "initial_tensordict",
    "reward_module",
    "termination_module",
    "torchrl_modules",
    "transition_module",
]
