"""TorchRL's Dreamer actor inside a vrnn (issue 21): imagination starts at the beliefs the real-env policy reads,
the losses fall, and the actor, run on real Pendulum-v1 through TorchRL's GymEnv, beats a random policy."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import GymEnv, InitTracker, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives.dreamer import DreamerActorLoss

from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value, fit_from_torchrl, real_env_policy
from worldrl.data.torchrl_replay import random_slice_buffer
from worldrl.models import TaskSpec, build_model

torch.set_num_threads(1)
SLICE = 8
SMALL_VRNN = {
    "latent_dim": 4,
    "hidden_dim": 32,
    "context_dim": 16,
    "max_components": 4,
    "num_latents": 2,
    "num_heads": 2,
    "context_window": 4,
    "num_slots": 2,
    "slot_dim": 8,
    "token_dim": 8,
    "stick_kl_terms": 10,
    "recon_std": 0.05,
    "free_nats": 1.0,
}
"""A vrnn small enough to fit on Pendulum-v1 in seconds."""


def _real_return(policy, seed: int) -> float:
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
    env.set_seed(seed)
    if hasattr(policy, "reset"):
        policy.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        return float(env.rollout(200, policy)["next", "reward"].sum())


def test_slice_starts_are_the_beliefs_the_recurrent_real_env_policy_reads() -> None:
    """Imagination starts (the posterior of real slices) equal the beliefs the real-env policy computes on the same
    real steps: the actor is trained on what it will read."""
    torch.manual_seed(0)
    model = build_model("vrnn", SMALL_VRNN, TaskSpec.from_env_id("Pendulum-v1")).eval()
    model.start_states = torch.randn(4, 3)
    actor, value = dreamer_actor_value(model, hidden=8)
    policy = real_env_policy(model, actor, memory=SLICE)
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
    env.set_seed(0)
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        episode = env.rollout(3 * SLICE, policy)
    ends = torch.arange(SLICE - 1, 3 * SLICE)  # slices of SLICE steps ending at each of these steps
    index = ends[:, None] - torch.arange(SLICE - 1, -1, -1)
    slices = TensorDict(
        observation=episode["observation"][index], action=episode["action"][index], batch_size=index.shape
    )
    starts = DreamerLearner(model, actor, value).slice_starts(slices)
    torch.testing.assert_close(starts["belief"], episode["belief"][ends])
    with pytest.raises(ValueError, match=r"slices \[B, T\]"):
        DreamerLearner(model, actor, value).slice_starts(slices[0])


def test_vrnn_dreamer_actor_losses_fall_and_it_beats_random_on_real_pendulum(tmp_path) -> None:
    torch.manual_seed(0)
    rb = random_slice_buffer("Pendulum-v1", 4000, slices=64, slice_len=SLICE)
    model = build_model("vrnn", SMALL_VRNN, TaskSpec.from_env_id("Pendulum-v1"))
    fit_from_torchrl(model, rb, tmp_path / "fit", window=SLICE, max_steps=800, batch_size=32, eval_every=800, lr=3e-3)

    actor, value = dreamer_actor_value(model, hidden=64)
    learner = DreamerLearner(model, actor, value, actor_lr=1e-3)
    fixed = learner.slice_starts(rb.sample().reshape(64, SLICE))
    judge = DreamerActorLoss(actor, copy.deepcopy(value).requires_grad_(False), learner.env, imagination_horizon=15)
    judge.make_value_estimator(gamma=learner.gamma, lmbda=learner.lmbda)

    def judged() -> float:  # the actor loss against the frozen initial critic: falls only if the actor improved
        torch.manual_seed(1)
        with torch.no_grad():
            return float(judge(fixed.clone())[0]["loss_actor"])

    before = judged()
    curve = [learner.update(learner.slice_starts(rb.sample().reshape(64, SLICE))) for _ in range(250)]
    after = judged()
    value_first = statistics.mean(m["loss_value"] for m in curve[:10])
    value_last = statistics.mean(m["loss_value"] for m in curve[-10:])
    trained = [_real_return(real_env_policy(model, actor, memory=SLICE), seed) for seed in (1, 2, 3)]
    random = [_real_return(None, seed) for seed in (1, 2, 3)]
    print(
        f"actor loss {before:.1f} -> {after:.1f}; value loss {value_first:.1f} -> {value_last:.1f}; "
        f"real returns: Dreamer actor {trained} vs random {random}"
    )
    assert after < before
    assert value_last < value_first
    assert statistics.mean(trained) > statistics.mean(random) + 100, (trained, random)
