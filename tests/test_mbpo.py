"""MBPO pieces: rollout-length schedule, the mixed replay buffer, the SB3 VecEnv adapter, the agent."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import VecMonitor

import worldrl.envs  # noqa: F401  (registers WorldModel-v0)
from worldrl.agents import make_agent
from worldrl.agents.mbpo import (
    MBPOAgent,
    MBPOConfig,
    MixedReplayBuffer,
    extend_buffer,
    rollout_length,
    split_batch,
)
from worldrl.agents.sb3_vec_env import SB3VecEnv
from worldrl.data.replay import ReplayBuffer
from worldrl.models.base import build_model
from worldrl.models.task_spec import TaskSpec

TINY = {"num_members": 2, "num_elites": 1, "hidden_dims": [16, 16], "predict_terminal": False}


@pytest.fixture(scope="module")
def pendulum_model():
    env = gym.make("Pendulum-v1")
    task = TaskSpec(env.observation_space, env.action_space, task_id="Pendulum-v1", max_episode_steps=200)
    torch.manual_seed(0)
    return build_model("ensemble", TINY, task)


@pytest.fixture(scope="module")
def random_replay():
    env = gym.make("Pendulum-v1")
    env.action_space.seed(0)
    replay, (obs, _), episode = ReplayBuffer((3,), 1), env.reset(seed=0), 0
    for _ in range(120):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, reward, terminated, truncated, next_obs, episode)
        obs = next_obs
    return replay


# --------------------------------------------------------------------------- schedule and buffer
def test_rollout_length_is_linear_between_the_schedule_ends():
    assert rollout_length(0, 1, 15, 20_000, 100_000) == 1
    assert rollout_length(20_000, 1, 15, 20_000, 100_000) == 1
    assert rollout_length(60_000, 1, 15, 20_000, 100_000) == 8  # halfway: 1 + 0.5 * 14
    assert rollout_length(100_000, 1, 15, 20_000, 100_000) == 15
    assert rollout_length(10**9, 1, 15, 20_000, 100_000) == 15
    assert rollout_length(5, 2, 4, 5, 5) == 2 and rollout_length(6, 2, 4, 5, 5) == 4


@settings(max_examples=50, deadline=None)
@given(
    k_min=st.integers(1, 10),
    extra=st.integers(0, 20),
    start=st.integers(0, 1000),
    span=st.integers(0, 1000),
    a=st.integers(0, 3000),
    b=st.integers(0, 3000),
)
def test_rollout_length_is_monotone_and_bounded(k_min, extra, start, span, a, b):
    def k(s):
        return rollout_length(s, k_min, k_min + extra, start, start + span)

    lo, hi = sorted((a, b))
    assert k_min <= k(lo) <= k(hi) <= k_min + extra


def _space(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-10, 10, (dim,), np.float32)


def test_mixed_buffer_samples_real_and_model_rows_at_the_ratio():
    buffer = MixedReplayBuffer(100, _space(2), _space(1), "cpu", real_ratio=0.25, model_buffer_size=100)
    ones, n = np.ones((50, 2), np.float32), 50
    buffer.add_real(ones, ones, np.zeros((n, 1)), np.ones(n), np.zeros(n, bool))
    assert (buffer.sample(64).observations == 1).all()  # no model data yet: all real
    buffer.add_model(-ones, -ones, np.zeros((n, 1)), -np.ones(n), np.zeros(n, bool))
    batch = buffer.sample(400)
    assert batch.observations.shape == (400, 2)
    assert int((batch.observations[:, 0] > 0).sum()) == 100  # exactly real_ratio * batch
    assert int((batch.rewards[:, 0] < 0).sum()) == 300
    assert split_batch(10, 0.05, model_rows=0) == (10, 0) and split_batch(256, 0.05, model_rows=5) == (13, 243)


def test_mixed_buffer_without_real_rows_says_so():
    buffer = MixedReplayBuffer(10, _space(2), _space(1), "cpu")
    with pytest.raises(RuntimeError, match="no real transitions"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="real_ratio"):
        MixedReplayBuffer(10, _space(2), _space(1), "cpu", real_ratio=1.5)


def test_extend_buffer_is_a_ring_keeping_the_newest_rows():
    buffer = MixedReplayBuffer(5, _space(1), _space(1), "cpu")
    rows = np.arange(7, dtype=np.float32)[:, None]
    extend_buffer(buffer, rows, rows + 1, np.zeros((7, 1)), rows[:, 0], np.zeros(7, bool))
    assert buffer.full and buffer.size() == 5
    assert sorted(buffer.observations[:, 0, 0].tolist()) == [2, 3, 4, 5, 6]
    extend_buffer(buffer, rows[:2], rows[:2], np.zeros((2, 1)), rows[:2, 0], np.ones(2, bool))
    assert sorted(buffer.observations[:, 0, 0].tolist()) == [0, 1, 4, 5, 6]


# --------------------------------------------------------------------------- the SB3 adapter
def test_sb3_sac_trains_on_world_model_vector_env_unmodified(pendulum_model):
    venv = gym.make_vec("WorldModel-v0", num_envs=4, model=pendulum_model, max_episode_steps=10)
    env = VecMonitor(SB3VecEnv(venv))
    sac = SAC(
        "MlpPolicy",
        env,
        learning_starts=20,
        batch_size=16,
        buffer_size=1000,
        seed=0,
        policy_kwargs={"net_arch": [16, 16]},
    )
    sac.learn(120)
    assert sac.num_timesteps == 120 and sac._n_updates > 0
    lengths = [info["l"] for info in sac.ep_info_buffer]
    assert lengths and all(n == 10 for n in lengths)  # the adapter's time limit ended every episode


def test_adapter_resets_finished_rows_at_the_same_step(pendulum_model):
    venv = gym.make_vec("WorldModel-v0", num_envs=3, model=pendulum_model, max_episode_steps=2)
    env = SB3VecEnv(venv, start_sampler=lambda n: np.tile([[1.0, 0.0, 0.0]], (n, 1)).astype(np.float32))
    env.seed(0)
    obs = env.reset()
    env.step(np.zeros((3, 1)))
    obs, reward, dones, infos = env.step(np.zeros((3, 1)))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"].shape == (3,) for info in infos)
    np.testing.assert_allclose(obs, np.tile([[1.0, 0.0, 0.0]], (3, 1)))  # the new episodes' first observations
    assert reward.shape == (3,) and np.isfinite(reward).all()


def test_adapter_passes_same_step_real_vector_envs_through():
    real = gym.vector.SyncVectorEnv(
        [lambda: gym.make("Pendulum-v1", max_episode_steps=3)] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    env = SB3VecEnv(real)
    env.reset()
    for _ in range(3):
        obs, _, dones, infos = env.step(np.zeros((2, 1)))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert not np.allclose(infos[0]["terminal_observation"], obs[0])


def test_adapter_refuses_next_step_envs_it_cannot_restart():
    real = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 2)  # NEXT_STEP by default
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(real)


# --------------------------------------------------------------------------- the agent
def test_mbpo_config_errors_name_the_field():
    with pytest.raises(ValueError, match="real_ratio"):
        MBPOConfig(real_ratio=2.0)
    with pytest.raises(ValueError, match="rollout_length_max"):
        MBPOConfig(rollout_length_min=3, rollout_length_max=2)
    with pytest.raises(ValueError, match="unknown field.*'mbpo.rollouts'"):
        MBPOConfig.from_dict({"rollouts": 3})


def test_mbpo_agent_learns_from_real_and_model_rows_and_round_trips(pendulum_model, random_replay, tmp_path):
    agent = make_agent(
        "mbpo",
        model=pendulum_model,
        num_rollouts=16,
        batch_size=16,
        net_arch=(16, 16),
        gradient_steps_per_real_step=1,
        gradient_steps_per_rollout=60,
        rollout_length_min=2,
        rollout_length_max=2,
    )
    assert isinstance(agent, MBPOAgent)
    before = agent.act(np.zeros(3, np.float32)).copy()
    metrics = agent.update(random_replay)
    assert metrics["mbpo/gradient_steps"] == 120 and metrics["mbpo/rollout_length"] == 2
    assert metrics["mbpo/model_rows"] == 2 * 16 * 2  # two rollout rounds of 16 starts x 2 steps
    assert all(np.isfinite(v) for v in metrics.values())
    assert agent.update(random_replay)["mbpo/gradient_steps"] == 0  # nothing new: no updates
    after = agent.act(np.zeros((2, 3), np.float32))
    assert after.shape == (2, 1) and not np.allclose(after[0], before)
    agent.save(tmp_path / "agent")
    assert sorted(p.name for p in (tmp_path / "agent").iterdir()) == ["agent.json", "agent.safetensors"]
    assert json.loads((tmp_path / "agent" / "agent.json").read_text())["agent"] == "mbpo"
    fresh = make_agent("mbpo", model=pendulum_model, num_rollouts=16, net_arch=(16, 16), seed=1)
    fresh.load(tmp_path / "agent")
    np.testing.assert_allclose(fresh.act(np.zeros((2, 3), np.float32)), after)
    with pytest.raises(ValueError, match="net_arch"):
        make_agent("mbpo", model=pendulum_model, num_rollouts=4, net_arch=(8,)).load(tmp_path / "agent")


@pytest.mark.parametrize("algorithm", ["td3", "ddpg"])
def test_mbpo_drives_other_sb3_off_policy_algorithms(pendulum_model, random_replay, tmp_path, algorithm):
    agent = make_agent(
        "mbpo",
        model=pendulum_model,
        algorithm=algorithm,
        num_rollouts=16,
        batch_size=16,
        net_arch=(16, 16),
        gradient_steps_per_real_step=1,
        gradient_steps_per_rollout=100,
        algorithm_kwargs={"learning_starts": 0},
    )
    assert type(agent.sac).__name__ == algorithm.upper()
    before = agent.act(np.zeros((2, 3), np.float32)).copy()
    metrics = agent.update(random_replay)
    assert metrics["mbpo/gradient_steps"] > 0 and np.isfinite(metrics[f"{algorithm}/critic_loss"])
    after = agent.act(np.zeros((2, 3), np.float32))
    assert not np.allclose(after, before)
    agent.save(tmp_path / "agent")
    fresh = make_agent("mbpo", model=pendulum_model, algorithm=algorithm, num_rollouts=16, net_arch=(16, 16), seed=1)
    fresh.load(tmp_path / "agent")
    np.testing.assert_allclose(fresh.act(np.zeros((2, 3), np.float32)), after)
    with pytest.raises(ValueError, match="algorithm"):
        make_agent("mbpo", model=pendulum_model, num_rollouts=4, net_arch=(16, 16)).load(tmp_path / "agent")
    with pytest.raises(ValueError, match="MBPOConfig.algorithm must be one of"):
        MBPOConfig(algorithm="ppo")
