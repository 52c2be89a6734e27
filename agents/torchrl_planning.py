"""Our CEM/MPPI planners behind TorchRL's planner interface (``torchrl.modules.planners.MPCPlannerBase``).

``TorchRLPlanner(env, "cem", horizon=8)`` is a TensorDict module: call it on a tensordict (or pass it as the
policy of ``env.rollout``) and it writes ``"action"``. Two ways to score candidates:

* env mode (default, TorchRL's own convention): the batch-unlocked env *is* the model. ``EnvDynamics`` exposes
  it through the planners' ``PlanningModel`` role; all ``B x N`` candidates run in one ``env.rollout`` over the expanded
  tensordict. Rewards are read from ``("next", "reward")``; termination from ``("next", "terminated")`` (falling
  back to ``("next", "done")``), so a time-limit truncation does not end a candidate's return. The env samples
  with its own RNG; the planner's generator drives the action sampling.
* model mode: pass ``model=`` (any ``WorldModel``) and ``state_fn`` mapping the env's tensordict to model states
  ``[B]``; candidates are then scored by one ``model.rollout`` call, exactly as ``MPCAgent`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import NestedKey, TensorDict, TensorDictBase
from torchrl.data import Bounded, Unbounded
from torchrl.envs import EnvBase
from torchrl.envs.utils import step_mdp
from torchrl.modules.planners import MPCPlannerBase

from worldrl.agents.planners import SamplingPlanner, make_planner
from worldrl.agents.planners.common import PlanningModel


def spec_to_box(spec: Any) -> gym.spaces.Box:
    """The Box a continuous TorchRL action spec stands for; discrete specs are refused (planners are Gaussian)."""
    if isinstance(spec, Bounded):
        low = spec.space.low.detach().cpu().numpy().astype(np.float32)
        high = spec.space.high.detach().cpu().numpy().astype(np.float32)
        return gym.spaces.Box(low, high, dtype=np.float32)
    if isinstance(spec, Unbounded) and spec.dtype.is_floating_point:
        return gym.spaces.Box(-np.inf, np.inf, tuple(spec.shape), dtype=np.float32)
    raise ValueError(f"CEM/MPPI planners need a continuous (Bounded or Unbounded float) action spec, got {spec}")


class _ActionSequence:
    """Policy for ``env.rollout`` that replays precomputed actions ``[M, H, A]`` step by step."""

    def __init__(self, actions: torch.Tensor, action_key: NestedKey) -> None:
        self.actions, self.action_key, self.step = actions, action_key, 0

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.step >= self.actions.shape[1]:
            raise ValueError("env.rollout asked for more steps than the planned horizon")
        tensordict.set(self.action_key, self.actions[:, self.step])
        self.step += 1
        return tensordict


class _SpecTask:
    """Just enough of a TaskSpec for planners: the action space."""

    def __init__(self, action_space: gym.spaces.Box) -> None:
        self.action_space = action_space


class EnvDynamics:
    """A batch-unlocked TorchRL env seen through the planners' ``PlanningModel`` role.

    A state is the env's tensordict (batch ``[M]``); after a step it is the transition tensordict holding the
    ``"next"`` entries, which is what ``reward``/``terminal``/``latent`` read.
    """

    def __init__(self, env: EnvBase, action_key: NestedKey = "action") -> None:
        if env.batch_locked:
            raise ValueError(f"{type(env).__name__} is batch-locked; planning needs a batch-unlocked env")
        self.env = env
        self.action_key = action_key
        self.task = _SpecTask(spec_to_box(env.action_spec))
        self.observation_keys = list(env.observation_spec.keys(True, True))
        self.reward_key = ("next", *_as_tuple(env.reward_key))
        self.terminal_key = ("next", "terminated")

    def rollout(self, state: TensorDictBase, actions: torch.Tensor, generator: torch.Generator | None = None):
        return self.env.rollout(
            max_steps=actions.shape[1],
            policy=_ActionSequence(actions, self.action_key),
            auto_reset=False,
            tensordict=state.clone(),
            break_when_any_done=False,
        )

    def imagine(self, state: TensorDictBase, action: torch.Tensor, generator: torch.Generator | None = None):
        current = step_mdp(state, exclude_action=True) if "next" in state.keys() else state.clone()
        current.set(self.action_key, action)
        return self.env.step(current)

    def reward(self, state: TensorDictBase) -> torch.Tensor:
        return state.get(self.reward_key).reshape(state.batch_size)

    def terminal(self, state: TensorDictBase) -> torch.Tensor:
        key = self.terminal_key if self.terminal_key in state.keys(True) else ("next", "done")
        return state.get(key).float().reshape(state.batch_size)

    def latent(self, state: TensorDictBase) -> torch.Tensor:
        """The next observations of a transition (or the observations of a start state), flattened."""
        source = state.get("next") if "next" in state.keys() else state
        parts = [source.get(k).float().reshape(*state.batch_size, -1) for k in self.observation_keys]
        return torch.cat(parts, dim=-1)


class TorchRLPlanner(MPCPlannerBase):
    """A ``MPCPlannerBase`` whose ``planning`` runs our CEM/MPPI (see the module docstring for the two modes).

    Args:
        env: a batch-unlocked TorchRL env (the real one, or a model-based env).
        planner: ``"cem"``, ``"mppi"`` or a planner instance; ``planner_settings`` configure a named one.
        model / state_fn: model mode (see the module docstring); both or neither.
        seed: seeds the planner's generator.
        warm_start: reuse the previous plan (shifted) while the batch size stays the same; TorchRL's planners
            are stateless, so this is off by default. ``reset()`` clears it.
    """

    def __init__(
        self,
        env: EnvBase,
        planner: str | SamplingPlanner = "cem",
        model: PlanningModel | None = None,
        state_fn: Callable[[TensorDictBase], TensorDict] | None = None,
        seed: int | None = 0,
        warm_start: bool = False,
        action_key: NestedKey = "action",
        **planner_settings: Any,
    ) -> None:
        super().__init__(env=env, action_key=action_key)
        if (model is None) != (state_fn is None):
            raise ValueError("model mode needs both model= and state_fn= (env tensordict -> model states [B])")
        box = spec_to_box(env.action_spec)
        if isinstance(planner, SamplingPlanner):
            self.planner = planner
        else:
            self.planner = make_planner(planner, action_space=None if model is not None else box, **planner_settings)
        self.dynamics = model if model is not None else EnvDynamics(env, action_key)
        self.state_fn = state_fn
        self.generator = torch.Generator(device=env.device or "cpu")
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self.warm_start = warm_start
        self.prev_mean: torch.Tensor | None = None

    def reset(self) -> None:
        self.prev_mean = None

    def planning(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Plan for every entry of ``tensordict`` (any batch shape) and return the first actions."""
        batch_shape = tensordict.batch_size
        flat = tensordict.reshape(-1) if len(batch_shape) != 1 else tensordict
        state = self.state_fn(flat) if self.state_fn is not None else flat.exclude("next").clone()
        prev = self.prev_mean
        if not self.warm_start or prev is None or prev.shape[0] != state.batch_size[0]:
            prev = None
        result = self.planner.plan(self.dynamics, state, prev, self.generator)
        self.prev_mean = result.mean if self.warm_start else None
        return result.action.reshape(*batch_shape, *result.action.shape[1:])


def _as_tuple(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


__all__ = ["EnvDynamics", "TorchRLPlanner", "spec_to_box"]
