"""One contract for every registered world-model family, run automatically for each name in the registry.

A family is tested the day it is registered: ``worldrl train`` on a shared recording (InvertedPendulum-v5 with
camera frames, so a family picks the keys it reads: ``WorldModel.observation_keys``), with the family's tiny
config (``WorldModelConfig.tiny``); then the checkpoint round trip, the protocol's shapes, determinism under a
seeded generator, and the Gymnasium, vector and TorchRL env contracts on the trained model.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from _models import record_pixel_pendulum
from gymnasium.utils.env_checker import check_env
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from worldrl.cli import main as worldrl_main
from worldrl.envs import WorldModelTorchRLEnv
from worldrl.envs.world_model_env import WorldModelEnv
from worldrl.evaluation.fidelity import FidelityReport
from worldrl.models import available_families, get_family, load_pretrained
from worldrl.models import observations as keyed

FAMILIES = [
    name for name in available_families() if get_family(name).model_class.__module__.startswith("worldrl.models.")
]
"""Every family the library registers (test doubles that other test modules register are not families)."""
VARIANTS = [(name, {}) for name in FAMILIES] + [("ensemble", {"history": 2, "nll_beta": 0.5})]
"""Each family's tiny config, plus the settings that change a family's protocol (the ensemble's history makes it
recurrent and puts the past steps in its state)."""
BATCH, SEQ, HORIZON = 3, 4, 5


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contract") / "ip_pixels"
    record_pixel_pendulum(root)
    return root


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v[0] + "".join(f"-{k}{x}" for k, x in v[1].items()))
def trained(request, recording: Path, tmp_path_factory) -> tuple[str, Path]:
    """``worldrl train`` for a few steps with the family's tiny config; returns (family, checkpoint dir)."""
    family, settings = request.param
    out = tmp_path_factory.mktemp(f"run-{family}")
    config = {
        "output_dir": str(out),
        "seed": 0,
        "data": {"root": str(recording), "window": 4},
        "model": {"family": family, **get_family(family).config_class.tiny(), **settings},
        "trainer": {"max_steps": 4, "batch_size": 4, "eval_every": 4, "progress": False},
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert worldrl_main(["train", "--config", str(path)]) == 0
    return family, out / "model"


def _observations(model, batch: int, steps: int) -> keyed.Observation:
    """Real start observations of the model's own training data, repeated over ``steps``."""
    starts = model.start_states
    rows = torch.arange(batch) % keyed.batch_size_of(starts)
    first = starts[rows]
    return (
        first.unsqueeze(1).expand(batch, steps)
        if isinstance(first, TensorDict)
        else first[:, None].expand(batch, steps, *first.shape[1:])
    )


def _encode(model, batch: int = BATCH, steps: int = SEQ) -> TensorDict:
    prev_action = torch.zeros(batch, steps, model.task.action_dim)
    is_first = torch.zeros(batch, steps, dtype=torch.bool)
    is_first[:, 0] = True
    with torch.no_grad():
        return model.observe(_observations(model, batch, steps), prev_action, is_first)


def test_save_and_load_round_trip(trained, tmp_path: Path) -> None:
    family, path = trained
    model = load_pretrained(path)
    assert model.config.family == family
    model.save_pretrained(str(tmp_path / "again"))
    again = load_pretrained(tmp_path / "again")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    actions = torch.full((BATCH, HORIZON, model.task.action_dim), 0.5)
    with torch.no_grad():
        one = model.rollout(
            model.observe_last(
                _observations(model, BATCH, 1), actions[:, :1] * 0, torch.ones(BATCH, 1, dtype=torch.bool)
            ),
            actions,
        )
        two = again.rollout(
            again.observe_last(
                _observations(again, BATCH, 1), actions[:, :1] * 0, torch.ones(BATCH, 1, dtype=torch.bool)
            ),
            actions,
        )
    assert torch.allclose(model.latent(one), again.latent(two))


def test_protocol_shapes(trained) -> None:
    _, path = trained
    model = load_pretrained(path)
    states = _encode(model)
    assert tuple(states.batch_size) == (BATCH, SEQ)
    last = states[:, -1]
    with torch.no_grad():
        nxt = model.imagine(last, torch.zeros(BATCH, model.task.action_dim))
        rolled = model.rollout(last, torch.zeros(BATCH, HORIZON, model.task.action_dim))
        assert tuple(nxt.batch_size) == (BATCH,) and tuple(rolled.batch_size) == (BATCH, HORIZON)
        assert model.latent(nxt).shape == (BATCH, model.latent_dim)
        assert model.embed(_observations(model, BATCH, 1)[:, 0]).shape[0] == BATCH
        if model.capabilities.can_decode:
            decoded = model.decode(nxt)
            for key, space in model.task.key_spaces().items():
                value = decoded[key] if model.task.is_keyed else decoded
                assert tuple(value.shape) == (BATCH, *space.shape), key
        if model.capabilities.predicts_reward:
            assert model.reward(nxt).shape == (BATCH,)
        assert model.terminal(nxt).shape == (BATCH,)


def test_sampling_is_determined_by_the_generator(trained) -> None:
    _, path = trained
    model = load_pretrained(path)
    last = _encode(model)[:, -1]
    actions = torch.rand(BATCH, HORIZON, model.task.action_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def rollout(seed: int) -> torch.Tensor:
        with torch.no_grad():
            return model.latent(model.rollout(last, actions, torch.Generator().manual_seed(seed)))

    assert torch.equal(rollout(3), rollout(3))
    if model.capabilities.stochastic:
        assert not torch.equal(rollout(3), rollout(4))


def _env_options(model) -> dict:
    """Goal rewards for families without a reward head (the env's automatic choice), with a real goal."""
    if model.capabilities.predicts_reward or model.capabilities.can_decode:
        return {}
    return {"goal": keyed.row(keyed.to_numpy(model.start_states, model.task), 0)}


def test_gymnasium_env_contract(trained) -> None:
    _, path = trained
    model = load_pretrained(path)
    env = WorldModelEnv(model, **_env_options(model))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward) and not info["model_diverged"]


def test_vector_env_matches_single_envs(trained) -> None:
    _, path = trained
    model = load_pretrained(path)
    vec = gym.make_vec("WorldModel-v0", num_envs=2, model=model, **_env_options(model))
    singles = [WorldModelEnv(model, **_env_options(model)) for _ in range(2)]
    vec.reset(seed=7)
    for i, env in enumerate(singles):
        env.reset(seed=7 + i)
    action = np.full((2, *model.task.action_space.shape), 0.3, np.float32)
    _, rewards, *_ = vec.step(action)
    for i, env in enumerate(singles):
        assert rewards[i] == pytest.approx(env.step(action[i])[1], abs=1e-4)


def test_torchrl_env_contract(trained) -> None:
    _, path = trained
    model = load_pretrained(path)
    env = WorldModelTorchRLEnv(model, **_env_options(model))
    check_env_specs(env)
    assert env.rollout(4, break_when_any_done=False)["next", "reward"].shape == (4, 1)


def test_evaluate_command_writes_its_report_and_plots(trained, recording: Path, tmp_path: Path) -> None:
    """`worldrl evaluate` finishes with its files on every family trained on the pixel recording: pixel examples
    become a frame strip (one trajectory panel per pixel would lay out thousands of subplots and never finish)."""
    family, model_dir = trained
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model_dir), "--dataset", str(recording), "--episodes", "all", "--out", str(out)]
    if family == "multimodal":  # its evaluation is the benchmark suite, with its own files
        return
    assert worldrl_main([*args, "--horizons", "1", "5", "--num-starts", "4"]) == 0
    report = FidelityReport.from_json(out / "fidelity.json")
    assert (out / "fidelity.md").stat().st_size > 0
    assert (out / "trajectories.png").exists() == (not report.is_pixel and not report.is_latent)
    assert (out / "frames.png").exists() == report.is_pixel
