"""Guards on imagination: ensemble disagreement, the data's reward range, and how the actor-critic and MBPO use them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests._models import tiny_model
from worldrl.agents.actor_critic import ImaginationActorCritic
from worldrl.agents.uncertainty import (
    clip_reward,
    data_reward_bounds,
    disagreement_fn,
    ensemble_disagreement,
    observation_disagreement,
    penalised_reward,
)
from worldrl.data.replay import ReplayBuffer

TINY_AC = dict(horizon=4, actor_hidden=(16, 16), critic_hidden=(16, 16), start_batch=8)


def observed(model, obs: np.ndarray):
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    n = obs_t.shape[0]
    return model.observe_last(obs_t[:, None], torch.zeros(n, 1, model.task.action_dim), torch.ones(n, 1, dtype=bool))


def random_replay(model, steps: int = 300, seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    task = model.task
    replay = ReplayBuffer(task.obs_shape, task.action_dim, capacity=steps)
    obs = rng.uniform(-1, 1, task.obs_shape).astype(np.float32)
    for t in range(steps):
        action = rng.uniform(-2, 2, (task.action_dim,)).astype(np.float32)
        next_obs = np.clip(obs + 0.1 * rng.normal(size=obs.shape), -1, 1).astype(np.float32)
        reward = -float(np.sum(next_obs**2))  # in [-3, 0]
        replay.add(obs, action, reward, False, (t + 1) % 100 == 0, next_obs, t // 100)
        obs = next_obs
    return replay


def test_reward_range_and_penalty_math():
    assert data_reward_bounds(np.array([-2.0, 0.0, np.nan, -1.0]), 0.0) == (-2.0, 0.0)
    assert data_reward_bounds(np.array([-2.0, 0.0]), 0.5) == (-3.0, 1.0)
    assert data_reward_bounds(np.array([]), 0.1) is None
    reward = torch.tensor([-9.7, 1.0, 5.0])
    assert clip_reward(reward, (1.0, 1.0)).tolist() == [1.0, 1.0, 1.0]  # InvertedPendulum: every real step pays +1
    assert clip_reward(reward, None) is reward
    assert penalised_reward(reward, torch.tensor([0.0, 0.5, 2.0]), 2.0).tolist() == pytest.approx([-9.7, 0.0, 1.0])
    assert penalised_reward(reward, None, 2.0) is reward


def test_ensemble_disagreement_is_zero_for_identical_members_and_grows_off_the_data():
    model = copy.deepcopy(tiny_model("Pendulum-v1"))
    assert disagreement_fn(model) is ensemble_disagreement
    rng = np.random.default_rng(0)
    near, action = rng.normal(0, 0.5, (16, 3)).astype(np.float32), torch.full((16, 1), 0.3)
    with torch.no_grad():
        for p in model.net.parameters():  # members differ only by their initialisation
            assert p.shape[0] == model.num_members
        u_near = ensemble_disagreement(model, observed(model, near), action)
        u_far = ensemble_disagreement(model, observed(model, near + 50.0), action + 50.0)
        assert u_near.shape == (16,) and bool((u_near > 0).all())
        assert bool((u_far > 5 * u_near).all())  # linear-ish members drift apart away from where they agree
        for p in model.net.parameters():
            p[:] = p[0]  # every member a copy of the first
        assert float(ensemble_disagreement(model, observed(model, near), action).abs().max()) < 1e-6
    assert disagreement_fn(object()) is None


def test_actor_critic_imagines_penalised_rewards_inside_the_data_range():
    model = tiny_model("Pendulum-v1")
    replay = random_replay(model)
    agent = ImaginationActorCritic(model, TINY_AC, uncertainty_penalty=0.5, device="cpu")
    metrics = agent.update(replay)
    low, high = data_reward_bounds(replay.arrays()["reward"], 0.0)
    assert agent.reward_bounds == (low, high) and "dreamer/uncertainty" in metrics
    starts = observed(model, replay.sample_obs(8, np.random.default_rng(0)))
    with torch.no_grad():
        traj = agent.imagine(starts, grad=False)
    assert traj.uncertainty is not None and bool((traj.uncertainty > 0).all())
    # clipped to the real range first, then penalised: below the range only by the penalty itself
    assert bool((traj.rewards <= high + 1e-6).all())
    assert bool((traj.rewards >= low - 0.5 * traj.uncertainty - 1e-6).all())
    plain = ImaginationActorCritic(model, TINY_AC, uncertainty_penalty=0.0, reward_range_margin=None, device="cpu")
    assert plain.disagreement is None
    plain.update(replay)
    assert plain.reward_bounds is None


def test_exploration_bonus_adds_the_disagreement_to_imagined_rewards():
    model = tiny_model("Pendulum-v1")
    replay = random_replay(model)
    common = dict(uncertainty_penalty=0.0, sample_dynamics=False, seed=0, device="cpu")
    plain = ImaginationActorCritic(model, TINY_AC, **common)
    curious = ImaginationActorCritic(model, TINY_AC, exploration_bonus=2.0, **common)
    plain.reward_bounds = curious.reward_bounds = (-20.0, 0.0)  # the same clipping for both
    starts = observed(model, replay.sample_obs(8, np.random.default_rng(0)))
    with torch.no_grad():
        curious.actor.load_state_dict(plain.actor.state_dict())
        base = plain.imagine(starts, grad=False)
        bonus = curious.imagine(starts, grad=False)
    assert base.uncertainty is None and bonus.uncertainty is not None
    torch.testing.assert_close(bonus.rewards, base.rewards + 2.0 * bonus.uncertainty)
    with pytest.raises(ValueError, match="exploration_bonus"):
        ImaginationActorCritic(model, TINY_AC, exploration_bonus=-1.0, device="cpu")


def test_mbpo_model_rewards_are_clipped_and_penalised():
    pytest.importorskip("stable_baselines3")
    from worldrl.agents.mbpo import MBPOAgent

    model = tiny_model("Pendulum-v1")
    replay = random_replay(model)
    options = dict(num_rollouts=8, batch_size=16, net_arch=[16, 16], gradient_steps_per_real_step=0)
    agent = MBPOAgent(model, options, uncertainty_penalty=2.0, device="cpu")
    agent.update(replay)
    obs = replay.sample_obs(8, np.random.default_rng(1))
    action = np.zeros((8, 1), np.float32)
    raw = np.array([-100.0, 5.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])
    guarded, doubt = agent._guarded(obs, action, raw)
    u = observation_disagreement(model, ensemble_disagreement, obs, action)
    np.testing.assert_allclose(doubt, u, rtol=1e-5)
    low, high = agent.reward_bounds
    np.testing.assert_allclose(guarded, np.clip(raw, low, high) - 2.0 * u, rtol=1e-5)
    metrics = agent.rollout(2)
    assert metrics["mbpo/uncertainty"] > 0
    off = MBPOAgent(model, options, uncertainty_penalty=0.0, reward_range_margin=None, device="cpu")
    off.update(replay)
    assert off._guarded(obs, action, raw)[0] is raw
