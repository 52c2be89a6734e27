"""Gymnasium and TorchRL environments backed by learned world models (installed as ``worldrl.envs``)."""

from worldrl.envs.simulator import LearnedSimulator
from worldrl.envs.torchrl_env import WorldModelTorchRLEnv
from worldrl.envs.vector_env import WorldModelVectorEnv
from worldrl.envs.world_model_env import WorldModelEnv, make_world_model_env

__all__ = ["LearnedSimulator", "WorldModelEnv", "WorldModelTorchRLEnv", "WorldModelVectorEnv", "make_world_model_env"]
