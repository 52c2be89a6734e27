"""``mpc-ac``: MPC whose search is guided by an imagination actor-critic (TD-MPC2's recipe on any world model).

The actor-critic (``ImaginationActorCritic``, learned in imagination from observed real states) serves the planner
twice: its actor's rollouts join the sampled candidates (policy prior) and its critic's value ends every candidate
(terminal value), so the planner only has to search a short horizon with few samples. The actor-critic learns in
``update(replay)``; acting plans with CEM or MPPI. Settings are flat, as ``--agent-option`` gives them: planner
fields by their own names (``horizon``, ``num_samples``, ...), actor-critic fields prefixed ``ac_``
(``ac_horizon``, ``ac_updates_per_real_step``, ...).

Saved as ``agent.json`` (names both parts' settings) with the actor-critic's weights in ``actor_critic/``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldrl.agents.actor_critic import ActorCriticConfig, ImaginationActorCritic
from worldrl.agents.mpc import MPCAgent
from worldrl.agents.planners import PLANNERS, planner_config
from worldrl.agents.protocol import AGENT_CONFIG_NAME, register_agent
from worldrl.errors import CheckpointError, ConfigError
from worldrl.io import read_json, write_json

AC_PREFIX = "ac_"
AC_DIR = "actor_critic"
DEFAULT_PLANNER: dict[str, Any] = {
    "horizon": 5,
    "num_samples": 64,
    "num_prior_samples": 16,
    "num_elites": 8,
    "iterations": 2,
}
"""A short, narrow search: 64 x 5 x 2 + 16 x 5 = 720 model steps per action, against MPC's 200 x 12 x 2 = 4800."""


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat options -> ``(planner fields, actor-critic fields)``; ``ac_``-prefixed keys go to the actor-critic."""
    planner = {k: v for k, v in settings.items() if not k.startswith(AC_PREFIX)}
    actor_critic = {k[len(AC_PREFIX) :]: v for k, v in settings.items() if k.startswith(AC_PREFIX)}
    known = {f.name for f in dataclasses.fields(ActorCriticConfig)}
    unknown = sorted(AC_PREFIX + k for k in set(actor_critic) - known)
    if unknown:
        raise ConfigError(
            f"mpc-ac: unknown actor-critic settings {unknown}; known: {sorted(AC_PREFIX + k for k in known)}"
        )
    return planner, actor_critic


class MPCActorCritic:
    """``MPCActorCritic(model, planner="cem", horizon=5, ac_horizon=15)``: plans with ``mpc``, learns ``actor_critic``.

    Args:
        model: the world model (any family with latents, rewards and ``imagine``).
        planner: ``"cem"`` or ``"mppi"``.
        config: a saved ``{"planner", "planner_config", "actor_critic"}`` mapping (what ``save`` writes).
        device, seed, context_length: as for ``MPCAgent`` (the actor-critic gets ``seed`` too).
        settings: planner fields and ``ac_``-prefixed actor-critic fields, over ``DEFAULT_PLANNER``.
    """

    def __init__(
        self,
        model: Any,
        planner: str = "cem",
        config: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        seed: int | None = 0,
        context_length: int | None = None,
        **settings: Any,
    ) -> None:
        saved = dict(config or {})
        planner = saved.get("planner", planner)
        if planner not in PLANNERS:
            raise ConfigError(f"mpc-ac: unknown planner {planner!r}; known planners: {sorted(PLANNERS)}")
        planner_settings, ac_settings = split_settings(settings)
        ac_config = ActorCriticConfig.from_dict({**saved.get("actor_critic", {}), **ac_settings})
        plan_config = planner_config(
            planner, {**DEFAULT_PLANNER, **saved.get("planner_config", {}), **planner_settings}
        )
        self.model = model
        self.actor_critic = ImaginationActorCritic(model, ac_config, device=device, seed=seed)
        self.mpc = MPCAgent(
            model,
            planner,
            config=plan_config,
            value_fn=self.actor_critic.value,
            policy_prior=self.actor_critic.policy_prior,
            device=device,
            seed=seed,
            context_length=context_length,
        )
        self._seed = seed

    # ----------------------------------------------------------------- the Agent protocol
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The first action of the guided plan (the planner's own seeded sampling is the exploration)."""
        with torch.no_grad():
            return self.mpc.act(obs, deterministic)

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        self.mpc.reset(env_indices)
        self.actor_critic.reset(env_indices)

    def update(self, replay: Any) -> dict[str, float]:
        """The actor-critic's imagination updates (the planner has nothing to learn)."""
        return self.actor_critic.update(replay)

    def configure_planner(self, **settings: Any) -> None:
        """Re-plan with other planner settings (``worldrl evaluate-agent --planner-option``); prior and value stay."""
        self.mpc.configure_planner(**settings)

    # ----------------------------------------------------------------- persistence
    def settings(self) -> dict[str, Any]:
        return {
            "agent": "mpc-ac",
            "seed": self._seed,
            "context_length": self.mpc.history.context_length,
            "config": {
                "planner": self.mpc.planner_name,
                "planner_config": self.mpc.planner.config.to_dict(),
                "actor_critic": self.actor_critic.config.to_dict(),
            },
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """``agent.json`` (planner and actor-critic settings) + ``actor_critic/`` (its weights)."""
        directory = Path(directory)
        self.actor_critic.save(directory / AC_DIR)
        write_json(directory / AGENT_CONFIG_NAME, self.settings())
        return directory

    def load(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        data = read_json(directory / AGENT_CONFIG_NAME)
        if data.get("agent") != "mpc-ac":
            raise CheckpointError(f"{directory / AGENT_CONFIG_NAME} holds a {data.get('agent')!r} agent, not mpc-ac")
        config = data.get("config") or {}
        self.actor_critic.load(directory / AC_DIR)
        self.mpc._rebuild_planner(config.get("planner", self.mpc.planner_name), config.get("planner_config", {}))
        self.mpc.prev_mean = None


register_agent("mpc-ac", MPCActorCritic)

__all__ = ["AC_PREFIX", "DEFAULT_PLANNER", "MPCActorCritic", "split_settings"]
