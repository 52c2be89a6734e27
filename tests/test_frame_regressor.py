"""FrameRegressor: reads where a drawn object is off a frame, round-trips through safetensors, refuses bad input;
and the pixel known-goal value of scripts/benchmark_robot.py that adds a vrnn's predicted motion to it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from _scripts import load_script

from worldrl.errors import CheckpointError
from worldrl.models import TaskSpec, build_model
from worldrl.models.frame_regressor import FrameRegressor, FrameRegressorConfig, fit_frame_regressor
from worldrl.models.task_spec import SUPERVISION_DIMS


def square_frames(n: int, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames with a 4x4 bright square at a random place; targets: its top-left corner (row, column)."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, size - 4, (n, 2))
    frames = np.zeros((n, size, size, 3), np.uint8)
    for frame, (r, c) in zip(frames, corners):
        frame[r : r + 4, c : c + 4] = 255
    return frames, corners.astype(np.float32)


def test_frame_regressor_learns_where_the_square_is():
    frames, corners = square_frames(600)
    held_out = np.arange(600) % 10 == 0
    _, stats = fit_frame_regressor(frames, corners, held_out, steps=400, progress=False)
    # predicting the mean misses by about 5.8 px on a 20-px range; the regressor must read the frame
    assert stats["rmse_held_out"] < 0.35 * stats["rmse_predict_train_mean"]


def test_frame_regressor_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = FrameRegressor(FrameRegressorConfig(height=24, width=24, out_dim=2)).eval()
    model.norm.fit([10.0, 5.0], [3.0, 2.0])
    model.save(tmp_path / "reader.safetensors")
    loaded = FrameRegressor.load(tmp_path / "reader.safetensors")
    frames = torch.from_numpy(square_frames(3)[0])
    with torch.no_grad():
        assert torch.equal(model(frames), loaded(frames))
    assert model(frames[None]).shape == (1, 3, 2)  # leading dims are kept


def test_frame_regressor_refuses_float_frames_and_an_unknown_config_field(tmp_path):
    frames, corners = square_frames(80)
    with pytest.raises(ValueError, match="uint8"):
        fit_frame_regressor(frames.astype(np.float32), corners, np.arange(80) % 10 == 0, steps=1)
    model = FrameRegressor(FrameRegressorConfig(height=24, width=24, out_dim=2))
    model.save(tmp_path / "reader.safetensors")
    (tmp_path / "reader.json").write_text('{"height": 24, "colour": 3}')
    with pytest.raises(CheckpointError, match="colour"):
        FrameRegressor.load(tmp_path / "reader.safetensors")


class FixedReader(torch.nn.Module):
    """Reads every frame as the block at its goal pose."""

    def __init__(self, keypoints: torch.Tensor) -> None:
        super().__init__()
        self.keypoints = keypoints.reshape(-1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.keypoints.expand(frames.shape[0], -1)


def test_pixel_goal_value_adds_the_predicted_motion_to_the_read_block():
    bench = load_script("benchmark_robot")
    from worldrl.tasks.pusht_scripted import GOAL_POSE, KEYPOINTS_LOCAL, rotation

    goal = torch.as_tensor(KEYPOINTS_LOCAL @ rotation(GOAL_POSE[2]).T + GOAL_POSE[:2], dtype=torch.float32)
    task = TaskSpec(
        gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(0, 512, (2,), np.float32), task_id="PushTiny"
    )
    task.extra[SUPERVISION_DIMS] = {"observation.environment_state": 16}
    config = {**VRNN_TINY, "image_size": 8, "supervision_keys": ["observation.environment_state"]}
    absolute = build_model("vrnn", config, task).eval()
    with pytest.raises(SystemExit, match="supervision_motion"):
        bench.PixelGoalValue(absolute, FixedReader(goal))
    model = build_model("vrnn", {**config, "supervision_motion": True}, task).eval()
    value = bench.PixelGoalValue(model, FixedReader(goal))
    centre = goal.mean(0).numpy()
    value.observe(
        {"observation.image": np.zeros((2, 16, 16, 3), np.uint8), "observation.state": np.stack([centre] * 2)}
    )
    latent = torch.randn(6, model.latent_dim)  # 2 episodes x 3 candidates
    moved = model.supervision.predict(latent[:, : model.config.hidden_dim + model.config.latent_dim])
    block = goal + moved["observation.environment_state"].reshape(-1, 8, 2)
    expected = -bench.goal_distance(block, torch.as_tensor(np.stack([centre] * 6))) / bench.GOAL_PIXELS_PER_UNIT
    torch.testing.assert_close(value(latent), expected)
    with torch.no_grad():
        model.supervision.net[-1].weight.zero_()
        model.supervision.net[-1].bias.zero_()
    # no predicted motion: the block stays at the goal and the pusher at its centre, distance 0
    torch.testing.assert_close(value(latent), torch.zeros(6))
