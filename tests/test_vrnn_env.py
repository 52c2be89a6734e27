"""A vrnn checkpoint serves WorldModel-v0 from state and from pixels, passing the same contract checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import worldrl  # noqa: F401
from worldrl.models import TaskSpec, build_model, save_pretrained

TINY = VRNN_TINY


def _checkpoint(tmp_path, pixels: bool | str) -> str:
    """``pixels``: False (state), True, or "reference" (pixels with the reference-frame decoder)."""
    task = TaskSpec.from_env_id("InvertedPendulum-v5")
    if pixels:
        task = TaskSpec(
            gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
            task.action_space,
            task.task_id,
            obs_key="observation.images.front",
            max_episode_steps=task.max_episode_steps,
        )
    torch.manual_seed(0)
    model = build_model("vrnn", {**TINY, "reference_frame": pixels == "reference"}, task)
    path = tmp_path / ("vrnn_pixels" if pixels else "vrnn_state")
    save_pretrained(model, path)
    return str(path)


def _env_kwargs(pixels: bool) -> dict:
    if not pixels:
        return {}  # starts: resets of the real InvertedPendulum-v5
    starts = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    return {"start_states": starts}


@pytest.mark.parametrize("pixels", [False, True, "reference"], ids=["state", "pixels", "pixels-reference"])
def test_vrnn_checkpoint_passes_env_checkers(tmp_path, pixels):
    ckpt = _checkpoint(tmp_path, pixels)
    env = gym.make("WorldModel-v0", model=ckpt, **_env_kwargs(pixels))
    assert env.unwrapped.task_id == "InvertedPendulum-v5"
    expected = (16, 16, 3) if pixels else (4,)  # "reference" is truthy: pixels
    assert env.observation_space.shape == expected
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    if pixels:
        assert obs.dtype == np.uint8


@pytest.mark.parametrize("pixels", [False, True, "reference"], ids=["state", "pixels", "pixels-reference"])
def test_vrnn_env_is_deterministic_and_vectorises(tmp_path, pixels):
    ckpt = _checkpoint(tmp_path, pixels)
    actions = [np.array([0.5 * np.sin(t)], np.float32) for t in range(6)]

    def trajectory() -> list[np.ndarray]:
        env = gym.make("WorldModel-v0", model=ckpt, **_env_kwargs(pixels))
        obs, _ = env.reset(seed=3)
        return [obs] + [env.step(a)[0] for a in actions]

    for a, b in zip(trajectory(), trajectory()):
        np.testing.assert_array_equal(a, b)
    envs = gym.make_vec("WorldModel-v0", num_envs=3, model=ckpt, **_env_kwargs(pixels))
    obs, _ = envs.reset(seed=0)
    obs, reward, terminated, truncated, _ = envs.step(np.stack([actions[0]] * 3))
    assert obs.shape == (3, *envs.single_observation_space.shape) and reward.shape == (3,)
    assert np.isfinite(reward).all()


def test_sb3_trains_a_recurrent_model_with_same_step_autoreset(tmp_path):
    from stable_baselines3 import SAC

    from worldrl.agents.sb3_vec_env import SB3VecEnv

    ckpt = _checkpoint(tmp_path, pixels=False)
    next_step = gym.make_vec("WorldModel-v0", num_envs=2, model=ckpt, time_limit=3)
    with pytest.raises(ValueError, match="recurrent.*autoreset_mode='same_step'"):
        SB3VecEnv(next_step)  # restarting the batch from observations would erase the running rows' memory
    venv = gym.make_vec(
        "WorldModel-v0", num_envs=2, model=ckpt, time_limit=3, termination="none", autoreset_mode="same_step"
    )
    env = SB3VecEnv(venv)
    env.reset()
    for _ in range(3):
        obs, reward, dones, infos = env.step(np.zeros((2, 1), np.float32))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all(not np.allclose(info["terminal_observation"], o) for info, o in zip(infos, obs))
    sac = SAC("MlpPolicy", env, learning_starts=4, batch_size=8, policy_kwargs={"net_arch": [8]}, seed=0)
    sac.learn(total_timesteps=16)
    assert sac.num_timesteps == 16 and sac.replay_buffer.size() == 8  # 16 steps over 2 envs
