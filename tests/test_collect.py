"""`worldrl collect`: rollouts recorded into LeRobot v3.0 datasets, checked against replays."""

from __future__ import annotations

import pickle

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest

from worldrl.cli import main
from worldrl.data import DatasetExistsError, LeRobotDatasetReader
from worldrl.data.collect import CollectConfig, CollectionInterrupted, collect, episode_seed
from worldrl.data.policies import OUParams, PolicyContext, make_policy, ou_step
from worldrl.data.storage_layout import UnsupportedSpaceError
from worldrl.tasks.real_envs import UnknownEnvError, make_real_env


def episode_rows(reader: LeRobotDatasetReader, key: str, ep: int) -> np.ndarray:
    lo, hi = reader.episode_range(ep)
    return reader.column(key)[lo:hi]


def test_pendulum_state_dataset_matches_a_replay(tmp_path):
    out = tmp_path / "pendulum"
    summary = collect(
        CollectConfig("Pendulum-v1", out, episodes=3, num_envs=2, max_episode_steps=20, seed=7), progress=False
    )
    reader = LeRobotDatasetReader(out)
    assert (reader.num_episodes, reader.num_frames, reader.fps) == (3, 60, 20)
    assert reader.info["robot_type"] == "Pendulum-v1"
    assert reader.features["observation.state"]["names"] == ["cos_theta", "sin_theta", "theta_dot"]
    assert summary.episodes == 3 and summary.frames == 60 and summary.lengths == (20, 20, 20)
    # Pendulum never terminates: only the time limit ends it, at the last row.
    term, trunc, done = (reader.column(k)[:, 0] for k in ("next.terminated", "next.truncated", "next.done"))
    assert not term.any() and trunc.sum() == 3 and np.array_equal(done, trunc)
    assert all(episode_rows(reader, "next.truncated", ep)[-1, 0] for ep in range(3))
    # Episode k is reset with episode_seed(7, k), whichever env records it; a reset is never a row.
    env = make_real_env("Pendulum-v1", max_episode_steps=20)
    for ep in (0, 2):
        obs, _ = env.reset(seed=episode_seed(7, ep))
        states, actions = episode_rows(reader, "observation.state", ep), episode_rows(reader, "action", ep)
        rewards = episode_rows(reader, "next.reward", ep)[:, 0]
        for t in range(20):
            np.testing.assert_allclose(states[t], obs, rtol=0, atol=1e-6)
            obs, reward, *_ = env.step(actions[t])
            assert reward == pytest.approx(rewards[t], abs=1e-4)
    env.reset(seed=episode_seed(7, 1))
    np.testing.assert_allclose(episode_rows(reader, "observation.state", 1)[0], env.unwrapped._get_obs(), atol=1e-6)
    for ep in range(3):
        assert summary.returns[ep] == pytest.approx(float(episode_rows(reader, "next.reward", ep).sum()), abs=1e-3)


@pytest.mark.parametrize("storage", ["video", "image"])
def test_inverted_pendulum_pixels_terminate_and_match_a_replay(tmp_path, storage):
    out = tmp_path / storage
    collect(
        CollectConfig(
            "InvertedPendulum-v5", out, episodes=2, pixels=True, image_storage=storage, max_episode_steps=30, seed=3
        ),
        progress=False,
    )
    reader = LeRobotDatasetReader(out)
    key = "observation.images.front"
    assert reader.num_episodes == 2 and reader.features[key]["dtype"] == storage
    frames = reader.frames(key, np.arange(reader.num_frames))
    assert frames.shape == (reader.num_frames, 64, 64, 3)
    env = make_real_env("InvertedPendulum-v5", pixels=True, max_episode_steps=30)
    for ep in (0, 1):  # each episode is reset with its own seed
        obs, _ = env.reset(seed=episode_seed(3, ep))
        lo, hi = reader.episode_range(ep)
        actions = reader.column("action")[lo:hi]
        for t, row in enumerate(range(lo, hi)):
            np.testing.assert_allclose(reader.column("observation.state")[row], obs["state"], rtol=0, atol=1e-6)
            error = np.abs(frames[row].astype(int) - obs["pixels"].astype(int)).mean()
            assert error == 0 if storage == "image" else error < 2.0
            obs, _, terminated, truncated, _ = env.step(actions[t])
            assert reader.column("next.terminated")[row, 0] == terminated
            assert reader.column("next.truncated")[row, 0] == truncated
        assert terminated  # a random policy drops the pole long before 30 steps


def test_unknown_env_id(tmp_path):
    with pytest.raises(UnknownEnvError, match="Pendulum-v1"):
        collect(CollectConfig("Pendulum-v7", tmp_path / "x", episodes=1), progress=False)
    assert not (tmp_path / "x").exists()


class MultiBinaryEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.MultiBinary(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_unsupported_action_space(tmp_path):
    gym.register("WorldrlTestMultiBinary-v0", entry_point=MultiBinaryEnv, max_episode_steps=5)
    try:
        with pytest.raises(UnsupportedSpaceError, match="WorldrlTestMultiBinary-v0.*MultiBinary"):
            collect(CollectConfig("WorldrlTestMultiBinary-v0", tmp_path / "x", episodes=1), progress=False)
    finally:
        gym.registry.pop("WorldrlTestMultiBinary-v0")
    assert not (tmp_path / "x").exists()


def test_existing_dataset_needs_overwrite_or_resume(tmp_path):
    out = tmp_path / "d"
    base = {"env_id": "Pendulum-v1", "out": out, "max_episode_steps": 5}
    collect(CollectConfig(episodes=2, **base), progress=False)
    with pytest.raises(DatasetExistsError):
        collect(CollectConfig(episodes=1, **base), progress=False)
    collect(CollectConfig(episodes=1, resume=True, **base), progress=False)
    reader = LeRobotDatasetReader(out)
    assert reader.num_episodes == 3 and reader.num_frames == 15
    states = reader.column("observation.state")
    assert not np.allclose(states[0], states[10])  # the appended episode got a fresh seed
    collect(CollectConfig(episodes=1, overwrite=True, **base), progress=False)
    assert LeRobotDatasetReader(out).num_episodes == 1


CALLS = {"n": 0}


def failing_policy(obs: np.ndarray) -> np.ndarray:
    """Zero torque, then a crash on the 13th call."""
    CALLS["n"] += 1
    if CALLS["n"] == 13:
        raise RuntimeError("policy exploded")
    return np.zeros((len(obs), 1), np.float32)


def test_policy_exception_keeps_finished_episodes(tmp_path, capsys):
    # Calls 1-5: episode 0; call 6: the autoreset step; 7-11: episode 1; 12: reset; 13 raises.
    CALLS["n"] = 0
    out = tmp_path / "crash"
    config = CollectConfig("Pendulum-v1", out, episodes=5, max_episode_steps=5, policy=f"{__name__}:failing_policy")
    with pytest.raises(CollectionInterrupted, match="kept 2") as info:
        collect(config, progress=False)
    assert info.value.episodes_kept == 2 and isinstance(info.value.cause, RuntimeError)
    assert LeRobotDatasetReader(out).num_episodes == 2
    CALLS["n"] = 0
    argv = [
        "collect",
        "--env",
        "Pendulum-v1",
        "--episodes",
        "5",
        "--out",
        str(out),
        "--overwrite",
        "--quiet",
        "--max-episode-steps",
        "5",
        "--policy",
        f"{__name__}:failing_policy",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kept 2" in err and "policy exploded" in err


def test_cli_collect_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "collect",
        "--env",
        "InvertedPendulum-v5",
        "--episodes",
        "2",
        "--out",
        str(out),
        "--policy",
        "scripted",
        "--max-episode-steps",
        "15",
        "--num-envs",
        "2",
        "--seed",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    reader = LeRobotDatasetReader(out)
    assert reader.num_frames == 30  # the PD controller balances: both episodes hit the time limit
    assert reader.column("next.truncated")[:, 0].sum() == 2 and not reader.column("next.terminated").any()
    assert reader.tasks == ["InvertedPendulum-v5"]
    assert main(argv) == 2  # exists, no --overwrite
    assert "overwrite" in capsys.readouterr().err
    assert main(["collect", "--env", "Pendulm-v1", "--episodes", "1", "--out", str(tmp_path / "y")]) == 2
    assert "Pendulum-v1" in capsys.readouterr().err
    assert (
        main(
            ["collect", "--env", "CartPole-v1", "--episodes", "1", "--out", str(tmp_path / "z"), "--policy", "scripted"]
        )
        == 2
    )
    assert "no scripted controller" in capsys.readouterr().err


def test_discrete_actions_are_stored_as_one_int64(tmp_path):
    out = tmp_path / "cartpole"
    collect(CollectConfig("CartPole-v1", out, episodes=1, max_episode_steps=8, epsilon=0.5), progress=False)
    reader = LeRobotDatasetReader(out)
    actions = reader.column("action")
    assert reader.features["action"]["dtype"] == "int64" and actions.shape[1] == 1
    assert set(np.unique(actions)) <= {0, 1}


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="episodes"):
        CollectConfig("Pendulum-v1", tmp_path, episodes=0)
    with pytest.raises(ValueError, match="image_storage"):
        CollectConfig("Pendulum-v1", tmp_path, episodes=1, image_storage="gif")
    with pytest.raises(ValueError, match="exclude each other"):
        CollectConfig("Pendulum-v1", tmp_path, episodes=1, overwrite=True, resume=True)
    assert CollectConfig("Pendulum-v1", tmp_path, episodes=1, image_size=32).image_size == (32, 32)


# --------------------------------------------------------------------------- policies


def context(env_id: str, num_envs: int = 2, seed: int = 0) -> PolicyContext:
    env = gym.make(env_id)
    return PolicyContext(env_id, env.observation_space, env.action_space, num_envs, seed)


def test_random_policy_is_seeded():
    obs = np.zeros((4, 3), np.float32)
    a = make_policy("random", context("Pendulum-v1", seed=1))(obs)
    b = make_policy("random", context("Pendulum-v1", seed=1))(obs)
    c = make_policy("random", context("Pendulum-v1", seed=2))(obs)
    assert a.shape == (4, 1) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_ou_noise_has_the_documented_statistics():
    rng = np.random.default_rng(0)
    x, xs = np.zeros(2000), []
    for _ in range(400):
        x = ou_step(x, rng.standard_normal(x.shape), theta=0.2, sigma=0.3, mu=0.0)
        xs.append(x)
    xs = np.array(xs[100:])
    assert xs.std() == pytest.approx(0.3, rel=0.05)
    lag1 = np.mean(xs[1:] * xs[:-1]) / np.mean(xs * xs)
    assert lag1 == pytest.approx(0.8, abs=0.03)  # 1 - theta
    policy = make_policy("ou:theta=0.1,sigma=2", context("Pendulum-v1", num_envs=3))
    actions = np.concatenate([policy(np.zeros((3, 3), np.float32)) for _ in range(50)])
    assert actions.shape == (150, 1) and np.abs(actions).max() <= 2.0 and (np.abs(actions) == 2.0).any()
    with pytest.raises(ValueError, match="theta"):
        OUParams(theta=0.0)
    with pytest.raises(ValueError, match="bad policy parameter"):
        make_policy("ou:beta=1", context("Pendulum-v1"))


def test_scripted_pendulum_swings_up():
    env = gym.make("Pendulum-v1")
    policy = make_policy("scripted", context("Pendulum-v1", num_envs=1))
    obs, _ = env.reset(seed=0)
    for _ in range(200):
        obs, *_ = env.step(policy(obs[None].astype(np.float32))[0])
    assert obs[0] > 0.99 and abs(obs[2]) < 0.5  # upright and still


def test_epsilon_one_replaces_every_action():
    obs = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (64, 1))
    scripted = make_policy("scripted", context("Pendulum-v1", num_envs=64))(obs)
    mixed = make_policy("scripted", context("Pendulum-v1", num_envs=64), epsilon=1.0)(obs)
    assert np.all(scripted == 0.0) and np.unique(mixed).size > 32


def test_sb3_zip_loads_without_unpickling(tmp_path, monkeypatch):
    from stable_baselines3 import SAC

    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, buffer_size=10)
    path = tmp_path / "sac.zip"
    model.save(path)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    expected = model.predict(obs, deterministic=True)[0]

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled")

    monkeypatch.setattr(cloudpickle, "loads", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    for spec in (f"sb3:{path}", f"sb3:sac:{path}"):
        np.testing.assert_allclose(make_policy(spec, context("Pendulum-v1"))(obs), expected, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        make_policy(f"sb3:{path}", context("InvertedPendulum-v5"))


def test_policy_spec_errors():
    ctx = context("Pendulum-v1")
    with pytest.raises(ValueError, match="unknown policy 'greedy'"):
        make_policy("greedy", ctx)
    with pytest.raises(ValueError, match="cannot import module"):
        make_policy("no_such_module_xyz:act", ctx)
    with pytest.raises(ValueError, match="no attribute"):
        make_policy(f"{__name__}:missing", ctx)
    with pytest.raises(FileNotFoundError):
        make_policy("sb3:/nonexistent/model.zip", ctx)
