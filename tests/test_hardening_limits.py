"""Unbounded work refused before it starts: env batches far beyond memory (issue 19)."""

from __future__ import annotations

import time

import gymnasium as gym
import pytest
import torch
from _models import tiny_model
from tensordict import TensorDict

import worldrl  # noqa: F401  (registers WorldModel-v0)
from worldrl.envs.options import EnvOptions
from worldrl.envs.simulator import BATCH_MEMORY_HEADROOM, available_memory, bytes_per_env, open_simulator
from worldrl.envs.torchrl_env import WorldModelTorchRLEnv
from worldrl.errors import EnvError


def test_make_vec_far_beyond_memory_is_refused_at_once_naming_what_fits():
    model = tiny_model()
    started = time.perf_counter()
    with pytest.raises(EnvError, match=r"num_envs=10000000000000 needs about .* GiB .* at most about \d+ envs fit"):
        gym.make_vec("WorldModel-v0", num_envs=10**13, model=model)
    assert time.perf_counter() - started < 5.0  # refused before batch_space allocates the bounds
    envs = gym.make_vec("WorldModel-v0", num_envs=64, model=model)  # an ordinary batch is untouched
    assert envs.reset(seed=0)[0].shape == (64, 3)


def test_the_estimate_counts_the_model_state_and_the_spaces():
    setup = open_simulator(EnvOptions.from_kwargs(None, {"model": tiny_model()}))
    per_env = bytes_per_env(setup.sim, setup.pool)
    transition = setup.sim.start(setup.pool[:1])
    state_bytes = sum(v.numel() * v.element_size() for v in transition.state.values(True, True))
    assert per_env >= state_bytes + 2 * 3 * 4 + 2 * 1 * 4  # state + float32 observation and action bounds
    free = available_memory(torch.device("cpu"))
    assert free is None or free > 0
    assert BATCH_MEMORY_HEADROOM >= 1


def test_torchrl_env_refuses_a_reset_batch_beyond_memory():
    env = WorldModelTorchRLEnv(tiny_model())
    with pytest.raises(EnvError, match="needs about"):
        env.reset(TensorDict({}, [10**7, 10**6]))
    assert env.reset(TensorDict({}, [8, 4])).batch_size == (8, 4)
