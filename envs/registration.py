"""Registers the learned-simulator env ids with Gymnasium (idempotent)."""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = ("WorldModel-v0",)


def register_envs() -> None:
    if "WorldModel-v0" in gym.registry:
        return
    gym.register(
        id="WorldModel-v0",
        entry_point="worldrl.envs.world_model_env:WorldModelEnv",
        vector_entry_point="worldrl.envs.vector_env:WorldModelVectorEnv",
        max_episode_steps=None,
    )
