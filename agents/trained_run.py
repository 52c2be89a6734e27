"""Reload what ``train_agent`` saved (``<run>/model`` and ``<run>/agent``) to act or be evaluated again.

``load_trained_agent("runs/mpc-cem_Pendulum-v1_s0")`` rebuilds the world model from its safetensors checkpoint
and the agent from ``agent.json`` (+ ``agent.safetensors`` for learned agents); no code is run from either.
``planner_settings`` re-plan a trained MPC agent with other settings on the same model (horizon, samples,
``reward="task"``), which separates what the model learned from how it is searched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldrl.agents.protocol import AGENT_CONFIG_NAME, make_agent
from worldrl.errors import CheckpointError, ConfigError, InputNotFoundError
from worldrl.io import read_json

MODEL_DIR, AGENT_DIR = "model", "agent"


@dataclass
class TrainedAgent:
    """A saved run, loaded."""

    agent: Any
    """The agent, ready to ``act(obs)``."""
    model: Any
    """Its world model."""
    name: str
    """Registered agent name (``mpc-cem``, ``dreamer``, ...)."""
    env_id: str
    """The real task the model was trained on."""
    seed: int
    """The run's seed (evaluations of the run used ``seed + 10000``)."""


def find_run_parts(run_dir: Path) -> tuple[Path, Path]:
    """``(model_dir, agent_dir)`` of a run, or a FileNotFoundError saying which part is missing."""
    if not run_dir.is_dir():
        raise InputNotFoundError(f"run directory {run_dir} does not exist")
    model_dir, agent_dir = run_dir / MODEL_DIR, run_dir / AGENT_DIR
    for part, what in ((model_dir, "world-model checkpoint"), (agent_dir / AGENT_CONFIG_NAME, "agent settings")):
        if not part.exists():
            raise InputNotFoundError(f"{run_dir} is not a finished train-agent run: no {what} at {part}")
    return model_dir, agent_dir


def load_trained_agent(
    run_dir: str | os.PathLike,
    device: str = "cpu",
    planner_settings: dict[str, Any] | None = None,
) -> TrainedAgent:
    """Load the final model and agent of a ``train_agent`` run (its ``output_dir``).

    Args:
        run_dir: the run's output directory (or its ``checkpoints/last_good``: same layout).
        device: where model and agent live.
        planner_settings: MPC planner fields to override (``ValueError`` for agents without a planner).
    """
    from worldrl.models.checkpoint import load_pretrained

    model_dir, agent_dir = find_run_parts(Path(run_dir))
    model = load_pretrained(model_dir, device=device)
    data = read_json(agent_dir / AGENT_CONFIG_NAME)
    name, seed = data.get("agent"), int(data.get("seed") or 0)
    if not isinstance(name, str):
        raise CheckpointError(f"{agent_dir / AGENT_CONFIG_NAME} has no 'agent' name")
    agent = make_agent(name, model=model, device=device, seed=seed, config=data.get("config"))  # networks as saved
    agent.load(agent_dir)
    if planner_settings:
        if not hasattr(agent, "configure_planner"):
            raise ConfigError(f"planner settings {sorted(planner_settings)} given, but a {name!r} agent has no planner")
        agent.configure_planner(**planner_settings)
    return TrainedAgent(agent, model, name, model.task.task_id, seed)


__all__ = ["TrainedAgent", "find_run_parts", "load_trained_agent"]
