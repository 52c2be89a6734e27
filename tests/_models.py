"""Small untrained models with real tasks' spaces, shared by the env tests."""

from __future__ import annotations

import torch

from worldrl.models import TaskSpec, WorldModel, build_model

TINY = {"num_members": 3, "num_elites": 2, "hidden_dims": [32, 32]}
_MODELS: dict[str, WorldModel] = {}


def tiny_model(task_id: str = "Pendulum-v1") -> WorldModel:
    """A small untrained ensemble for ``task_id`` (cached: building one costs a real env)."""
    if task_id not in _MODELS:
        torch.manual_seed(0)
        _MODELS[task_id] = build_model("ensemble", TINY, TaskSpec.from_env_id(task_id))
    return _MODELS[task_id]
