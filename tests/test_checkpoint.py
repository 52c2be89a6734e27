"""Checkpoint I/O: atomic writes, exact round trips, and refusal of anything that would run code."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.models import CheckpointError, TaskSpec, WorldModel, WorldModelConfig, load_pretrained, register_family
from worldrl.models.task_spec import box_from_dict, box_to_dict


@dataclass
class LinearConfig(WorldModelConfig):
    """A linear next-state model: small enough to check checkpoint plumbing independently of any family."""

    hidden: int = 4
    """Width of the hidden layer."""
    dims: tuple[int, ...] = (1, 2)
    """A tuple field, to check JSON round trips restore tuples."""


class LinearModel(WorldModel):
    def __init__(self, config: LinearConfig, task: TaskSpec) -> None:
        super().__init__(config, task)
        d, a = task.obs_shape[0], task.action_dim
        self.net = torch.nn.Sequential(torch.nn.Linear(d + a, config.hidden), torch.nn.Linear(config.hidden, d))
        self.register_buffer("obs_mean", torch.zeros(d))

    def initial_state(self, batch_size: int) -> TensorDict:
        return TensorDict({"obs": torch.zeros(batch_size, self.task.obs_shape[0])}, batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first):
        return TensorDict({"obs": obs}, batch_size=obs.shape[:2])

    def imagine(self, state, action, generator=None):
        nxt = state["obs"] + self.net(torch.cat([state["obs"], action], -1))
        return TensorDict({"obs": nxt, "reward": -nxt.pow(2).sum(-1)}, batch_size=state.batch_size)

    def decode(self, state):
        return state["obs"]


register_family("test-linear", LinearConfig, LinearModel)


def _task() -> TaskSpec:
    return TaskSpec(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        action_space=gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
        task_id="Pendulum-v1",
        max_episode_steps=200,
    )


@pytest.fixture
def model() -> LinearModel:
    torch.manual_seed(0)
    m = LinearModel(LinearConfig(hidden=5, dims=(3, 4)), _task())
    m.obs_mean.fill_(0.25)
    return m


def test_round_trip_gives_identical_outputs(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    loaded = WorldModel.from_pretrained(str(tmp_path / "ckpt"))
    assert isinstance(loaded, LinearModel)
    assert loaded.config == model.config and loaded.config.dims == (3, 4)
    assert loaded.task.task_id == "Pendulum-v1" and loaded.task.max_episode_steps == 200
    assert loaded.task.action_space == model.task.action_space
    state = model.initial_state(4)
    action = torch.randn(4, 1)
    torch.testing.assert_close(
        loaded.imagine(state, action)["obs"], model.imagine(state, action)["obs"], rtol=0, atol=0
    )
    torch.testing.assert_close(loaded.obs_mean, torch.full((3,), 0.25))


def test_overwrite_is_atomic_and_leaves_no_temporaries(model, tmp_path):
    target = tmp_path / "ckpt"
    model.save_pretrained(target)
    with torch.no_grad():
        model.net[0].weight.add_(1.0)
    model.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    torch.testing.assert_close(load_pretrained(target).net[0].weight, model.net[0].weight)


def test_truncated_weights_are_reported(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="model.safetensors.*(corrupted|truncated)"):
        load_pretrained(tmp_path / "ckpt")


def test_pickle_file_is_refused_without_being_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_pretrained(bad)
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_pretrained(directory)
    assert not marker.exists()


def test_unknown_family_and_unknown_fields(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    cfg_path = tmp_path / "ckpt" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "family": "nope"}))
    with pytest.raises(CheckpointError, match="unknown world-model family 'nope'"):
        load_pretrained(tmp_path / "ckpt")
    cfg_path.write_text(json.dumps({**cfg, "bogus": 1}))
    with pytest.raises(ValueError, match="bogus"):
        load_pretrained(tmp_path / "ckpt")


def test_weights_that_do_not_match_config(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    cfg_path = tmp_path / "ckpt" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "hidden": 9}))
    with pytest.raises(CheckpointError, match="shape"):
        load_pretrained(tmp_path / "ckpt")


def test_missing_files_are_named(model, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_pretrained(tmp_path / "absent")
    model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "task.json").unlink()
    with pytest.raises(CheckpointError, match="task.json is missing"):
        load_pretrained(tmp_path / "ckpt")


def test_offline_hub_id_gives_download_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"`hf download someone/some-world-model --local-dir DIR`"):
        load_pretrained("someone/some-world-model")
    with pytest.raises(CheckpointError, match=r"`hf download someone/some-world-model --revision v2 --local-dir DIR`"):
        load_pretrained("someone/some-world-model", revision="v2")


def test_box_json_round_trip_keeps_infinite_bounds():
    box = gym.spaces.Box(low=np.array([-np.inf, -1.0]), high=np.array([np.inf, 1.0]), dtype=np.float32)
    text = json.dumps(box_to_dict(box))  # strict JSON: no bare Infinity
    assert "Infinity" not in text
    assert box_from_dict(json.loads(text)) == box


def test_task_spec_rejects_other_spaces():
    task = _task()
    with pytest.raises(ValueError, match="observation space"):
        task.check_compatible(gym.spaces.Box(-1, 1, (4,)), task.action_space)
    with pytest.raises(TypeError, match="Box"):
        TaskSpec(observation_space=gym.spaces.Discrete(3), action_space=task.action_space)


def _ensemble(tmp_path):
    from worldrl.models import build_model, get_family

    model = build_model("ensemble", get_family("ensemble").config_class.tiny(), TaskSpec.from_env_id("Pendulum-v1"))
    model.save_pretrained(tmp_path / "ens")
    return tmp_path / "ens"


def _rewrite_tensor(path, key, change):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    tensors[key] = change(tensors[key].clone())
    save_file(tensors, str(path), metadata={"family": "ensemble"})


@pytest.mark.parametrize(
    ("key", "change", "message"),
    [
        ("obs_norm.std", lambda t: t.fill_(float("nan")), r"'obs_norm.std' holds 3 NaN/inf values.*diverged"),
        ("obs_norm.std", lambda t: t.fill_(0.0), r"'obs_norm.std' is a normalisation std with values <= 0"),
        ("delta_norm.std", lambda t: -t, r"values <= 0 \(min -1\)"),
        ("elite_idx", lambda t: t + 7, r"elite indices \[7, 8\].*\[0, num_members=3\)"),
        ("elite_idx", lambda t: t * 0, r"elite indices \[0, 0\]; they must be distinct"),
    ],
    ids=["nan-std", "zero-std", "negative-std", "elite-range", "elite-duplicate"],
)
def test_tensor_values_out_of_range_are_refused(tmp_path, key, change, message):
    ckpt = _ensemble(tmp_path)
    _rewrite_tensor(ckpt / "model.safetensors", key, change)
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(ckpt)


def test_nan_weights_are_reported_as_diverged_by_every_loader(tmp_path, capsys):
    """A model whose training diverged is refused when loaded, so `evaluate` and the envs fail instead of scoring NaN."""
    from worldrl.cli import main

    ckpt = _ensemble(tmp_path)
    weight = next(k for k in load_pretrained(ckpt).state_dict() if k.endswith("weight"))
    _rewrite_tensor(ckpt / "model.safetensors", weight, lambda t: t.index_fill_(0, torch.tensor([0]), float("nan")))
    with pytest.raises(CheckpointError, match=f"{weight}.*NaN/inf.*diverged"):
        gym.make("WorldModel-v0", model=str(ckpt))
    capsys.readouterr()
    assert main(["evaluate", "--model", str(ckpt), "--dataset", str(tmp_path / "absent-data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("worldrl evaluate: error:") and "diverged" in err[0], err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format_version", 99, "format_version 99 is newer than this worldrl reads"),
        ("format_version", "1", "format_version must be a positive integer, got '1'"),
        ("format_version", 0, "format_version must be a positive integer"),
    ],
)
def test_unknown_format_versions_are_refused(model, tmp_path, field, value, message):
    model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(tmp_path / "ckpt")


@pytest.mark.parametrize("fps", [-30, float("nan")])
def test_negative_or_nan_fps_is_refused(model, tmp_path, fps):
    model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "task.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "fps": fps}))
    with pytest.raises(CheckpointError, match="fps must be a finite number >= 0"):
        load_pretrained(tmp_path / "ckpt")


def test_non_finite_start_states_are_refused(model, tmp_path):
    model.start_states = torch.zeros(4, 3)
    model.start_states[2, 1] = float("inf")
    model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="start states 'observations' hold NaN or inf"):
        load_pretrained(tmp_path / "ckpt")


def test_a_huge_file_is_refused_from_its_header(tmp_path):
    """Only the first bytes are read to tell a pickle from anything else (a sparse 64 GB file)."""
    import time

    big = tmp_path / "weights.safetensors"
    with big.open("wb") as file:
        file.truncate(64 * 2**30)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="is a file; a worldrl checkpoint is a directory"):
        load_pretrained(big)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:99", "device 'cuda:99'"),
        ("gpu", "device 'gpu' is not a torch device"),
        ("xla", "device 'xla' is not available on this machine"),
    ],
)
def test_a_device_that_does_not_exist_is_one_line(model, tmp_path, device, message):
    from worldrl.errors import ConfigError
    from worldrl.models.checkpoint import resolve_device

    model.save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match=message):
        load_pretrained(tmp_path / "ckpt", device=device)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda' is not available on this machine: use --device cpu"):
            resolve_device("cuda")
