"""Gymnasium and TorchRL environments backed by learned world models (installed as ``worldrl.envs``).

Attributes load lazily: importing torchrl (for the TorchRL env) switches Python's global multiprocessing
start method to "spawn", which must not happen as a side effect of ``import worldrl``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EnvOptions": "worldrl.envs.options",
    "LearnedSimulator": "worldrl.envs.simulator",
    "WorldModelEnv": "worldrl.envs.world_model_env",
    "make_world_model_env": "worldrl.envs.world_model_env",
    "WorldModelVectorEnv": "worldrl.envs.vector_env",
    "WorldModelTorchRLEnv": "worldrl.envs.torchrl_env",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'worldrl.envs' has no attribute {name!r}")
