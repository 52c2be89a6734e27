"""Property-based checks (hypothesis) of the env API and the TorchRL env: whatever actions and batch shapes a user
sends, an env either steps with values in its spaces or refuses in one line; it never crashes otherwise, and never
hands out NaN (issue 19). Few examples each, so the suite stays fast inside ``make test``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

import worldrl  # noqa: F401  (registers WorldModel-v0)
from worldrl.envs.torchrl_env import WorldModelTorchRLEnv
from worldrl.envs.world_model_env import WorldModelEnv

torch.set_num_threads(1)
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-50, 50, allow_nan=False, width=32)
any_float = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30]))


@pytest.fixture(scope="module")
def env() -> WorldModelEnv:
    return WorldModelEnv(model=tiny_model(), start_pool_size=4)


@FAST
@given(seed=st.integers(0, 2**31 - 1), actions=st.lists(st.lists(any_float, min_size=1, max_size=1), max_size=6))
def test_gym_env_steps_stay_in_the_spaces_or_refuse_bad_actions(env, seed, actions):
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for action in actions:
        array = np.asarray(action, np.float32)
        if not np.isfinite(array).all():
            with pytest.raises(ValueError, match="NaN or inf"):
                env.step(array)
            continue
        obs, reward, terminated, truncated, info = env.step(array)
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert isinstance(info["model_diverged"], bool) and not info["model_diverged"]
        if terminated or truncated:
            obs, info = env.reset()


@FAST
@given(shape=st.lists(st.integers(0, 3), min_size=0, max_size=3), dtype=st.sampled_from(["float32", "int64", "<U1"]))
def test_gym_env_refuses_wrong_action_shapes_and_types_in_one_line(env, shape, dtype):
    env.reset(seed=0)
    action = np.zeros(shape, dtype=dtype)
    if tuple(shape) == (1,) and dtype != "<U1":
        env.step(action)
        return
    with pytest.raises((ValueError, TypeError)) as info:
        env.step(action)
    assert "\n" not in str(info.value) and "action" in str(info.value)


@FAST
@given(num_envs=st.integers(1, 5), steps=st.integers(1, 4), seed=st.integers(0, 1000))
def test_vector_env_batches_match_the_single_spaces(num_envs, steps, seed):
    envs = gym.make_vec("WorldModel-v0", num_envs=num_envs, model=tiny_model(), start_pool_size=4)
    obs, _ = envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = envs.step(rng.uniform(-2, 2, (num_envs, 1)).astype(np.float32))
        assert envs.observation_space.contains(obs) and np.isfinite(reward).all()
        assert terminated.shape == truncated.shape == (num_envs,) and terminated.dtype == bool
    envs.close()


@pytest.fixture(scope="module")
def trl_env() -> WorldModelTorchRLEnv:
    return WorldModelTorchRLEnv(tiny_model(), start_pool_size=4)


@FAST
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), seed=st.integers(0, 1000), steps=st.integers(1, 3))
def test_torchrl_env_any_batch_shape_gives_spec_conforming_finite_steps(trl_env, batch, seed, steps):
    trl_env.set_seed(seed)
    td = trl_env.reset(TensorDict({}, batch))
    assert td.batch_size == tuple(batch)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        td["action"] = torch.rand(*batch, 1, generator=generator) * 6 - 3  # out of bounds too: clipped
        out = trl_env.step(td)["next"]
        assert out["reward"].shape == (*batch, 1) and torch.isfinite(out["reward"]).all()
        assert torch.isfinite(out["observation"]).all() and out["model_diverged"].dtype == torch.bool
        assert torch.equal(out["done"], out["terminated"]) and not out["truncated"].any()
        assert trl_env.observation_spec["observation"].is_in(out["observation"])
        td = out.clone()


@FAST
@given(
    action_shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    bad=st.sampled_from([None, np.nan, np.inf]),
)
def test_torchrl_env_refuses_bad_actions_in_one_line(trl_env, action_shape, bad):
    td = trl_env.reset(TensorDict({}, [2]))
    action = torch.zeros(2, *action_shape)
    if bad is not None:
        action.view(-1)[0] = bad
    if tuple(action_shape) == (1,) and bad is None:
        trl_env.step(td.set("action", action))
        return
    with pytest.raises(ValueError) as info:
        trl_env.step(td.set("action", action))
    assert "\n" not in str(info.value) and "action" in str(info.value)
