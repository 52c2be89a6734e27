"""Agents that plan in or learn from a world model: CEM/MPPI planners, the MPC agent, the imagination
actor-critic, and the registry ``make_agent(name, **kwargs)`` ("mpc-cem", "mpc-mppi", "mpc-ac", "dreamer"; "mbpo" is
reserved for the model-based SAC module). The TorchRL bridge lives in ``worldrl.agents.torchrl_planning``
(imported on demand: it pulls in TorchRL).
"""

from __future__ import annotations

from worldrl.agents.actor_critic import ActorCriticConfig, ImaginationActorCritic
from worldrl.agents.mpc import MPCAgent
from worldrl.agents.planners import (
    CEMConfig,
    CEMPlanner,
    MPPIConfig,
    MPPIPlanner,
    PlannerConfig,
    PlanResult,
    make_planner,
)
from worldrl.agents.protocol import Agent, available_agents, is_learner, make_agent, register_agent

__all__ = [
    "ActorCriticConfig",
    "Agent",
    "CEMConfig",
    "CEMPlanner",
    "ImaginationActorCritic",
    "MPCAgent",
    "MPPIConfig",
    "MPPIPlanner",
    "PlanResult",
    "PlannerConfig",
    "available_agents",
    "is_learner",
    "make_agent",
    "make_planner",
    "register_agent",
]
