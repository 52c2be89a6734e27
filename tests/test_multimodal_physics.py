"""The multimodal physics head integrates its own velocities: a zero residual is constant-velocity extrapolation."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldrl.errors import CheckpointError
from worldrl.models import load_pretrained, save_pretrained
from worldrl.models.multimodal import MultimodalConfig, MultimodalWorldModel, TransformerWorldModel
from worldrl.models.multimodal.physics import STATE_LAYOUTS, PhysicsHead, positions, velocities
from worldrl.models.task_spec import TaskSpec

LAYOUT = STATE_LAYOUTS["worldrl/Playground-v0"]
S = LAYOUT.state_dim
TINY = {k: v for k, v in MultimodalConfig.tiny().items() if k != "context_length"}


def _stats() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(S, generator=g), torch.rand(S, generator=g) + 0.2


def _head() -> PhysicsHead:
    torch.manual_seed(0)
    head = PhysicsHead(10 + S, 16, S, LAYOUT)
    head.set_state_stats(*_stats())
    return head


def test_zero_residual_is_exactly_constant_velocity() -> None:
    head, (mean, std) = _head(), _stats()
    real = torch.randn(5, S, dtype=torch.float64)
    state = ((real - mean.double()) / std.double()).float()
    nxt = head.step(state, torch.zeros_like(state)) * std + mean
    current = state * std + mean
    p, v = positions(current, LAYOUT), velocities(current, LAYOUT)
    torch.testing.assert_close(positions(nxt, LAYOUT), p + v * LAYOUT.dt, atol=1e-5, rtol=0)
    torch.testing.assert_close(velocities(nxt, LAYOUT), v, atol=1e-5, rtol=0)
    rest = torch.ones(LAYOUT.objects, LAYOUT.per_object, dtype=torch.bool)
    rest[:, LAYOUT.position[0] : LAYOUT.position[1]] = False
    rest[:, LAYOUT.velocity[0] : LAYOUT.velocity[1]] = False
    torch.testing.assert_close(nxt[:, rest.flatten()], current[:, rest.flatten()], atol=1e-5, rtol=0)


def test_untrained_head_outputs_zero_and_a_velocity_change_moves_positions_by_half_dt() -> None:
    head, (_, std) = _head(), _stats()
    state, feature = torch.randn(3, S), torch.randn(3, 10)
    torch.testing.assert_close(head(feature, state), head.step(state, torch.zeros_like(state)))
    residual = torch.zeros(3, S)
    vel = torch.zeros(LAYOUT.objects, LAYOUT.per_object, dtype=torch.bool)
    vel[:, LAYOUT.velocity[0] : LAYOUT.velocity[1]] = True
    residual[:, vel.flatten()] = 1.0  # one normalised unit of velocity change everywhere
    moved = (head.step(state, residual) - head.step(state, torch.zeros_like(state))) * std
    dv = velocities(std.expand(3, S), LAYOUT)
    torch.testing.assert_close(velocities(moved, LAYOUT), dv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(positions(moved, LAYOUT), 0.5 * LAYOUT.dt * dv, atol=1e-5, rtol=1e-5)


def test_transformer_prediction_with_a_zeroed_head_is_constant_velocity() -> None:
    torch.manual_seed(0)
    net = TransformerWorldModel(**TINY, action_dim=2, state_dim=S, state_layout=LAYOUT).eval()
    mean, std = _stats()
    net.physics.set_state_stats(mean, std)
    state = torch.randn(2, 3, S)
    h = net.context(net.quantized(torch.zeros(2, 3, 16, dtype=torch.long)), torch.randn(2, 3, TINY["audio_dim"]), state)
    pred = net.predict_next(h, torch.randn(2, 3, 2), state)["state"] * std + mean
    current = state * std + mean
    cv = positions(current, LAYOUT) + velocities(current, LAYOUT) * LAYOUT.dt
    torch.testing.assert_close(positions(pred, LAYOUT), cv, atol=1e-5, rtol=0)


def test_a_head_with_a_mismatched_layout_is_refused() -> None:
    with pytest.raises(Exception, match="layout covers 78"):
        PhysicsHead(10, 8, 6, LAYOUT)


def test_version_1_checkpoints_are_refused_with_one_line(tmp_path) -> None:
    spaces = {
        "observation.images.cam": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        "observation.state": gym.spaces.Box(-np.inf, np.inf, (S,), np.float32),
    }
    task = TaskSpec.keyed(spaces, gym.spaces.Box(-1, 1, (2,), np.float32), task_id="worldrl/Playground-v0")
    model = MultimodalWorldModel(MultimodalConfig(**MultimodalConfig.tiny()), task)
    assert model.layout is not None and model.net.physics.layout is LAYOUT
    model.fit_normalization({"obs/observation.state": {"mean": np.ones(S), "std": np.full(S, 2.0)}})
    assert torch.allclose(model.net.physics.state_std, torch.full((S,), 2.0), atol=1e-5)
    save_pretrained(model, tmp_path / "m")
    assert torch.equal(load_pretrained(tmp_path / "m").net.physics.state_mean, torch.ones(S))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "architecture_version": 1}))
    with pytest.raises(CheckpointError, match="architecture version 1") as err:
        load_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)
