"""The Gymnasium contract of every registered worldrl env id, on tiny untrained ensembles (hidden 32).

Untrained models are enough here: the contract (spaces, seeding, autoreset, errors) does not depend on the
weights, and an untrained model's terminal probability sits near 0.5, so episodes end often and the
termination and autoreset paths are exercised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _models import TINY, tiny_model
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import worldrl  # noqa: F401  (registers the env ids)
from worldrl.envs import default_model
from worldrl.envs.registration import ENV_IDS
from worldrl.envs.rendering import MUJOCO_STATES, make_renderer, pendulum_frame
from worldrl.envs.start_states import dataset_episode_starts
from worldrl.envs.vector_env import WorldModelVectorEnv
from worldrl.envs.world_model_env import WorldModelEnv
from worldrl.models import CheckpointError, TaskSpec, build_model
from worldrl.tasks.rules import get_task


def rollout(env: gym.Env, actions: list[np.ndarray], seed: int) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    steps = [(obs,)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            steps.append((obs,))
    return steps


def assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- checkers, every id
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("task_id", ["Pendulum-v1", "InvertedPendulum-v5"])
def test_gymnasium_and_sb3_checkers(env_id: str, task_id: str) -> None:
    env = gym.make(env_id, model=tiny_model(task_id), render_mode="rgb_array", render_size=(48, 48))
    check_env(env.unwrapped)  # includes reset/step determinism and the rgb_array render of a new env
    sb3_check_env(env.unwrapped)
    assert env.unwrapped.task_id == task_id
    assert env.observation_space == tiny_model(task_id).task.observation_space


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_latent_mode_passes_checkers(env_id: str) -> None:
    model = tiny_model()
    env = gym.make(env_id, model=model, obs_mode="latent")
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (model.latent_dim,), np.float32)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory_when_sampling(env_id: str) -> None:
    actions = [np.array([a], np.float32) for a in np.linspace(-2, 2, 12)]
    make = lambda: gym.make(env_id, model=tiny_model(), sample=True, termination="none")  # noqa: E731
    first, second = rollout(make(), actions, seed=3), rollout(make(), actions, seed=3)
    assert_same(first, second)
    other = rollout(make(), actions, seed=4)
    assert not np.array_equal(first[-1][0], other[-1][0]), "a different seed should give another trajectory"


def test_sampling_differs_from_mean_prediction() -> None:
    start = {"observation": np.array([1.0, 0.0, 0.0], np.float32)}
    action = np.array([0.5], np.float32)
    means = []
    for sample in (False, True):
        env = gym.make("WorldModel-v0", model=tiny_model(), sample=sample)
        env.reset(seed=0, options=start)
        means.append(env.step(action)[0])
    assert not np.array_equal(*means)


def test_observations_are_clipped_into_the_space() -> None:
    env = gym.make("WorldModel-v0", model=tiny_model(), termination="none", time_limit=None)
    env.reset(seed=0, options={"observation": np.array([1.0, 0.0, 8.0], np.float32)})
    for _ in range(30):
        obs, *_ = env.step(np.array([2.0], np.float32))
        assert env.observation_space.contains(obs), obs


# --------------------------------------------------------------------------- rewards and terminations
def test_task_reward_is_the_task_function_of_returned_observations() -> None:
    env = gym.make("WorldModel-v0", model=tiny_model(), reward="task")
    obs, _ = env.reset(seed=1)
    functions = get_task("Pendulum-v1")
    for action in (np.array([1.5], np.float32), np.array([-0.3], np.float32)):
        next_obs, reward, *_ = env.step(action)
        expected = functions.reward(*(torch.as_tensor(x)[None] for x in (obs, action, next_obs)))
        assert reward == pytest.approx(float(expected), abs=1e-6)
        obs = next_obs


def test_task_termination_ends_inverted_pendulum_when_the_pole_falls() -> None:
    env = gym.make("WorldModel-v0", model=tiny_model("InvertedPendulum-v5"), reward="task", termination="task")
    env.reset(seed=0, options={"observation": np.array([0.0, 0.0, 0.0, 0.0])})
    _, reward, terminated, _, _ = env.step(np.zeros(1, np.float32))
    assert (reward, terminated) == (1.0, False)  # an untrained delta model barely moves the pole
    env.reset(seed=0, options={"observation": np.array([0.0, 0.5, 0.0, 0.0])})
    _, reward, terminated, _, _ = env.step(np.zeros(1, np.float32))
    assert (reward, terminated) == (0.0, True)


def test_model_termination_follows_the_threshold() -> None:
    never = gym.make("WorldModel-v0", model=tiny_model(), terminal_threshold=1.0, time_limit=None)
    always = gym.make("WorldModel-v0", model=tiny_model(), terminal_threshold=0.0, time_limit=None)
    for env, expected in ((never, False), (always, True)):
        env.reset(seed=0)
        assert env.step(np.zeros(1, np.float32))[2] is expected


def test_default_time_limit_comes_from_the_task_and_can_be_overridden() -> None:
    env = gym.make("WorldModel-v0", model=tiny_model(), termination="none")
    assert env.spec.max_episode_steps == 200
    short = gym.make("WorldModel-v0", model=tiny_model(), termination="none", time_limit=3)
    short.reset(seed=0)
    assert [short.step(np.zeros(1, np.float32))[3] for _ in range(3)] == [False, False, True]
    unlimited = gym.make("WorldModel-v0", model=tiny_model(), time_limit=None)
    assert unlimited.spec.max_episode_steps is None
    with pytest.raises(ValueError, match="time_limit"):
        gym.make("WorldModel-v0", model=tiny_model(), time_limit=0)


# --------------------------------------------------------------------------- vector env
def test_make_vec_is_the_native_vector_env_and_equals_single_envs() -> None:
    kwargs = {"model": tiny_model(), "termination": "none", "time_limit": None}
    vec = gym.make_vec("WorldModel-v0", num_envs=4, **kwargs)
    assert isinstance(vec.unwrapped, WorldModelVectorEnv)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert vec.single_observation_space == tiny_model().task.observation_space
    assert vec.observation_space.shape == (4, 3) and vec.action_space.shape == (4, 1)
    singles = [gym.make("WorldModel-v0", **kwargs) for _ in range(4)]
    obs, _ = vec.reset(seed=10)
    np.testing.assert_array_equal(obs, np.stack([e.reset(seed=10 + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(0)
    for _ in range(6):
        actions = rng.uniform(-2, 2, (4, 1)).astype(np.float32)
        obs, reward, terminated, truncated, _ = vec.step(actions)
        single = [e.step(a) for e, a in zip(singles, actions)]
        # batched and single matrix products may round differently in the last bit
        np.testing.assert_allclose(obs, np.stack([s[0] for s in single]), rtol=0, atol=1e-6)
        np.testing.assert_allclose(reward, [s[1] for s in single], rtol=0, atol=1e-6)
        assert not terminated.any() and not truncated.any()


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
@pytest.mark.parametrize("ending", [{"terminal_threshold": 0.5}, {"termination": "none"}])
def test_vector_autoreset_matches_gymnasium_sync_vector_env(ending: dict, mode: str) -> None:
    # One start state, so gymnasium's per-env autoresets and ours draw the same start.
    start = np.array([[0.0, 1.0, 0.5]], np.float32)
    kwargs = {"model": tiny_model(), "start_states": start, "time_limit": 3, **ending}
    ours = gym.make_vec("WorldModel-v0", num_envs=3, autoreset_mode=mode, **kwargs)
    gym_mode = getattr(gym.vector.AutoresetMode, mode.upper())
    reference = gym.make_vec(
        "WorldModel-v0", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": gym_mode}, **kwargs
    )
    assert ours.metadata["autoreset_mode"] == reference.metadata["autoreset_mode"] == gym_mode
    np.testing.assert_array_equal(ours.reset(seed=0)[0], reference.reset(seed=0)[0])
    rng = np.random.default_rng(1)
    ended = np.zeros(2, dtype=bool)
    for _ in range(12):
        actions = rng.uniform(-2, 2, (3, 1)).astype(np.float32)
        mine, theirs = ours.step(actions), reference.step(actions)
        for a, b in zip(mine[:4], theirs[:4]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        finished = np.asarray(theirs[4].get("_final_obs", np.zeros(3, bool)))
        np.testing.assert_array_equal(mine[4].get("_final_obs", np.zeros(3, bool)), finished)
        for i in np.flatnonzero(finished):  # same-step: the last observation of each finished episode
            np.testing.assert_allclose(mine[4]["final_obs"][i], theirs[4]["final_obs"][i], rtol=0, atol=1e-6)
        ended |= [mine[2].any(), mine[3].any()]
    # the path under test was exercised: terminations with the threshold, time-limit truncations without
    assert ended[0] if "terminal_threshold" in ending else (ended[1] and not ended[0])


def test_vector_autoreset_returns_start_with_zero_reward_and_ignores_action() -> None:
    start = np.array([[0.0, 1.0, 0.5]], np.float32)
    vec = gym.make_vec(
        "WorldModel-v0", num_envs=2, model=tiny_model(), start_states=start, termination="none", time_limit=2
    )
    obs, _ = vec.reset(seed=0)
    np.testing.assert_array_equal(obs, np.repeat(start, 2, 0))
    vec.step(np.ones((2, 1), np.float32))
    _, _, _, truncated, _ = vec.step(np.ones((2, 1), np.float32))
    assert truncated.all()
    obs, reward, terminated, truncated, _ = vec.step(np.full((2, 1), 123.0, np.float32))  # ignored: resetting
    np.testing.assert_array_equal(obs, np.repeat(start, 2, 0))
    assert (reward == 0).all() and not terminated.any() and not truncated.any()


def test_same_step_autoreset_returns_the_next_start_at_once() -> None:
    start = np.array([[0.0, 1.0, 0.5]], np.float32)
    kwargs = {"model": tiny_model(), "start_states": start, "termination": "none", "time_limit": 2}
    vec = gym.make_vec("WorldModel-v0", num_envs=2, autoreset_mode="same_step", **kwargs)
    vec.reset(seed=0)
    last, *_ = vec.step(np.ones((2, 1), np.float32))
    obs, reward, terminated, truncated, info = vec.step(np.ones((2, 1), np.float32))
    assert truncated.all() and not terminated.any() and (reward != 0).all()  # the ending step keeps its reward
    np.testing.assert_array_equal(obs, np.repeat(start, 2, 0))  # ... and already shows the next start
    assert info["_final_obs"].all() and not np.allclose(np.stack(info["final_obs"]), start)
    assert not info["final_info"]["model_diverged"].any()
    _, _, _, truncated, info = vec.step(np.ones((2, 1), np.float32))  # the new episode counts from 0
    assert not truncated.any() and "final_obs" not in info
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        gym.make_vec("WorldModel-v0", num_envs=2, autoreset_mode="disabled", **kwargs)


def test_vector_seed_list_render_and_errors() -> None:
    vec = gym.make_vec("WorldModel-v0", num_envs=3, model=tiny_model(), render_mode="rgb_array", render_size=(32, 32))
    first, _ = vec.reset(seed=[5, 6, 7])
    again, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(first, again)  # seed=s means env i gets s + i
    frames = vec.render()
    assert isinstance(frames, tuple) and len(frames) == 3 and frames[0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match=r"expected \(3, 1\)"):
        vec.step(np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        vec.step(np.array([[0.0], [np.nan], [0.0]], np.float32))
    unseeded = [vec.reset()[0] for _ in range(3)]
    assert not all(np.array_equal(unseeded[0], u) for u in unseeded[1:]), "unseeded resets must keep drawing"
    with pytest.raises(ValueError, match="2 seeds for 3 envs"):
        vec.reset(seed=[1, 2])


def test_vector_env_steps_large_batches_fast() -> None:
    vec = WorldModelVectorEnv(num_envs=1024, model=tiny_model(), time_limit=50)
    vec.reset(seed=0)
    actions = vec.action_space.sample()
    import time

    begin = time.perf_counter()
    for _ in range(20):
        vec.step(actions)
    rate = 20 * 1024 / (time.perf_counter() - begin)
    assert rate > 20_000, f"{rate:.0f} env steps/s: the batch is not stepped as one"


# --------------------------------------------------------------------------- learners
def test_sb3_ppo_learns_unmodified() -> None:
    from stable_baselines3 import PPO

    env = gym.make("WorldModel-v0", model=tiny_model())
    agent = PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, device="cpu")
    agent.learn(256)
    assert agent.num_timesteps >= 256
    action, _ = agent.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def env() -> gym.Env:
    return WorldModelEnv(model=tiny_model())


def test_step_before_reset(env: gym.Env) -> None:
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(1, np.float32))


def test_wrong_action_shape_names_both_shapes(env: gym.Env) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(1,\)"):
        env.step(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="numeric"):
        env.step(np.array(["a"]))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_actions_always_raise(bad: float) -> None:
    for policy in ("clip", "error"):
        env = WorldModelEnv(model=tiny_model(), action_policy=policy, start_pool_size=1)
        env.reset(seed=0)
        with pytest.raises(ValueError, match="NaN or inf"):
            env.step(np.array([bad], np.float32))


def test_out_of_bounds_actions_clip_or_error() -> None:
    clip = WorldModelEnv(model=tiny_model(), termination="none")
    reference = WorldModelEnv(model=tiny_model(), termination="none")
    start = {"observation": np.array([1.0, 0.0, 0.0], np.float32)}
    clip.reset(seed=0, options=start)
    reference.reset(seed=0, options=start)
    np.testing.assert_array_equal(
        clip.step(np.array([5.0], np.float32))[0], reference.step(np.array([2.0], np.float32))[0]
    )
    strict = WorldModelEnv(model=tiny_model(), action_policy="error")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        strict.step(np.array([5.0], np.float32))
    with pytest.raises(ValueError, match="action_policy"):
        WorldModelEnv(model=tiny_model(), action_policy="ignore")


def test_bad_options_and_start_states() -> None:
    env = WorldModelEnv(model=tiny_model())
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        env.reset(options={"observation": np.zeros(4)})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"state": 1})
    with pytest.raises(ValueError, match="NaN or inf"):
        WorldModelEnv(model=tiny_model(), start_states=np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        WorldModelEnv(model=tiny_model(), start_states=np.zeros((2, 5)))


def test_checkpoint_for_another_task_is_refused(tmp_path: Path) -> None:
    tiny_model().save_pretrained(str(tmp_path / "ckpt"))
    env = gym.make("WorldModel-v0", model=str(tmp_path / "ckpt"))  # loads from disk
    assert env.unwrapped.task_id == "Pendulum-v1"
    with pytest.raises(ValueError, match="trained for task 'Pendulum-v1', not the requested task_id 'HalfCheetah-v5'"):
        gym.make("WorldModel-v0", model=str(tmp_path / "ckpt"), task_id="HalfCheetah-v5")


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ckpt"
    tiny_model().save_pretrained(str(directory))
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        gym.make("WorldModel-v0", model=str(directory))


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="pickle"):
        gym.make("WorldModel-v0", model=str(path))
    (tmp_path / "dir").mkdir()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "dir" / "model.pt")
    with pytest.raises(CheckpointError, match="pickle"):
        gym.make("WorldModel-v0", model=str(tmp_path / "dir"))


def test_unsupported_options_are_refused() -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        WorldModelEnv(model=tiny_model(), obs_mode="pixels")
    with pytest.raises(ValueError, match="render_mode"):
        WorldModelEnv(model=tiny_model(), render_mode="human")
    with pytest.raises(ValueError, match="no start states"):
        anonymous = TaskSpec(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)), task_id=None)
        WorldModelEnv(model=build_model("ensemble", TINY, anonymous))
    with pytest.raises(ValueError, match="needs the task.s functions"):
        anonymous = TaskSpec(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)), task_id=None)
        WorldModelEnv(model=build_model("ensemble", TINY, anonymous), reward="task", start_states=np.zeros((1, 2)))


# --------------------------------------------------------------------------- start states from a dataset
def test_dataset_episode_starts(lerobot_fixture: Path) -> None:
    task = TaskSpec(gym.spaces.Box(-10, 20, (4,)), gym.spaces.Box(-5, 5, (1,)), task_id=None)
    env = WorldModelEnv(model=build_model("ensemble", TINY, task), dataset=lerobot_fixture, termination="none")
    starts = {tuple(env.reset(seed=s)[0].round(6)) for s in range(20)}
    assert starts == {(0.0, 0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 1.0), (2.0, 0.0, 0.0, 1.0)}  # [e, 0, sin 0, cos 0]
    keyed_task = TaskSpec.keyed(
        {
            "observation.state": task.observation_space,
            "observation.images.cam": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
        },
        task.action_space,
    )
    starts = dataset_episode_starts(lerobot_fixture, keyed_task)
    frames = starts["observation.images.cam"]
    assert frames.shape == (3, 32, 32, 3) and frames[:, 0, 0, 0].tolist() == [0, 10, 20]
    assert starts["observation.state"][:, 0].tolist() == [0.0, 1.0, 2.0]
    missing = TaskSpec.keyed({**keyed_task.key_spaces(), "observation.nope": task.observation_space}, task.action_space)
    with pytest.raises(KeyError, match="observation.nope"):
        dataset_episode_starts(lerobot_fixture, missing)


# --------------------------------------------------------------------------- rendering
def test_pendulum_frame_draws_the_pole_where_the_angle_says() -> None:
    up, down = pendulum_frame(np.array([1.0, 0.0, 0.0]), (64, 64)), pendulum_frame(np.array([-1.0, 0.0, 0.0]), (64, 64))
    red = lambda frame: (frame[..., 0] == 204) & (frame[..., 1] == 77)  # noqa: E731
    assert red(up)[:28].any() and not red(up)[40:].any()
    assert red(down)[40:].any() and not red(down)[:28].any()


def test_mujoco_renderer_shows_the_predicted_pose() -> None:
    assert set(MUJOCO_STATES) >= {"InvertedPendulum-v5", "HalfCheetah-v5"}
    renderer = make_renderer(tiny_model("InvertedPendulum-v5").task, (48, 48))
    upright, tilted = renderer(np.zeros(4)), renderer(np.array([0.0, 0.8, 0.0, 0.0]))
    renderer.close()
    assert upright.shape == (48, 48, 3) and upright.dtype == np.uint8
    assert np.abs(upright.astype(int) - tilted.astype(int)).sum() > 0


def test_pixel_and_fallback_renderers() -> None:
    pixel_task = TaskSpec(gym.spaces.Box(0, 255, (8, 8, 1), np.uint8), gym.spaces.Box(-1, 1, (1,)), task_id=None)
    frame = make_renderer(pixel_task, (8, 8))(np.full((8, 8, 1), 200.4))
    assert frame.shape == (8, 8, 3) and frame.dtype == np.uint8 and (frame == 200).all()
    unknown = TaskSpec(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (1,)), task_id="Unknown-v0")
    bars = make_renderer(unknown, (20, 40))
    up, down = bars(np.array([3.0, 0, 0, 0])), bars(np.array([-3.0, 0, 0, 0]))
    assert up.shape == (20, 40, 3) and not np.array_equal(up, down)
    latent_only = make_renderer(tiny_model().task, (20, 40), can_decode=False)
    assert latent_only(np.zeros(7)).shape == (20, 40, 3)


def test_env_render_follows_the_imagined_state() -> None:
    env = gym.make(
        "WorldModel-v0", model=tiny_model(), render_mode="rgb_array", render_size=(40, 40), termination="none"
    )
    env.reset(seed=0, options={"observation": np.array([1.0, 0.0, 0.0], np.float32)})
    first = env.render()
    env.reset(seed=0, options={"observation": np.array([-1.0, 0.0, 0.0], np.float32)})
    assert first.shape == (40, 40, 3) and not np.array_equal(first, env.render())


# --------------------------------------------------------------------------- the bundled default model
def test_no_argument_make_loads_the_default_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_model().save_pretrained(str(tmp_path / "default"))
    monkeypatch.setattr(default_model, "default_model_path", lambda: tmp_path / "default")
    env = gym.make("WorldModel-v0")
    obs, info = env.reset(seed=0)
    assert info["task_id"] == "Pendulum-v1" and env.observation_space.contains(obs)


def test_missing_default_checkpoint_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_model, "default_model_path", lambda: tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="bundled default world model is missing"):
        gym.make("WorldModel-v0")


def test_bundled_default_model_works_offline() -> None:
    # Passes once the lead ships worldrl/assets/default_model/ (made by the project's script).
    env = gym.make("WorldModel-v0")
    assert env.unwrapped.task_id == default_model.DEFAULT_TASK_ID
    check_env(env.unwrapped, skip_render_check=True)


def test_resets_default_to_the_training_datasets_episode_starts(tmp_path):
    """A trained checkpoint carries its training episodes' first observations; the env resets from them."""
    model = tiny_model("Pendulum-v1")
    starts = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])
    model.start_states = starts
    try:
        model.save_pretrained(tmp_path / "ckpt")
    finally:
        model.start_states = None  # the cached test model is shared
    env = gym.make("WorldModel-v0", model=str(tmp_path / "ckpt"))
    seen = {tuple(np.round(env.reset(seed=s)[0], 4)) for s in range(12)}
    assert seen == {tuple(np.round(row, 4)) for row in starts.numpy()}


def test_start_states_file_of_the_wrong_shape_is_reported(tmp_path):
    from safetensors.torch import save_file

    tiny_model("Pendulum-v1").save_pretrained(tmp_path / "ckpt")
    save_file({"observations": torch.zeros(2, 5)}, str(tmp_path / "ckpt" / "start_states.safetensors"))
    with pytest.raises(CheckpointError, match="start_states.safetensors"):
        gym.make("WorldModel-v0", model=str(tmp_path / "ckpt"))


def test_vector_env_reports_diverged_rows():
    """A non-finite prediction ends that env's episode and is flagged per row, as the single env flags it."""

    model = tiny_model("Pendulum-v1")
    # termination="none": the untrained model's terminal head would end random rows and trigger autoresets
    envs = gym.make_vec("WorldModel-v0", num_envs=3, model=model, termination="none")
    envs.reset(seed=0)
    _, _, terminated, _, info = envs.step(np.zeros((3, 1), np.float32))
    assert info["model_diverged"].tolist() == [False] * 3 and info["_model_diverged"].all()
    original = model.imagine

    def nan_in_row_one(state, action, generator=None):
        out = original(state, action, generator)
        out["obs"][1] = float("nan")
        return out

    model.imagine = nan_in_row_one
    try:
        obs, _, terminated, _, info = envs.step(np.zeros((3, 1), np.float32))
    finally:
        del model.imagine
    assert info["model_diverged"].tolist() == [False, True, False]
    assert terminated[1] and np.isfinite(obs).all()


# --------------------------------------------------------------------------- Gymnasium's own tools
# Fresh interpreters: the registration check needs one without `import worldrl`; the async check needs torch's
# thread pool running in the parent (the test workers run torch on one thread, see conftest.py).
_ASYNC_VS_NATIVE = r"""
import gymnasium as gym, numpy as np, torch, worldrl
torch.set_num_threads(2)
torch.ones(256, 256) @ torch.ones(256, 256)  # the parent's thread pool is up before gymnasium forks
kwargs = {"termination": "none", "time_limit": None}
native = gym.make_vec("WorldModel-v0", num_envs=2, **kwargs)
workers = gym.make_vec("WorldModel-v0", num_envs=2, vectorization_mode="async", **kwargs)
assert type(workers).__name__ == "AsyncVectorEnv", type(workers)
a, b = native.reset(seed=7)[0], workers.reset(seed=7)[0]
np.testing.assert_array_equal(a, b)
rng = np.random.default_rng(0)
for _ in range(5):
    actions = rng.uniform(-2, 2, (2, 1)).astype(np.float32)
    (a, ra, *_), (b, rb, *_) = native.step(actions), workers.step(actions)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ra, rb, rtol=0, atol=1e-5)
workers.close()
from worldrl.tasks.real_envs import make_real_vector_env  # recording's async workers (a forkserver), same parent
real = make_real_vector_env("Pendulum-v1", 2, "async")
assert real.reset(seed=0)[0].shape == (2, 3) and real.step(np.zeros((2, 1), np.float32))[0].shape == (2, 3)
real.close()
print("async ok", b.shape)
"""


def _python(code: str, timeout: float = 120) -> str:
    """Runs ``code`` in a new interpreter (its own process group, so a hung run's forked workers go with it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"timed out after {timeout} s (a hang)")
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def test_async_make_vec_does_not_hang_and_equals_the_native_vector_env() -> None:
    """gymnasium's AsyncVectorEnv builds one env in the parent, then forks; the children must not deadlock in
    torch's inherited thread pool (``worldrl.envs.forking``) and must step as the batched env does. The real-env
    recording's async workers start from a forkserver and work from the same parent too."""
    assert _python(_ASYNC_VS_NATIVE).split() == ["async", "ok", "(2,", "3)"]


def test_registration_through_import_worldrl_or_the_module_prefix() -> None:
    """Gymnasium 1.x loads no plugin entry points: ``import worldrl`` or ``gym.make("worldrl:WorldModel-v0")``."""
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'worldrl' not in sys.modules and 'WorldModel-v0' not in gym.registry\n"
        "env = gym.make('worldrl:WorldModel-v0')\n"  # gymnasium imports the module before the id lookup
        "vec = gym.make_vec('worldrl:WorldModel-v0', num_envs=2)\n"
        "print(env.unwrapped.task_id, type(vec).__name__, 'WorldModel-v0' in gym.registry)\n"
    )
    assert _python(code).split() == ["Pendulum-v1", "WorldModelVectorEnv", "True"]
    import tomllib  # Python 3.11+, as the suite's interpreter

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "gymnasium.envs" not in pyproject["project"].get("entry-points", {})  # gymnasium 1.x never reads it


def test_record_video_writes_an_episode(tmp_path: Path) -> None:
    """gymnasium's RecordVideo (through moviepy, a dependency) records a WorldModel-v0 episode as a real mp4."""
    import av

    env = gym.make(
        "WorldModel-v0",
        model=tiny_model(),
        render_mode="rgb_array",
        render_size=(64, 64),
        termination="none",
        time_limit=12,
    )
    env = gym.wrappers.RecordVideo(
        env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, name_prefix="wm"
    )
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps, done = steps + 1, terminated or truncated
    env.close()
    (video,) = (tmp_path / "videos").glob("wm-episode-0.mp4")
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert steps == 12 and frames[0].shape == (64, 64, 3)
    assert steps <= len(frames) <= steps + 1  # the reset frame and one per step (moviepy may drop the last)
    assert frames[0].std() > 0 and not np.array_equal(frames[0], frames[-1])  # a drawn, moving pendulum
