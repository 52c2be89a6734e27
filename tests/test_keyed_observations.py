"""Keyed observations end to end: a LeRobot dataset with two observation keys -> ``worldrl train`` -> checkpoint ->
``WorldModel-v0`` with a ``Dict`` observation space (single, vector and TorchRL envs)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from worldrl.data import LeRobotDatasetWriter
from worldrl.envs import WorldModelTorchRLEnv
from worldrl.envs.world_model_env import WorldModelEnv
from worldrl.models import TaskSpec, load_pretrained
from worldrl.models import observations as keyed
from worldrl.training.run import train_from_config

STATE, ENV_STATE = "observation.state", "observation.environment_state"
EPISODES, VAL_FRACTION = 12, 0.2


def held_out_episodes() -> list[int]:
    """The episodes the trainer kept out of training (its own split: seed 0, ``VAL_FRACTION``)."""
    from worldrl.data import split_episodes

    return split_episodes(list(range(EPISODES)), VAL_FRACTION, 0)[1]


def record_keyed_pendulum(root: Path, episodes: int = EPISODES, steps: int = 60) -> None:
    """Real Pendulum-v1 rollouts stored as two keys, as LeRobot splits agent and environment state:
    ``observation.state`` = (cos, sin) of the angle, ``observation.environment_state`` = angular velocity."""
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    features = {
        STATE: {"dtype": "float32", "shape": [2], "names": ["cos", "sin"]},
        ENV_STATE: {"dtype": "float32", "shape": [1], "names": ["theta_dot"]},
        "action": {"dtype": "float32", "shape": [1], "names": ["torque"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
    }
    with LeRobotDatasetWriter.create(root, fps=20, features=features) as writer:
        for episode in range(episodes):
            obs, _ = env.reset(seed=episode)
            for _ in range(steps):
                action = rng.uniform(-2, 2, size=1).astype(np.float32)
                nxt, reward, terminated, _, _ = env.step(action)
                writer.add_frame(
                    {
                        STATE: obs[:2],
                        ENV_STATE: obs[2:],
                        "action": action,
                        "next.reward": float(reward),
                        "next.terminated": bool(terminated),
                    },
                    task="swing",
                )
                obs = nxt
            writer.save_episode()
    env.close()


@pytest.fixture(scope="module")
def keyed_model(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("keyed")
    record_keyed_pendulum(tmp / "data")
    cfg = {
        "output_dir": str(tmp / "run"),
        "data": {"root": str(tmp / "data"), "window": 2, "val_fraction": VAL_FRACTION},
        "model": {"family": "ensemble", "num_members": 3, "num_elites": 2, "hidden_dims": [64, 64]},
        "trainer": {"max_steps": 400, "batch_size": 64, "lr": 3e-3, "eval_every": 400, "progress": False},
    }
    result = train_from_config(cfg)
    return Path(result.model_path), tmp / "data"


def test_the_family_reads_every_vector_key_and_checkpoints_keep_them(keyed_model) -> None:
    path, _ = keyed_model
    model = load_pretrained(path)
    assert model.task.is_keyed and model.task.obs_keys == [ENV_STATE, STATE]
    assert isinstance(model.task.observation_space, gym.spaces.Dict)
    assert isinstance(model.start_states, TensorDict) and model.start_states[STATE].shape[1:] == (2,)
    assert TaskSpec.from_dict(model.task.to_dict()).obs_keys == model.task.obs_keys


def test_keyed_model_predicts_better_than_repeating_the_last_observation(keyed_model) -> None:
    path, data = keyed_model
    from worldrl.data import LeRobotDatasetReader

    model, reader = load_pretrained(path), LeRobotDatasetReader(data)
    start, end = reader.episode_range(held_out_episodes()[0])  # never trained on
    rows = np.arange(start, end)  # consecutive rows of one episode are consecutive steps
    obs = TensorDict({k: torch.as_tensor(reader.column(k)[rows]) for k in (STATE, ENV_STATE)}, batch_size=[len(rows)])
    action = torch.as_tensor(reader.column("action")[rows]).reshape(-1, 1)
    with torch.no_grad():
        state = model.observe_last(
            obs.unsqueeze(1), torch.zeros(len(rows), 1, 1), torch.ones(len(rows), 1, dtype=torch.bool)
        )
        predicted = model.decode(model.imagine(state, action))
    assert isinstance(predicted, TensorDict) and set(predicted.keys()) == {STATE, ENV_STATE}
    real_next = keyed.flatten_observation(obs[1:], model.task, 1)
    model_err = (keyed.flatten_observation(predicted[:-1], model.task, 1) - real_next).pow(2).mean()
    repeat_err = (keyed.flatten_observation(obs[:-1], model.task, 1) - real_next).pow(2).mean()
    assert model_err < 0.5 * repeat_err, (float(model_err), float(repeat_err))


def test_keyed_env_serves_a_dict_space_and_passes_the_checkers(keyed_model) -> None:
    path, _ = keyed_model
    env = WorldModelEnv(str(path))
    assert isinstance(env.observation_space, gym.spaces.Dict)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {STATE, ENV_STATE} and obs[STATE].shape == (2,)
    start = {STATE: np.array([1.0, 0.0], np.float32), ENV_STATE: np.array([0.0], np.float32)}
    obs, _ = env.reset(options={"observation": start})
    np.testing.assert_allclose(obs[STATE], start[STATE], atol=1e-6)
    with pytest.raises(ValueError, match="lacks the key"):
        env.reset(options={"observation": {STATE: start[STATE]}})


def test_keyed_vector_env_equals_single_envs(keyed_model) -> None:
    path, _ = keyed_model
    vec = gym.make_vec("WorldModel-v0", num_envs=3, model=str(path))
    singles = [WorldModelEnv(str(path)) for _ in range(3)]
    obs, _ = vec.reset(seed=5)
    actions = np.array([[0.5], [-1.0], [2.0]], np.float32)
    obs, reward, *_ = vec.step(actions)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
        single_obs, single_reward, *_ = env.step(actions[i])
        for key in (STATE, ENV_STATE):
            np.testing.assert_allclose(obs[key][i], single_obs[key], atol=1e-5)
        assert reward[i] == pytest.approx(single_reward, abs=1e-5)


def test_keyed_torchrl_env_nests_the_keys(keyed_model) -> None:
    path, _ = keyed_model
    env = WorldModelTorchRLEnv(str(path))
    check_env_specs(env)
    td = env.rollout(5)
    assert td["next", "observation", STATE].shape == (5, 2)


def test_fidelity_scores_every_key_beside_the_trivial_baselines(keyed_model) -> None:
    from worldrl.data import LeRobotDatasetReader
    from worldrl.evaluation import evaluate_fidelity

    path, data = keyed_model
    report = evaluate_fidelity(
        load_pretrained(path),
        LeRobotDatasetReader(data),
        episodes=held_out_episodes(),
        horizons=(1, 5),
        num_starts=None,
    )
    one = report.horizons[0]
    assert set(one.per_key) == {STATE, ENV_STATE} and all("nrmse" in v for v in one.per_key.values())
    assert one.nrmse == one.per_key[ENV_STATE]["nrmse"]  # the top-level fields repeat the task's first key
    for key in (STATE, ENV_STATE):
        assert one.per_key[key]["nrmse"] < report.baselines["repeat_last"][0].per_key[key]["nrmse"]
        assert one.per_key[key]["nrmse"] < report.baselines["dataset_mean"][0].per_key[key]["nrmse"]
    table = report.to_markdown()
    assert f"{STATE}: nRMSE" in table and "repeat the last observation" in table
