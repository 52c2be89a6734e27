"""vrnn ``supervision_keys``: dataset vectors the model learns to predict from its latent but never observes."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import VRNN_TINY
from tensordict import TensorDict
from test_keyed_observations import ENV_STATE, STATE, held_out_episodes, record_keyed_pendulum

from worldrl.data import LeRobotDatasetReader
from worldrl.errors import ConfigError, ModelConfigurationError
from worldrl.models import TaskSpec, build_model, load_pretrained
from worldrl.models.task_spec import SUPERVISION_DIMS
from worldrl.models.vrnn.config import VRNNConfig
from worldrl.models.vrnn.supervision import MOTION_FLOOR, MOTION_MOMENTUM
from worldrl.training.run import train_from_config

A, SIDE = 2, 16


def _pixel_model(**extra):
    torch.manual_seed(0)
    task = TaskSpec(
        gym.spaces.Box(0, 255, (SIDE, SIDE, 3), np.uint8),
        gym.spaces.Box(-1, 1, (A,), np.float32),
        task_id="Tiny-v0",
        extra={SUPERVISION_DIMS: {"observation.environment_state": 4}},
    )
    options = {
        **VRNN_TINY,
        "image_size": 16,
        "reference_frame": True,
        "reference_features": True,
        "lambda_open_loop": 1.0,
        "open_loop_horizon": 3,
        "supervision_keys": ["observation.environment_state"],
        **extra,
    }
    return build_model("vrnn", options, task)


def _batch(b: int = 2, t: int = 5) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        {
            "obs": torch.randint(0, 256, (b, t, SIDE, SIDE, 3), generator=g, dtype=torch.uint8),
            "action": torch.rand(b, t, A, generator=g) * 2 - 1,
            "reward": torch.rand(b, t, generator=g),
            "terminated": torch.zeros(b, t, dtype=torch.bool),
            "is_first": is_first,
            "mask": torch.ones(b, t, dtype=torch.bool),
            "supervision": TensorDict(
                {"observation.environment_state": torch.randn(b, t, 4, generator=g)}, batch_size=[b, t]
            ),
        },
        batch_size=[b, t],
    )


def test_open_loop_supervision_trains_the_dynamics():
    """The open-loop term's gradient reaches the LSTM and the prior (what imagination runs), and every term is
    logged."""
    model = _pixel_model()
    losses, _ = model.compute_total_loss(_batch())
    for name in ("supervision_filter", "supervision_one_step", "supervision_open_loop", "supervision"):
        assert name in losses and torch.isfinite(losses[name])
    torch.testing.assert_close(
        losses["supervision"],
        losses["supervision_filter"] + losses["supervision_one_step"] + losses["supervision_open_loop"],
    )
    losses["supervision_open_loop"].backward()
    assert model.lstm.weight_hh_l0.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prior.parameters())
    assert model.decoder.conv.net[-1].weight.grad is None  # frames are not what this term scores


def test_a_batch_without_the_supervision_values_is_refused():
    batch = _batch()
    del batch["supervision"]
    with pytest.raises(KeyError, match="supervision"):
        _pixel_model().compute_total_loss(batch)


def test_supervision_sizes_must_come_from_the_task():
    task = TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (A,), np.float32))
    with pytest.raises(ModelConfigurationError, match="no recorded size"):
        build_model("vrnn", {**VRNN_TINY, "supervision_keys": ["observation.environment_state"]}, task)


def test_supervision_keys_must_be_distinct_names():
    with pytest.raises(ConfigError, match="supervision_keys"):
        VRNNConfig(supervision_keys=["a", "a"])
    with pytest.raises(ConfigError, match="supervision_keys"):
        VRNNConfig(supervision_keys=[""])


def test_without_supervision_keys_there_is_no_head():
    task = TaskSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1, 1, (A,), np.float32))
    model = build_model("vrnn", VRNN_TINY, task)
    with pytest.raises(ValueError, match="no supervision heads"):
        model.predict_supervision(model.initial_state(2))


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory) -> tuple[Path, Path]:
    """A vrnn that observes the pendulum's (cos, sin) and is supervised on its angular velocity, which no single
    observation shows: the latent has to carry it from the frames' history."""
    tmp = tmp_path_factory.mktemp("supervised")
    record_keyed_pendulum(tmp / "data")
    result = train_from_config(_pendulum_config(tmp / "run", tmp / "data"))
    return Path(result.model_path), tmp / "data"


def _pendulum_config(output_dir: Path, data: Path, **model: object) -> dict:
    """300 updates of a small vrnn on the keyed pendulum, supervised on its angular velocity."""
    return {
        "output_dir": str(output_dir),
        "data": {"root": str(data), "obs_key": STATE, "window": 8, "val_fraction": 0.2},
        "model": {
            "family": "vrnn",
            **VRNN_TINY,
            "hidden_dim": 32,
            "lambda_open_loop": 1.0,
            "open_loop_horizon": 4,
            "supervision_keys": [ENV_STATE],
            **model,
        },
        "trainer": {"max_steps": 300, "batch_size": 16, "lr": 3e-3, "eval_every": 300, "progress": False},
    }


def test_supervision_head_predicts_an_unobserved_velocity_on_held_out_episodes(supervised_run):
    """Filtered through held-out episodes, the head's angular velocity beats predicting the training mean."""
    path, data = supervised_run
    model = load_pretrained(path, device="cpu").eval()
    assert model.task.obs_keys == [STATE]
    assert model.task.extra[SUPERVISION_DIMS] == {ENV_STATE: 1}
    reader = LeRobotDatasetReader(data)
    errors, baseline = [], []
    train_mean = float(model.supervision.norm.mean[0])
    for episode in held_out_episodes():
        lo, hi = reader.episode_range(episode)
        obs = torch.from_numpy(reader.column(STATE)[lo:hi]).float()[None]
        action = torch.from_numpy(reader.column("action")[lo:hi]).float().reshape(1, -1, 1)
        prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
        is_first = torch.zeros(1, hi - lo, dtype=torch.bool)
        is_first[0, 0] = True
        with torch.no_grad():
            pred = model.predict_supervision(model.observe(obs, prev, is_first))[ENV_STATE][0, 5:, 0]
        truth = torch.from_numpy(reader.column(ENV_STATE)[lo:hi]).float().reshape(-1)[5:]
        errors.append((pred - truth).pow(2).mean())
        baseline.append((train_mean - truth).pow(2).mean())
    assert torch.stack(errors).mean() < 0.5 * torch.stack(baseline).mean()


def test_supervision_keys_are_checked_against_the_dataset(supervised_run, tmp_path):
    _, data = supervised_run
    base = {
        "output_dir": str(tmp_path / "run"),
        "data": {"root": str(data), "obs_key": STATE, "window": 4},
        "trainer": {"max_steps": 1, "progress": False},
    }
    for keys, message in ((["observation.nope"], "not a vector feature"), ([STATE], "observed by the model")):
        cfg = {**base, "model": {"family": "vrnn", **VRNN_TINY, "supervision_keys": keys}}
        with pytest.raises(ConfigError, match=message):
            train_from_config(cfg)


def test_supervision_motion_needs_supervision_keys():
    with pytest.raises(ConfigError, match="supervision_motion"):
        VRNNConfig(supervision_motion=True)


def test_motion_targets_are_scaled_by_a_running_rms_that_the_checkpoint_keeps():
    head = _pixel_model(supervision_motion=True).supervision
    moved = torch.tensor([[3.0, 0.0, 0.0, 0.0], [-3.0, 0.0, 0.0, 0.0], [1e6, 0.0, 0.0, 0.0]])
    valid = torch.tensor([True, True, False])  # the invalid row must not count
    scaled = head.train().motion_targets(moved, valid)
    floor = MOTION_FLOOR * head.norm.std[1]
    torch.testing.assert_close(head.motion_rms, torch.tensor([3.0, floor, floor, floor]))
    torch.testing.assert_close(scaled[:2, 0], torch.tensor([1.0, -1.0]))
    head.motion_targets(2 * moved, valid)  # later batches move it by (1 - momentum) of the way
    expected = MOTION_MOMENTUM * 3.0 + (1 - MOTION_MOMENTUM) * 6.0
    torch.testing.assert_close(head.motion_rms[0], torch.tensor(expected))
    head.eval().motion_targets(10 * moved, valid)  # evaluation never changes the scale
    torch.testing.assert_close(head.motion_rms[0], torch.tensor(expected))
    feat = torch.randn(2, head.net[0].in_features)
    predicted = head.predict(feat)["observation.environment_state"]
    torch.testing.assert_close(predicted, head.net(feat) * head.motion_rms)
    model = _pixel_model(supervision_motion=True)
    assert {"supervision.motion_rms", "supervision.motion_updates"} <= set(model.state_dict())


def test_motion_supervision_scores_motions_not_positions():
    """Shifting every recorded value by a constant leaves the motion losses unchanged; the absolute heads see it.
    The filtered states are not scored (nothing moved since their own frame)."""
    for motion in (True, False):
        model = _pixel_model(supervision_motion=motion).eval()
        batch, shifted = _batch(), _batch()
        shifted["supervision", "observation.environment_state"] += 100.0
        losses, _ = model.compute_total_loss(batch, stochastic=False)
        moved, _ = model.compute_total_loss(shifted, stochastic=False)
        assert ("supervision_filter" in losses) is not motion
        for name in ("supervision_one_step", "supervision_open_loop"):
            assert torch.isfinite(losses[name])
            assert bool(torch.isclose(losses[name], moved[name])) is motion


def test_motion_head_predicts_the_imagined_change_of_an_unobserved_velocity(supervised_run, tmp_path):
    """Trained on motions, the head reads from imagined states how much the pendulum's angular velocity (which it
    never observes) changes under the recorded torques, on held-out episodes, better than "it does not change"."""
    _, data = supervised_run
    cfg = _pendulum_config(tmp_path / "run", data, supervision_motion=True)
    model = load_pretrained(train_from_config(cfg).model_path, device="cpu").eval()
    scale = model.supervision.motion_rms[0]  # learnt from the data and kept by the checkpoint, not the initial 1
    assert int(model.supervision.motion_updates) > 0 and not torch.isclose(scale, torch.ones(()), atol=1e-3)
    reader, horizon, errors, baseline = LeRobotDatasetReader(data), 4, [], []
    for episode in held_out_episodes():
        lo, hi = reader.episode_range(episode)
        obs = torch.from_numpy(reader.column(STATE)[lo:hi]).float()[None]
        action = torch.from_numpy(reader.column("action")[lo:hi]).float().reshape(1, -1, 1)
        velocity = torch.from_numpy(reader.column(ENV_STATE)[lo:hi]).float().reshape(-1)
        prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
        is_first = torch.zeros(1, hi - lo, dtype=torch.bool)
        is_first[0, 0] = True
        with torch.no_grad():
            posterior = model.observe(obs, prev, is_first)
            for start in range(5, hi - lo - horizon, 5):
                state = posterior[:, start]
                for k in range(horizon):
                    state = model.imagine(state, action[:, start + k])
                moved = model.predict_supervision(state)[ENV_STATE][0, 0]
                truth = velocity[start + horizon] - velocity[start]
                errors.append((moved - truth) ** 2)
                baseline.append(truth**2)
    assert torch.stack(errors).mean() < 0.5 * torch.stack(baseline).mean()
