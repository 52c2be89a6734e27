"""Model-predictive control with a learned world model: encode, plan with CEM/MPPI, execute the first action.

``MPCAgent(model, planner="cem", horizon=10).act(obs)`` takes one observation or a batch of them (one per
environment) and returns numpy actions in the task's action space. Between calls it keeps, per environment,
the previous plan (warm start: shifted by one step) and the observation window the model encodes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from worldrl.agents.planners import PLANNERS, PlannerConfig, PlanResult, SamplingPlanner, make_planner, planner_config
from worldrl.agents.planners.common import ActionBox, PolicyPrior, ValueFn
from worldrl.agents.planners.step_scores import check_step_scores
from worldrl.agents.protocol import (
    AGENT_CONFIG_NAME,
    ObservationHistory,
    as_batch,
    default_context_length,
    register_agent,
    to_action_array,
)
from worldrl.errors import CheckpointError, ConfigError
from worldrl.io import read_json, write_json


class MPCAgent:
    """Receding-horizon planning agent over any ``WorldModel``.

    Args:
        model: the world model (any family); it is used, never modified.
        planner: ``"cem"``, ``"mppi"`` or a planner instance.
        horizon: planning horizon (shortcut for the planner config's ``horizon``).
        config: planner config (object or dict); keyword ``planner_settings`` override its fields.
        value_fn: optional ``latent -> value`` bootstrap beyond the horizon.
        policy_prior: optional ``latent -> action distribution`` whose rollouts join the candidates.
        device: where observations and plans live; defaults to the model's device.
        seed: seeds the planner's ``torch.Generator`` (None: a random seed).
        warm_start: start each plan from the previous one shifted by a step.
        context_length: observation window fed to ``observe_last`` (default 1, or 16 for recurrent models).
        fallback_margin: with ``act(obs, fallback=...)``, the model return by which the plan must beat holding the
            fallback action over the horizon to be executed (in the planner's return units).
    """

    def __init__(
        self,
        model: Any,
        planner: str | SamplingPlanner = "cem",
        horizon: int | None = None,
        config: PlannerConfig | dict[str, Any] | None = None,
        value_fn: ValueFn | None = None,
        policy_prior: PolicyPrior | None = None,
        device: str | torch.device | None = None,
        seed: int | None = 0,
        warm_start: bool = True,
        context_length: int | None = None,
        fallback_margin: float = 0.0,
        **planner_settings: Any,
    ) -> None:
        self.model = model
        self.fallback_margin = float(fallback_margin)
        self.last_gain: torch.Tensor | None = None
        if horizon is not None:
            planner_settings["horizon"] = horizon
        if isinstance(planner, SamplingPlanner):
            if config is not None or planner_settings:
                raise ConfigError("pass planner settings either in the planner instance or as arguments, not both")
            self.planner_name = _name_of(planner)
            self.planner = planner
        else:
            self.planner_name = planner
            self.planner = make_planner(
                planner, config, value_fn=value_fn, policy_prior=policy_prior, **planner_settings
            )
        check_step_scores(model, self.planner.config.reward, self.planner.config.termination)
        self.device = torch.device(device) if device is not None else model.device
        self.warm_start = warm_start
        self.space = model.task.action_space
        self.box = ActionBox.from_space(self.space, self.device)
        self.history = ObservationHistory(model, context_length or default_context_length(model), self.device)
        self.seed(seed)
        self.prev_mean: torch.Tensor | None = None
        self.last_result: PlanResult | None = None

    # ----------------------------------------------------------------- acting
    def seed(self, seed: int | None) -> None:
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._seed = seed

    def act(self, obs: np.ndarray | Mapping[str, Any], deterministic: bool = True, fallback: Any = None) -> np.ndarray:
        """Plan from ``obs`` (``[*obs_shape]`` or ``[B, *obs_shape]``; for a keyed task a dict of such arrays per
        key, as a Dict-space env returns) and return the first planned action(s).

        The plan's mean is executed either way (``deterministic`` is accepted for the Agent protocol); randomness
        comes from the agent's seeded generator, so a run is reproducible for a seed. ``fallback`` (one action per
        environment, ``[A]`` or ``[B, A]``): executed instead wherever the plan does not beat holding it
        (``gate``).
        """
        if isinstance(obs, Mapping):
            tensor, single = keyed_batch(obs, self.model.task, self.device)
        else:
            tensor, single = as_batch(obs, tuple(self.model.task.obs_shape), self.device)
        state = self.history.encode(tensor)
        result = self.plan(state)
        action = result.action
        if fallback is not None:
            hold = torch.as_tensor(np.asarray(fallback), dtype=action.dtype, device=action.device)
            action = self.gate(state, result, hold.unsqueeze(0) if hold.dim() == 1 else hold)
        self.history.record_action(action)
        return to_action_array(action, self.space, single)

    def gate(self, state: TensorDict, result: PlanResult, fallback: torch.Tensor) -> torch.Tensor:
        """Do no harm: per environment, the plan's first action where the model expects the plan to return at
        least ``fallback_margin`` more than holding ``fallback [B, A]`` for the whole horizon (for a position-
        controlled robot, its current position: standing still), else the fallback. Both sequences are scored in
        one rollout from the same states; the gains are kept in ``last_gain``. The optimiser's pick is the
        sequence the model is most optimistic about, so a gain within the model's noise is no reason to move."""
        if fallback.shape != result.action.shape:
            raise ValueError(
                f"fallback must be one action per environment {tuple(result.action.shape)}, got {tuple(fallback.shape)}"
            )
        held = fallback.unsqueeze(1).expand_as(result.mean)
        returns = self.planner.evaluate(self.model, state, torch.stack([result.mean, held], 1), self.generator)
        self.last_gain = returns[:, 0] - returns[:, 1]
        return torch.where((self.last_gain >= self.fallback_margin)[:, None], result.action, fallback)

    def plan(self, state: TensorDict) -> PlanResult:
        """One planning call from model states ``[B]``, warm-started per environment; keeps the plan."""
        prev = self.prev_mean if self.warm_start else None
        if prev is not None and prev.shape[0] != state.batch_size[0]:
            prev = None
        result = self.planner.plan(self.model, state, prev, self.generator)
        self.prev_mean = result.mean.clone()  # reset() edits rows in place; keep last_result intact
        self.last_result = result
        return result

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        """Clear warm starts and observation windows (of the given environments, or all)."""
        self.history.reset(env_indices)
        if env_indices is None or self.prev_mean is None:
            self.prev_mean = None
            return
        # A plan sitting at the action-space centre shifts into a cold start (normalised zeros).
        self.prev_mean[list(env_indices)] = self.box.centre

    # ----------------------------------------------------------------- persistence
    def settings(self) -> dict[str, Any]:
        return {
            "agent": f"mpc-{self.planner_name}",
            "planner": self.planner_name,
            "config": self.planner.config.to_dict(),
            "seed": self._seed,
            "warm_start": self.warm_start,
            "context_length": self.history.context_length,
            "fallback_margin": self.fallback_margin,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``agent.json`` (planner name and settings); the world model is saved on its own."""
        directory = Path(directory)
        write_json(directory / AGENT_CONFIG_NAME, self.settings())
        return directory

    def load(self, directory: str | os.PathLike) -> None:
        path = Path(directory) / AGENT_CONFIG_NAME
        data = read_json(path)
        name = data.get("planner")
        if name not in PLANNERS:
            raise CheckpointError(f"{path}: 'planner' must be one of {sorted(PLANNERS)}, got {name!r}")
        self._rebuild_planner(name, data.get("config", {}))
        self.warm_start = bool(data.get("warm_start", True))
        self.history = ObservationHistory(self.model, int(data.get("context_length", 1)), self.device)
        self.fallback_margin = float(data.get("fallback_margin", 0.0))
        self.seed(data.get("seed"))
        self.prev_mean = None

    def configure_planner(self, **settings: Any) -> None:
        """Replace planner settings (e.g. ``horizon=25, reward="task"``) keeping the rest; plans restart cold.

        For ablations on a trained model: the model is untouched, only how it is searched changes.
        """
        self._rebuild_planner(self.planner_name, {**self.planner.config.to_dict(), **settings})
        self.prev_mean = None

    def _rebuild_planner(self, name: str, config: dict[str, Any]) -> None:
        old = self.planner
        self.planner = PLANNERS[name].planner_class(
            planner_config(name, config),
            value_fn=old.value_fn,
            policy_prior=old.policy_prior,
            action_space=old.action_space,
        )
        check_step_scores(self.model, self.planner.config.reward, self.planner.config.termination)
        self.planner_name = name


def keyed_batch(obs: Mapping[str, Any], task: Any, device: torch.device) -> tuple[TensorDict, bool]:
    """A keyed observation (one entry per ``task.obs_keys``, single or batched) as a ``TensorDict [B]``."""
    if not task.is_keyed:
        raise ValueError(f"got a keyed observation {sorted(obs)}; task {task.task_id!r} observes one array")
    missing = [key for key in task.obs_keys if key not in obs]
    if missing:
        raise ValueError(f"keyed observation lacks {missing}; task {task.task_id!r} observes {task.obs_keys}")
    entries = {key: as_batch(obs[key], tuple(task.key_space(key).shape), device) for key in task.obs_keys}
    sizes = {key: (t.shape[0], single) for key, (t, single) in entries.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"keyed observation entries disagree on the batch: {sizes}")
    batch, single = next(iter(sizes.values()))
    return TensorDict({key: t for key, (t, _) in entries.items()}, batch_size=[batch]), single


def _name_of(planner: SamplingPlanner) -> str:
    for name, entry in PLANNERS.items():
        if isinstance(planner, entry.planner_class):
            return name
    raise ValueError(f"{type(planner).__name__} is not a registered planner; known planners: {sorted(PLANNERS)}")


register_agent("mpc-cem", functools.partial(MPCAgent, planner="cem"))
register_agent("mpc-mppi", functools.partial(MPCAgent, planner="mppi"))

__all__ = ["MPCAgent", "keyed_batch"]
