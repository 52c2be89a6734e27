"""The real-env factory: ids, offscreen pixels, vector envs, storable spaces, optional backends."""

from __future__ import annotations

import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from worldrl.data.storage_layout import UnsupportedSpaceError, check_storable, is_storable
from worldrl.tasks.real_envs import UnknownEnvError, env_fps, make_real_env, make_real_vector_env


def test_mujoco_renders_offscreen_at_requested_size():
    env = make_real_env("InvertedPendulum-v5", render_mode="rgb_array", width=48, height=32)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8
    assert frame.max() > frame.min()  # a scene, not a blank buffer
    env.close()


def test_pixel_observation_is_the_frame_of_that_observation():
    env = make_real_env("InvertedPendulum-v5", pixels=True, max_episode_steps=7)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"state", "pixels"} and obs["pixels"].shape == (64, 64, 3)
    obs, *_ = env.step(np.array([3.0], np.float32))
    np.testing.assert_array_equal(obs["pixels"], env.render())
    env.close()


def test_max_episode_steps_truncates():
    env = make_real_env("Pendulum-v1", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_unknown_env_id_names_it_and_suggests_close_matches():
    with pytest.raises(UnknownEnvError, match="Pendulm-v1.*Pendulum-v1"):
        make_real_env("Pendulm-v1")
    with pytest.raises(UnknownEnvError, match="dmc:domain-task"):
        make_real_env("dmc:cartpole")


def test_env_fps_is_the_control_rate():
    assert env_fps(make_real_env("Pendulum-v1")) == 20  # dt 0.05, though render_fps says 30
    assert env_fps(make_real_env("InvertedPendulum-v5")) == 25
    assert env_fps(make_real_env("CartPole-v1")) == 50


def test_sync_vector_env_steps_all_copies():
    envs = make_real_vector_env("CartPole-v1", 2, "sync", max_episode_steps=5)
    try:
        obs, _ = envs.reset(seed=3)
        assert obs.shape == (2, 4)
        assert not np.allclose(obs[0], obs[1])  # seeds 3 and 4
        _, reward, *_ = envs.step(np.array([0, 1]))
        np.testing.assert_array_equal(reward, [1.0, 1.0])
    finally:
        envs.close()


def test_async_pixel_workers_render_after_the_parent_did():
    # A worker forked from a process holding an EGL context can hang on its first render.
    parent = make_real_env("InvertedPendulum-v5", pixels=True)
    first, _ = parent.reset(seed=5)
    envs = make_real_vector_env("InvertedPendulum-v5", 2, "async", pixels=True)
    try:
        obs, _ = envs.reset(seed=5)
        assert obs["pixels"].shape == (2, 64, 64, 3)
        np.testing.assert_array_equal(obs["pixels"][0], first["pixels"])  # same seed, same frame
        np.testing.assert_array_equal(obs["state"][0], first["state"])
    finally:
        envs.close()


def test_vector_env_rejects_bad_arguments():
    with pytest.raises(ValueError, match="vectorization"):
        make_real_vector_env("CartPole-v1", 2, "threads")
    with pytest.raises(ValueError, match="num_envs"):
        make_real_vector_env("CartPole-v1", 0)


def test_storable_layouts():
    box = check_storable("Pendulum-v1", spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (1,)))
    assert (box.state_dim, box.action_dim, box.action_dtype) == (3, 1, "float32")
    assert box.state_names == ["cos_theta", "sin_theta", "theta_dot"]

    obs_space = spaces.Dict({"vel": spaces.Box(-1, 1, (2,)), "pos": spaces.Box(-1, 1, (2, 2))})
    layout = check_storable("x", obs_space, spaces.Discrete(3))
    assert layout.dict_keys == ("pos", "vel") and layout.state_dim == 6
    flat = layout.flatten_obs({"pos": np.arange(8.0).reshape(2, 2, 2), "vel": -np.ones((2, 2))})
    np.testing.assert_array_equal(flat[1], [4, 5, 6, 7, -1, -1])
    assert layout.action_dtype == "int64" and layout.store_action(np.array([2, 0])).tolist() == [[2], [0]]


@pytest.mark.parametrize(
    ("obs_space", "act_space", "bad"),
    [
        (spaces.Box(-1, 1, (3,)), spaces.MultiBinary(4), "MultiBinary"),
        (spaces.Tuple([spaces.Box(-1, 1, (3,))]), spaces.Box(-1, 1, (1,)), "Tuple"),
        (spaces.Dict({"a": spaces.Discrete(2)}), spaces.Box(-1, 1, (1,)), "Dict"),
    ],
)
def test_unstorable_spaces_name_env_and_space(obs_space, act_space, bad):
    with pytest.raises(UnsupportedSpaceError, match=f"'My-v0'.*{bad}"):
        check_storable("My-v0", obs_space, act_space)
    assert not is_storable("My-v0", obs_space, act_space)


def test_classic_control_pixels_need_pygame(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # as on an install without gymnasium[classic-control]
    with pytest.raises(ImportError, match="pip install pygame"):
        make_real_env("Pendulum-v1", render_mode="rgb_array")


def test_classic_control_pixels_are_resized():
    env = make_real_env("Pendulum-v1", pixels=True, width=40, height=30)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (30, 40, 3)


def test_dmc_without_dm_control_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dm_control", None)
    with pytest.raises(ImportError, match=r"pip install worldrl\[dmc\]"):
        make_real_env("dmc:cartpole-swingup")


# The adapter itself runs only where dm_control works: dm-control 1.0.50 (the newest) cannot load tasks with
# mujoco 4.0, which gymnasium[mujoco] installs here, so this check is skipped on this platform.
@pytest.mark.skipif(importlib.util.find_spec("dm_control") is None, reason="dm_control not installed")
def test_dmc_adapter_flattens_observations():
    try:
        env = make_real_env("dmc:cartpole-swingup", max_episode_steps=4, pixels=True)
    except ImportError as err:  # installed, but built for another mujoco
        pytest.skip(str(err))
    obs, _ = env.reset(seed=0)
    assert env.observation_space["state"].shape == (5,)  # position 3 + velocity 2
    assert obs["state"].dtype == np.float32 and obs["pixels"].shape == (64, 64, 3)
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (1,)
    again = make_real_env("dmc:cartpole-swingup")
    np.testing.assert_array_equal(again.reset(seed=0)[0], obs["state"])
    truncated = [env.step(env.action_space.sample())[3] for _ in range(4)]
    assert truncated[-1]


def test_fast_render_switches_off_shadows_and_reflections():
    full = make_real_env("HalfCheetah-v5", pixels=True, width=32, height=32)
    fast = make_real_env("HalfCheetah-v5", pixels=True, width=32, height=32, render_effects=False)
    assert fast.unwrapped.model.light_castshadow.sum() == 0 and fast.unwrapped.model.mat_reflectance.sum() == 0
    assert full.unwrapped.model.mat_reflectance.sum() > 0  # the default look is untouched
    a, b = full.reset(seed=0)[0], fast.reset(seed=0)[0]
    np.testing.assert_array_equal(a["state"], b["state"])  # physics unchanged, only the picture
    assert a["pixels"].shape == b["pixels"].shape and not np.array_equal(a["pixels"], b["pixels"])
