"""``OnlineConfig``: one run of the online loop, and the agent settings the loop starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldrl.agents.protocol import available_agents
from worldrl.config_loading import check_fields, config_from_dict

DEFAULT_AGENT_OPTIONS: dict[str, dict[str, Any]] = {
    # Sized so Pendulum-v1 at 5000 real steps runs in minutes on two CPU cores; raise them on a GPU.
    "mpc-cem": {"horizon": 12, "num_samples": 200, "num_elites": 20, "iterations": 2},
    "mpc-mppi": {"horizon": 12, "num_samples": 200, "num_elites": 50, "iterations": 2},
    "dreamer": {"actor_lr": 1e-4, "critic_lr": 3e-4},
    # the actor-critic as the planner's prior and value: one imagination update per 5 real steps, as dreamer on
    # the CPU benchmark. The plans rank by the critic's value (97% of the candidates' return spread on
    # InvertedPendulum), so the critic needs those updates: with a critic trained at this rate the 5-step search
    # held the pole for 200 of 200 steps, without the value 48.6; at one update per 10 steps mpc-ac ended at 57.8
    "mpc-ac": {"ac_actor_lr": 1e-4, "ac_critic_lr": 3e-4, "ac_updates_per_real_step": 0.2},
    "mbpo": {},
}
"""Agent settings the loop starts from; ``OnlineConfig.agent_options`` override them key by key."""


@dataclass
class OnlineConfig:
    """One online run: which agent on which real env, for how many real steps, and how to fit the model."""

    agent: str = "mpc-cem"
    """Registered agent name (``worldrl.agents.available_agents()``): mpc-cem, mpc-mppi, mpc-ac, dreamer, mbpo."""
    env_id: str = "Pendulum-v1"
    """The real environment (a Gymnasium id or ``dmc:domain-task``); actions must be a continuous Box."""
    real_steps: int = 5000
    """Total real environment steps (the budget every comparison is made at)."""
    seed: int = 0
    """Seeds the real env, the random warm-up actions, the model fits and the agent."""
    initial_random_steps: int | None = None
    """Real steps with uniform random actions before the agent acts; None: one episode of the task."""
    steps_per_iteration: int = 250
    """Real steps collected between two model fits / agent improvements (MBPO refits every 250)."""
    collect_envs: int = 1
    """Real envs stepped in parallel worker processes during collection (Gymnasium ``AsyncVectorEnv``); it must
    divide ``real_steps`` and ``steps_per_iteration``. 1: one env in this process."""
    model_config: str | None = None
    """YAML with ``model``/``trainer``/``data.window`` sections (``worldrl train`` layout); None:
    the packaged preset ``ensemble_<task>.yaml`` when one exists, else a small generic ensemble."""
    model_family: str | None = None
    """World-model family (``ensemble``, ``vrnn``, ...): picks the packaged preset ``<family>_<task>.yaml`` when
    ``model_config`` is None, and must match ``model_config``'s family otherwise; None: the ensemble."""
    model_options: dict[str, Any] = field(default_factory=dict)
    """Model settings over the ``model`` section of ``model_config`` (or the preset), key by key, e.g.
    ``{"nll_beta": 0.5}``; the family's config checks them like the file's own."""
    model: str | None = None
    """A pretrained world-model checkpoint to start from (must be trained for ``env_id``); None: fresh model."""
    model_steps: int = 100
    """Optimiser steps of each model fit (fine-tuning the same model every iteration)."""
    eval_every: int = 1000
    """Evaluate on the real env every this many real steps (and always at the end)."""
    eval_episodes: int = 5
    """Real episodes per evaluation (run in parallel, one env copy each)."""
    output_dir: str = "runs/train_agent"
    """Where curves, checkpoints, the final model and agent are written."""
    device: str = "auto"
    """Torch device of model and agent (``"cpu"``, ``"cuda"``, ...); ``"auto"`` picks CUDA when available."""
    agent_options: dict[str, Any] = field(default_factory=dict)
    """Agent settings on top of ``DEFAULT_AGENT_OPTIONS[agent]`` (planner fields, actor-critic or MBPO config)."""
    save_dataset: bool = True
    """Write the real steps as a LeRobot v3.0 dataset under ``output_dir/data`` at the end."""
    video: bool = True
    """Record one real episode of the final agent as ``output_dir/final_episode.mp4`` at the end."""
    overwrite: bool = False
    """Replace the outputs of an earlier run in ``output_dir``; without it such a directory is refused
    (the online loop cannot resume a run)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "real_steps": (self.real_steps >= 1, ">= 1"),
                "initial_random_steps": (self.initial_random_steps is None or self.initial_random_steps >= 0, ">= 0"),
                "steps_per_iteration": (self.steps_per_iteration >= 1, ">= 1"),
                "collect_envs": (
                    self.collect_envs >= 1
                    and self.real_steps % self.collect_envs == 0
                    and self.steps_per_iteration % self.collect_envs == 0,
                    ">= 1 and a divisor of real_steps and steps_per_iteration",
                ),
                "model_steps": (self.model_steps >= 1, ">= 1"),
                "eval_every": (self.eval_every >= 1, ">= 1"),
                "eval_episodes": (self.eval_episodes >= 1, ">= 1"),
                "agent_options": (isinstance(self.agent_options, dict), "a mapping"),
                "model_options": (
                    isinstance(self.model_options, dict) and "family" not in self.model_options,
                    "a mapping without 'family' (model_family picks the family)",
                ),
                "agent": (self.agent in available_agents(), f"a known agent {available_agents()} (unknown agent)"),
            },
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineConfig:
        """The config from a saved run's ``state.json`` or a YAML mapping (strict: ``config_from_dict``)."""
        return config_from_dict(cls, data, "online")


__all__ = ["DEFAULT_AGENT_OPTIONS", "OnlineConfig"]
