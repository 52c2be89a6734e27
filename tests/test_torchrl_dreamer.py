"""End to end with TorchRL's own pieces: a Collector on real Pendulum-v1 fills a TorchRL replay buffer, a worldrl
ensemble trains from it, TorchRL's Dreamer actor/value losses train a TorchRL actor inside it, and the actor, run on
the real env through TorchRL's GymEnv, beats a random policy on fixed seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from worldrl.agents.torchrl_dreamer import DreamerLearner, dreamer_actor_value, fit_from_torchrl, real_env_policy
from worldrl.models import TaskSpec, build_model

sys.path.insert(0, str(Path(__file__).parent))
from _models import actor_loss_judge  # noqa: E402

torch.set_num_threads(1)
SEEDS = (1, 2, 3)


def _real_return(policy, seed: int) -> float:
    env = GymEnv("Pendulum-v1")
    env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        return float(env.rollout(200, policy)["next", "reward"].sum())


def test_dreamer_actor_trained_in_a_worldrl_model_beats_random_on_the_real_env(tmp_path) -> None:
    torch.manual_seed(0)
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rb = ReplayBuffer(storage=LazyTensorStorage(4000))
    collector = Collector(env, None, frames_per_batch=1000, total_frames=4000)
    for batch in collector:
        rb.extend(batch.reshape(-1))
    collector.shutdown()
    assert len(rb) == 4000

    model = build_model(
        "ensemble", {"num_members": 3, "num_elites": 2, "hidden_dims": [64, 64]}, TaskSpec.from_env_id("Pendulum-v1")
    )
    result = fit_from_torchrl(
        model, rb, tmp_path / "fit", window=2, max_steps=800, batch_size=128, eval_every=800, lr=3e-3
    )
    assert result.steps == 800

    actor, value = dreamer_actor_value(model)
    learner = DreamerLearner(model, actor, value, horizon=10, actor_lr=1e-3)
    observations = rb[:]["observation"]
    fixed = learner.starts(
        observations[torch.randperm(len(observations), generator=torch.Generator().manual_seed(0))[:256]]
    )
    judged = actor_loss_judge(learner, actor, value, fixed, horizon=10)

    before = judged()
    generator = torch.Generator().manual_seed(0)
    for _ in range(350):
        learner.update(learner.starts(observations[torch.randint(len(observations), (128,), generator=generator)]))
    assert judged() < before  # TorchRL's actor loss (against the initial critic) fell

    trained = sum(_real_return(real_env_policy(model, actor), seed) for seed in SEEDS) / len(SEEDS)
    random = sum(_real_return(None, seed) for seed in SEEDS) / len(SEEDS)
    print(f"Dreamer actor {trained:.1f} vs random {random:.1f} on real Pendulum-v1 seeds {list(SEEDS)}")
    assert trained > random + 100, (trained, random)
