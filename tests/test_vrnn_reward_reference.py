"""vrnn ``heads_read_reference`` and ``lambda_open_loop_reward``: reward heads that know the last real frame and are
scored on the imagined states planning reads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from test_vrnn_supervision import _batch  # frames, actions, rewards; its supervision values go unread

from worldrl.errors import ConfigError
from worldrl.models import TaskSpec, build_model
from worldrl.models.vrnn.config import VRNNConfig

A, SIDE = 2, 16


def _model(pixels: bool = True, **extra):
    torch.manual_seed(0)
    obs = gym.spaces.Box(0, 255, (SIDE, SIDE, 3), np.uint8) if pixels else gym.spaces.Box(-1, 1, (4,), np.float32)
    task = TaskSpec(obs, gym.spaces.Box(-1, 1, (A,), np.float32), task_id="Tiny-v0")
    options = {**VRNN_TINY, "lambda_open_loop": 1.0, "open_loop_horizon": 3, **extra}
    if pixels:
        options = {"image_size": 16, "reference_frame": True, "reference_features": True, **options}
    return build_model("vrnn", options, task)


def test_open_loop_reward_is_scored_and_trains_the_dynamics():
    model = _model(heads_read_reference=True, lambda_open_loop_reward=1.0)
    losses, _ = model.compute_total_loss(_batch(), stochastic=False)
    for name in ("open_loop_reward", "open_loop_continuation"):
        assert name in losses and torch.isfinite(losses[name]) and losses[name] > 0
    losses["open_loop_reward"].backward()
    assert model.reward_head[0].weight.grad.abs().sum() > 0
    assert model.lstm.weight_hh_l0.grad.abs().sum() > 0  # through the imagined states
    assert model.reference_embed[1].weight.grad.abs().sum() > 0  # through the start frame's embedding
    assert model.continue_head[0].weight.grad is None

    plain = _model()
    assert "open_loop_reward" not in plain.compute_total_loss(_batch(), stochastic=False)[0]


def test_open_loop_reward_counts_in_the_predictive_group():
    on = _model(lambda_open_loop_reward=2.0)
    losses, _ = on.compute_total_loss(_batch(), stochastic=False)
    off = _model()
    base, _ = off.compute_total_loss(_batch(), stochastic=False)
    extra = 2.0 * (losses["open_loop_reward"] + losses["open_loop_continuation"])
    torch.testing.assert_close(losses["total_predictive"], base["total_predictive"] + extra)


def test_imagined_rewards_read_the_last_real_frame():
    """Observing a different last frame changes what imagination predicts for the same latent; the embedding is
    carried unchanged through imagined steps, and a fresh state has the no-reference embedding."""
    model = _model(heads_read_reference=True).eval()
    batch = _batch(b=2, t=3)
    with torch.no_grad():
        state = model.observe(batch["obs"], batch["action"], batch["is_first"])[:, -1]
        other = state.clone()
        other["reference_embed"] = state["reference_embed"].flip(0)
        action = torch.zeros(2, A)
        step, step_other = model.imagine(state, action), model.imagine(other, action)
        assert not torch.allclose(step["reward"], step_other["reward"])
        torch.testing.assert_close(step["reference_embed"], state["reference_embed"])
        torch.testing.assert_close(model.imagine(step, action)["reference_embed"], state["reference_embed"])
        fresh = model.initial_state(3)
        assert fresh["reference_embed"].shape == (3, model.config.hidden_dim)
        torch.testing.assert_close(fresh["reference_embed"][0], fresh["reference_embed"][2])
        assert model.imagine(fresh, torch.zeros(3, A))["reward"].shape == (3,)


def test_the_one_step_reward_reads_the_frame_just_observed():
    """Training's one-step reward of row t equals what imagine(observe(...)_t) predicts: the same reference."""
    model = _model(heads_read_reference=True).eval()
    batch = _batch(b=1, t=4)
    with torch.no_grad():
        out = model.forward_sequence(batch["obs"], batch["action"], batch["is_first"], stochastic=False)
        prev = torch.cat([torch.zeros_like(batch["action"][:, :1]), batch["action"][:, :-1]], 1)
        state = model.observe(batch["obs"], prev, batch["is_first"])[:, 2]
        step = model.imagine(state, batch["action"][:, 2])
        torch.testing.assert_close(
            model.reward_norm.denormalize(out["reward_pred"][:, 2]), step["reward"], atol=1e-4, rtol=1e-4
        )


def test_configuration_is_checked():
    with pytest.raises(ConfigError, match="heads_read_reference"):
        VRNNConfig(heads_read_reference=True)
    with pytest.raises(ConfigError, match="lambda_open_loop_reward"):
        VRNNConfig(lambda_open_loop_reward=1.0)
    assert VRNNConfig(lambda_open_loop=1.0, lambda_open_loop_reward=1.0).lambda_open_loop_reward == 1.0


def test_the_latent_carries_the_reference_embedding_for_downstream_heads():
    model = _model(heads_read_reference=True).eval()
    batch = _batch(b=2, t=3)
    with torch.no_grad():
        state = model.observe(batch["obs"], batch["action"], batch["is_first"])[:, -1]
        latent = model.latent(state)
        assert (
            latent.shape == (2, model.latent_dim)
            and model.latent_dim == 2 * model.config.hidden_dim + model.config.latent_dim
        )
        torch.testing.assert_close(latent[:, -model.config.hidden_dim :], state["reference_embed"])
        assert model.decode(state).shape == (2, SIDE, SIDE, 3)  # the decoder still reads (h, z)
    assert _model().latent_dim == model.config.hidden_dim + model.config.latent_dim
