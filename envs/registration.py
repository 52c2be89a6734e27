"""Registers the learned-simulator env ids with Gymnasium (idempotent).

``WorldModel-v0`` goes through ``make_world_model_env``, which applies the model's own time limit
(``task.max_episode_steps``; ``time_limit=N`` or ``None`` overrides it), so the registered
``max_episode_steps`` stays None. ``gym.make_vec`` uses the native batched ``WorldModelVectorEnv``.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = ("WorldModel-v0",)
SCENE_ENV_IDS = ("worldrl/Playground-v0",)
"""Real MuJoCo physics scenes (``worldrl.tasks.scenes``): the simulator the learned ones imitate, not a learned one."""


def register_envs() -> None:
    if "worldrl/Playground-v0" not in gym.registry:
        gym.register(
            id="worldrl/Playground-v0", entry_point="worldrl.tasks.scenes.env:PlaygroundEnv", max_episode_steps=150
        )
    if "WorldModel-v0" in gym.registry:
        return
    gym.register(
        id="WorldModel-v0",
        entry_point="worldrl.envs.world_model_env:make_world_model_env",
        vector_entry_point="worldrl.envs.vector_env:WorldModelVectorEnv",
        max_episode_steps=None,
    )
