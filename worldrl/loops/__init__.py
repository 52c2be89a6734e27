"""Applications that combine the layers below (agents, envs, training, evaluation), as DreamerV3's
``embodied/run/``: the online loop of ``worldrl train-agent``. Agents never import this package.
"""

from __future__ import annotations

from worldrl.loops.config import DEFAULT_AGENT_OPTIONS, OnlineConfig
from worldrl.loops.learning_curve import EvalRecord
from worldrl.loops.online import OnlineResult, OnlineTrainingError, train_agent

__all__ = ["DEFAULT_AGENT_OPTIONS", "EvalRecord", "OnlineConfig", "OnlineResult", "OnlineTrainingError", "train_agent"]
