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


VRNN_TINY = {
    "latent_dim": 4,
    "hidden_dim": 32,
    "context_dim": 16,
    "max_components": 4,
    "num_latents": 2,
    "num_heads": 2,
    "codebook_size": 8,
    "num_slots": 3,
    "slot_dim": 8,
    "token_dim": 8,
    "encoder_base_channels": 4,
    "decoder_base_channels": 4,
    "image_size": 16,
    "feature_grid": 8,
}
"""A vrnn of a few thousand parameters for state and 16x16 pixel tests."""


def actor_loss_judge(learner, actor, value, starts, horizon: int):
    """TorchRL's Dreamer actor loss on fixed ``starts`` against a frozen copy of the initial critic: a number that
    falls only if the actor itself improved (the learner's own critic moves too, so its loss cannot tell)."""
    import copy

    from torchrl.objectives.dreamer import DreamerActorLoss

    judge = DreamerActorLoss(
        actor, copy.deepcopy(value).requires_grad_(False), learner.env, imagination_horizon=horizon
    )
    judge.make_value_estimator(gamma=0.99, lmbda=0.95)

    def judged() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(judge(starts.clone())[0]["loss_actor"])

    return judged


def record_pixel_pendulum(root, episodes: int = 3, steps: int = 20):
    """A small real InvertedPendulum-v5 recording with 32x32 frames and state (the family tests' shared data)."""
    from worldrl.data.collect import CollectConfig, collect

    collect(
        CollectConfig(
            env_id="InvertedPendulum-v5",
            out=root,
            episodes=episodes,
            policy="scripted",
            epsilon=0.3,
            pixels=True,
            image_size=32,
            max_episode_steps=steps,
            fast_render=True,
            seed=0,
        ),
        progress=False,
    )
    return root
