"""Where imagination starts: real windows, a chosen share of them at episode starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests._models import tiny_model
from worldrl.agents.actor_critic import ActorCriticConfig
from worldrl.agents.start_states import first_window_indices, observed_start_states
from worldrl.data.replay import ReplayBuffer
from worldrl.errors import ConfigError


def episodes_replay(model, episodes: int = 4, length: int = 25) -> ReplayBuffer:
    """Episodes whose first observation is marked (first coordinate 0.9), every other row below 0.5."""
    rng = np.random.default_rng(0)
    task = model.task
    replay = ReplayBuffer(task.obs_shape, task.action_dim, capacity=episodes * length)
    for ep in range(episodes):
        obs = rng.uniform(-0.5, 0.5, task.obs_shape).astype(np.float32)
        obs[0] = 0.9
        for t in range(length):
            next_obs = rng.uniform(-0.5, 0.5, task.obs_shape).astype(np.float32)
            replay.add(obs, rng.uniform(-1, 1, task.action_dim), -1.0, False, t == length - 1, next_obs, ep)
            obs = next_obs
    return replay


def test_first_windows_are_the_episode_starts_and_their_share_is_drawn_there():
    model = tiny_model("Pendulum-v1")
    replay = episodes_replay(model)
    windows = replay.windows(1)
    assert first_window_indices(windows).tolist() == [0, 25, 50, 75]
    assert first_window_indices(object()).size == 0  # datasets that do not mark episode starts

    all_first = observed_start_states(model, windows, 16, np.random.default_rng(1), first_fraction=1.0)
    assert all_first["obs"].shape[0] == 16 and bool(torch.all((all_first["obs"][:, 0] - 0.9).abs() < 1e-6))
    half = observed_start_states(model, windows, 16, np.random.default_rng(1), first_fraction=0.5)
    assert int((half["obs"][:, 0] > 0.8).sum()) >= 8

    uniform = observed_start_states(model, windows, 16, np.random.default_rng(1))
    expected = np.random.default_rng(1).integers(len(windows), size=16)  # fraction 0: the draw of before
    assert torch.equal(uniform["obs"], torch.stack([windows[int(i)]["obs"][0] for i in expected]))


def test_first_state_fraction_is_checked():
    assert ActorCriticConfig(first_state_fraction=0.25).first_state_fraction == 0.25
    with pytest.raises(ConfigError, match="first_state_fraction"):
        ActorCriticConfig(first_state_fraction=1.5)
