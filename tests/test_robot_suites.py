"""Robot-learning suites (PushT, ALOHA, Gymnasium-Robotics): install hints, LeRobot layouts, suite mismatch.

The first tests run in the base install. Those that record or train from a suite need ``worldrl[robot]``
(``pytest.importorskip``): they run in an environment where the extra is installed and skip elsewhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldrl.data.suite_layouts import (
    LAYOUTS,
    check_dataset_task,
    dict_sources,
    keyed_features,
    keyed_observations,
    suite_layout,
)
from worldrl.errors import ConfigError, DatasetError, MissingDependencyError
from worldrl.tasks.real_envs import UnknownEnvError, make_real_env
from worldrl.tasks.suites import suite_of

SUITE_IDS = {
    "gym_pusht/PushT-v0": "gym-pusht",
    "gym_aloha/AlohaInsertion-v0": "gym-aloha",
    "FetchPush-v4": "gymnasium-robotics",
    "FrankaKitchen-v1": "gymnasium-robotics",
}


@pytest.mark.parametrize("env_id", sorted(SUITE_IDS))
def test_missing_suite_names_the_extra(env_id, monkeypatch):
    real_find_spec = importlib.util.find_spec
    module = suite_of(env_id).module
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real_find_spec(name, *a)
    )
    # a suite imported earlier in the session (another test file's importorskip) left its ids registered
    monkeypatch.delitem(gym.registry, env_id, raising=False)
    with pytest.raises(MissingDependencyError, match=r"needs .*pip install worldrl\[robot\]") as err:
        make_real_env(env_id)
    assert SUITE_IDS[env_id] in str(err.value) and "\n" not in str(err.value)


def test_suite_ids_are_recognised_and_others_are_not():
    assert {env_id: suite_of(env_id).name for env_id in SUITE_IDS} == SUITE_IDS
    assert suite_of("Pendulum-v1") is None and suite_of("InvertedPendulum-v5") is None
    with pytest.raises(UnknownEnvError, match="Pendulum-v1"):  # typos of core ids still get suggestions
        make_real_env("Pendulm-v1")


def test_cli_collect_without_the_suite_prints_one_line(tmp_path, capsys):
    if importlib.util.find_spec("gym_pusht") is not None:
        pytest.skip("gym-pusht is installed here")
    from worldrl.cli import main

    code = main(["collect", "--env", "gym_pusht/PushT-v0", "--episodes", "1", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "pip install worldrl[robot]" in err


def test_goal_conditioned_dict_becomes_keyed_features():
    box = lambda n: spaces.Box(-np.inf, np.inf, (n,), np.float64)  # noqa: E731
    space = spaces.Dict({"achieved_goal": box(3), "desired_goal": box(3), "observation": box(25)})
    sources = dict_sources(space)
    assert sources == {
        "observation.achieved_goal": ("achieved_goal",),
        "observation.desired_goal": ("desired_goal",),
        "observation.state": ("observation",),
    }
    layout = suite_layout("FetchPush-v4", space)
    features = keyed_features(layout, space, pixels=False, image_storage="video")
    assert {k: v["shape"] for k, v in features.items()} == {
        "observation.achieved_goal": [3],
        "observation.desired_goal": [3],
        "observation.state": [25],
    }
    batch = {k: np.arange(2 * s.shape[0], dtype=np.float64).reshape(2, -1) for k, s in space.spaces.items()}
    rows = keyed_observations(layout, batch, pixels=False)
    assert rows["observation.state"].dtype == np.float32 and rows["observation.state"].shape == (2, 25)


def test_pusht_layout_is_lerobots():
    pixel_keys = LAYOUTS["gym-pusht"].keys(pixels=True)
    assert set(pixel_keys) == {"observation.image", "observation.state"}
    assert LAYOUTS["gym-pusht"].pixel_env_kwargs["observation_width"] == 96
    assert set(LAYOUTS["gym-aloha"].keys(pixels=True)) == {"observation.images.top", "observation.state"}


def test_dataset_of_one_suite_is_refused_for_another_task():
    with pytest.raises(DatasetError, match=r"'gym_pusht/PushT-v0'.*'FetchPush-v4'"):
        check_dataset_task("gym_pusht/PushT-v0", "FetchPush-v4")
    with pytest.raises(DatasetError, match=r"'Pendulum-v1'.*'gym_aloha/AlohaInsertion-v0'"):
        check_dataset_task("Pendulum-v1", "gym_aloha/AlohaInsertion-v0")
    check_dataset_task("gym_pusht/PushT-v0", "gym_pusht/PushT-v0")
    check_dataset_task("gym_pusht/PushT-v0", None)


# --------------------------------------------------------------------------- with worldrl[robot] installed


def _info(root):
    return json.loads((root / "meta" / "info.json").read_text())


def test_pusht_pixels_recorded_in_lerobots_layout(tmp_path):
    pytest.importorskip("gym_pusht")
    from worldrl.data import LeRobotDatasetReader
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path / "pusht"
    collect(
        CollectConfig("gym_pusht/PushT-v0", root, episodes=2, pixels=True, max_episode_steps=6, image_storage="image"),
        progress=False,
    )
    info = _info(root)
    features = info["features"]
    assert info["fps"] == 10 and info["robot_type"] == "gym_pusht/PushT-v0"
    assert features["observation.image"]["shape"] == [96, 96, 3]
    assert features["observation.state"]["shape"] == [2] and features["action"]["shape"] == [2]
    assert {"next.reward", "next.success", "next.done"} <= set(features)
    reader = LeRobotDatasetReader(root)
    assert reader.num_frames == 12
    with pytest.raises(ConfigError, match="camera"):
        collect(CollectConfig("gym_pusht/PushT-v0", tmp_path / "x", episodes=1, camera="top"), progress=False)


def test_fetch_goal_conditioned_recorded_as_keyed_features(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path / "fetch"
    collect(CollectConfig("FetchReach-v4", root, episodes=1, max_episode_steps=5), progress=False)
    features = _info(root)["features"]
    assert features["observation.state"]["shape"] == [10]
    assert features["observation.achieved_goal"]["shape"] == [3]
    assert features["observation.desired_goal"]["shape"] == [3]


def _train_tiny(root, out, **data):
    from worldrl.training.run import train_from_config

    cfg = {
        "output_dir": str(out),
        "seed": 0,
        "data": {"root": str(root), "window": 2, "val_fraction": 0.0, **data},
        "model": {"family": "ensemble", "num_members": 2, "num_elites": 2, "hidden_dims": [32, 32]},
        "trainer": {"max_steps": 5, "batch_size": 16, "eval_every": 100, "log_every": 100, "checkpoint_every": 100},
    }
    return train_from_config(cfg)


@pytest.fixture(scope="module")
def pusht_state_dataset(tmp_path_factory):
    pytest.importorskip("gym_pusht")
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path_factory.mktemp("pusht_state") / "data"
    collect(CollectConfig("gym_pusht/PushT-v0", root, episodes=3, max_episode_steps=8, policy="ou"), progress=False)
    return root


def test_world_model_env_serves_a_pusht_model_with_keyed_observations(pusht_state_dataset, tmp_path):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    import worldrl  # noqa: F401  (registers WorldModel-v0)

    features = _info(pusht_state_dataset)["features"]
    assert features["observation.environment_state"]["shape"] == [16]  # lerobot/pusht_keypoints
    result = _train_tiny(pusht_state_dataset, tmp_path / "run")
    env = gym.make("WorldModel-v0", model=str(result.model_path))
    base = env.unwrapped
    assert base.task_id == "gym_pusht/PushT-v0"
    assert {k: s.shape for k, s in env.observation_space.spaces.items()} == {
        "observation.environment_state": (16,),
        "observation.state": (2,),
    }
    for space in env.observation_space.spaces.values():  # gym-pusht's own bounds, recorded in the features
        assert np.all(space.low == 0.0) and np.all(space.high == 512.0)
    check_env(base, skip_render_check=True)
    sb3_check_env(base, warn=False)
    action = np.array([300.0, 200.0], np.float32)
    runs = [[env.reset(seed=3)[0], env.step(action)[0]] for _ in range(2)]  # deterministic for a seed
    for a, b in zip(*runs):
        assert all(np.array_equal(a[k], b[k]) for k in a) and set(a) == set(env.observation_space.spaces)
    env.action_space.seed(0)
    for _ in range(10):  # an untrained model's predictions are clipped into the env's bounds
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)


def test_world_model_env_serves_a_goal_conditioned_fetch_model(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import worldrl  # noqa: F401
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path / "fetch"
    collect(CollectConfig("FetchReach-v4", root, episodes=3, max_episode_steps=6, policy="ou"), progress=False)
    env = gym.make("WorldModel-v0", model=str(_train_tiny(root, tmp_path / "run").model_path))
    assert env.unwrapped.task_id == "FetchReach-v4"
    assert {k: s.shape for k, s in env.observation_space.spaces.items()} == {
        "observation.achieved_goal": (3,),
        "observation.desired_goal": (3,),
        "observation.state": (10,),
    }
    check_env(env.unwrapped, skip_render_check=True)


def test_pusht_dataset_refused_for_another_task(pusht_state_dataset, tmp_path):
    with pytest.raises(DatasetError, match=r"'gym_pusht/PushT-v0'.*'FetchPush-v4'"):
        _train_tiny(pusht_state_dataset, tmp_path / "run", task_id="FetchPush-v4")


def test_aloha_recorded_in_lerobots_layout(tmp_path):
    pytest.importorskip("gym_aloha")
    from worldrl.data.collect import CollectConfig, collect

    root = tmp_path / "aloha"
    config = CollectConfig("gym_aloha/AlohaInsertion-v0", root, episodes=1, max_episode_steps=2, image_storage="image")
    collect(config, progress=False)
    info = _info(root)
    assert info["fps"] == 50
    assert info["features"]["observation.images.top"]["shape"] == [480, 640, 3]
    assert info["features"]["observation.state"]["shape"] == [14] and info["features"]["action"]["shape"] == [14]


# --------------------------------------------------------------------------- PushT: scripted pusher, keyed MPC, bounds
def test_block_pose_is_recovered_from_its_keypoints():
    from worldrl.tasks.pusht_scripted import GOAL_POSE, KEYPOINTS_LOCAL, pose_from_keypoints, rotation

    for pose in (GOAL_POSE, np.array([120.0, 380.0, -2.5]), np.array([300.0, 90.0, 3.0])):
        keypoints = KEYPOINTS_LOCAL @ rotation(pose[2]).T + pose[:2]
        found = pose_from_keypoints(keypoints.reshape(-1))
        assert np.allclose(found[:2], pose[:2], atol=1e-6)
        assert np.isclose(np.cos(found[2] - pose[2]), 1.0)


def test_scripted_pusher_pushes_into_the_block_toward_the_goal():
    from worldrl.tasks.pusht_scripted import GOAL_POSE, KEYPOINTS_LOCAL, PushTScriptedPolicy, rotation

    policy = PushTScriptedPolicy()
    at_goal = (KEYPOINTS_LOCAL @ rotation(GOAL_POSE[2]).T + GOAL_POSE[:2]).reshape(-1)
    still = policy(np.concatenate([[60.0, 60.0], at_goal])[None])[0]
    assert np.allclose(still, [60.0, 60.0])  # block at its goal: nothing to push, the pusher holds still
    shifted = at_goal - np.tile([40.0, 0.0], 8)  # the block 40 px left of its goal: push it right
    policy.reset()
    agent = np.array([256.0 - 40.0 - 130.0, 256.0])
    for _ in range(40):  # walk the pusher to its targets (no physics: the block stays where it is)
        agent = policy(np.concatenate([agent, shifted])[None])[0].astype(np.float64)
    push = policy(np.concatenate([agent, shifted])[None])[0] - agent
    assert push[0] > 5.0 and abs(push[1]) < abs(push[0])


def test_scripted_pusher_solves_pusht():
    pytest.importorskip("gym_pusht")
    from worldrl.tasks.pusht_scripted import PushTScriptedPolicy

    env = make_real_env("gym_pusht/PushT-v0", obs_type="environment_state_agent_pos")
    policy, solved = PushTScriptedPolicy(), []
    for seed in (100_000, 100_001):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        for _ in range(300):
            action = policy(np.concatenate([obs["agent_pos"], obs["environment_state"]])[None])[0]
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        solved.append(bool(info["is_success"]))
    assert all(solved)


def test_space_bounds_are_recorded_only_when_finite():
    from worldrl.data.suite_layouts import space_bounds

    assert space_bounds(spaces.Box(0.0, 512.0, (2,))) == {"low": [0.0, 0.0], "high": [512.0, 512.0]}
    assert space_bounds(spaces.Box(-np.inf, np.inf, (2,))) == {}


def _keyed_ensemble():
    import gymnasium as gym

    from worldrl.models import TaskSpec
    from worldrl.models.base import build_model

    obs_spaces = {
        "observation.environment_state": gym.spaces.Box(0.0, 512.0, (16,), np.float32),
        "observation.state": gym.spaces.Box(0.0, 512.0, (2,), np.float32),
    }
    task = TaskSpec.keyed(obs_spaces, gym.spaces.Box(0.0, 512.0, (2,), np.float32), task_id="keyed-test")
    config = {"num_members": 2, "num_elites": 2, "hidden_dims": [16]}
    return build_model("ensemble", config, task)


def test_mpc_agent_acts_on_keyed_observations():
    from worldrl.agents.mpc import MPCAgent

    agent = MPCAgent(_keyed_ensemble(), "cem", horizon=2, num_samples=8, num_elites=2, iterations=1)
    one = {"observation.state": np.full(2, 100.0), "observation.environment_state": np.full(16, 200.0)}
    action = agent.act(one)
    assert action.shape == (2,) and np.all((action >= 0) & (action <= 512))
    agent.reset()
    batch = {k: np.stack([v, v + 1.0, v + 2.0]) for k, v in one.items()}
    assert agent.act(batch).shape == (3, 2)
    with pytest.raises(ValueError, match="lacks"):
        agent.act({"observation.state": np.zeros(2)})


def _benchmark_robot():
    from _scripts import load_script

    return load_script("benchmark_robot")


def test_read_state_actor_plans_on_the_keypoints_read_off_the_frames():
    """The ``read-`` pixel rows: the state planner sees the pusher's observed position and the reader's keypoints,
    never the frame (nor true keypoints, which a pixel observation lacks)."""
    from worldrl.agents.mpc import MPCAgent
    from worldrl.models.frame_regressor import FrameRegressor, FrameRegressorConfig

    reader = FrameRegressor(FrameRegressorConfig(channels_per_layer=4, feature_points=4, hidden=8)).eval()
    agent = MPCAgent(_keyed_ensemble(), "cem", horizon=2, num_samples=8, num_elites=2, iterations=1)
    seen = []

    def planner(obs):
        seen.append(obs)
        return agent.act(obs)

    frames = np.random.default_rng(0).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    pixel_obs = {"observation.image": frames, "observation.state": np.full((3, 2), 100.0, np.float32)}
    bench = _benchmark_robot()
    actor = bench.ReadStateActor(reader, planner, record=True)
    actions = actor(pixel_obs)
    assert actions.shape == (3, 2) and set(seen[0]) == {"observation.state", "observation.environment_state"}
    with torch.no_grad():
        read = reader(torch.as_tensor(frames)).numpy()
    assert seen[0]["observation.environment_state"].shape == (3, 16)
    np.testing.assert_allclose(seen[0]["observation.environment_state"], read, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(seen[0]["observation.state"], pixel_obs["observation.state"])


def test_read_block_episode_video_marks_the_read_keypoints(tmp_path):
    """The ``pusht-read`` video: the episode of median final coverage, frames enlarged 3x, each keypoint the reader
    put at arena (256, 128) drawn red at column 144, row 72 (gym-pusht's own frame mapping); the rest untouched."""
    import av

    bench = _benchmark_robot()
    keypoints = torch.tensor([256.0, 128.0]).repeat(8)
    actor = bench.ReadStateActor(
        lambda frames: keypoints.expand(len(frames), -1), lambda obs: obs["observation.state"], True
    )
    frames = np.random.default_rng(0).integers(0, 200, (3, 96, 96, 3), dtype=np.uint8)
    for _ in range(4):
        actor({"observation.image": frames, "observation.state": np.zeros((3, 2), np.float32)})
    marked = actor.marked_episode(2)
    assert marked.shape == (4, 288, 288, 3)
    assert tuple(marked[0, 72, 144]) == (255, 0, 0) and tuple(marked[0, 0, 0]) == tuple(frames[2, 0, 0])
    result = {"final_coverage_per_episode": [0.1, 0.5, 0.3]}  # the median is episode 2
    name = bench.write_median_episode(actor, result, tmp_path / "read.mp4")
    assert name == "read.mp4" and not list(tmp_path.glob("*.partial*"))
    with av.open(str(tmp_path / name)) as video:
        decoded = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(decoded) == 4 and decoded[0][72, 144, 0] > 200 and decoded[0][72, 144, 1] < 60


def test_pusht_frames_drawn_from_recorded_states_are_the_envs_own():
    pytest.importorskip("gym_pusht")
    from worldrl.tasks.pusht_scripted import PushTScriptedPolicy

    bench = _benchmark_robot()
    state_env, pixel_env, canvas = (make_real_env(bench.PUSHT, **LAYOUTS["gym-pusht"].kwargs(p)) for p in (0, 1, 1))
    canvas.reset(seed=1)  # another state: everything it shows must come from the drawn one
    obs, pixels = state_env.reset(seed=5)[0], pixel_env.reset(seed=5)[0]["pixels"]
    policy, errors = PushTScriptedPolicy(), []
    for _ in range(40):  # the scripted pusher reaches the block and pushes it (contacts drawn as red dots)
        keyed = bench.keyed_obs(obs)
        drawn = bench.draw_pusht(canvas.unwrapped, keyed["observation.state"], keyed["observation.environment_state"])
        errors.append(np.abs(drawn.astype(int) - pixels.astype(int)).mean())
        action = policy(np.concatenate([keyed["observation.state"], keyed["observation.environment_state"]])[None])[0]
        obs, pixels = state_env.step(action)[0], pixel_env.step(action)[0]["pixels"]
    errors = np.array(errors[1:])  # gym-pusht draws its reset frame before its shapes follow the new state
    assert (errors == 0).mean() > 0.3, errors  # frames without contact: identical
    assert errors.max() < 1.0, errors  # in contact: the edges' anti-aliasing differs (mean error < 1 of 255)


def test_a_pixel_copy_of_a_pusht_state_recording_keeps_its_steps(pusht_state_dataset, tmp_path):
    from worldrl.data import LeRobotDatasetReader

    bench = _benchmark_robot()
    out = tmp_path / "pixels"
    bench.render_pixel_copy(pusht_state_dataset, out, [0, 2])
    states, pixels = LeRobotDatasetReader(pusht_state_dataset), LeRobotDatasetReader(out)
    assert pixels.features["observation.image"]["shape"] == [96, 96, 3] and pixels.fps == states.fps == 10
    # lerobot/pusht's keys, as collect --pixels, plus the block keypoints as a column that no pixel model observes
    # (a vrnn may be trained to predict them, supervision_keys)
    assert set(pixels.features) >= {"observation.image", "observation.state", "action", "next.reward"}
    rows = np.r_[np.arange(*states.episode_range(0)), np.arange(*states.episode_range(2))]
    assert pixels.num_frames == len(rows) and pixels.num_episodes == 2
    for key in ("action", "next.reward", "observation.state", "observation.environment_state"):
        assert np.array_equal(pixels.column(key), states.column(key)[rows])
    frames = pixels.frames("observation.image", np.arange(pixels.num_frames))
    assert frames.shape == (len(rows), 96, 96, 3) and frames.std() > 10  # the arena, goal, block and pusher
    assert not (tmp_path / "pixels.partial").exists()


def test_pixel_model_options_are_named_in_the_table_heading():
    bench = _benchmark_robot()
    assert bench.overrides({}) == "" and bench.overrides({"pixel_model_option": []}) == ""
    named = bench.overrides({"pixel_model_option": ["open_loop_horizon=15", "lambda_prior_recon=1.0"]})
    assert named == " (with `open_loop_horizon=15`, `lambda_prior_recon=1.0`)"


def test_holding_still_keeps_the_opening_overlap():
    """The hold-still baseline: the pusher's target is where it is, so the block keeps the coverage it has after
    the first step for the whole episode (what a learned policy has to beat)."""
    pytest.importorskip("gym_pusht")
    bench = _benchmark_robot()
    seeds = [100_000, 100_004]  # the table's first episode and one that starts with the block over the goal
    layout = LAYOUTS["gym-pusht"].kwargs(False)
    opening = [make_real_env(bench.PUSHT, max_episode_steps=30, **layout) for _ in seeds]
    start = [bench.keyed_obs(env.reset(seed=s)[0]) for env, s in zip(opening, seeds)]
    still = [env.step(bench.hold_actor(o))[-1]["coverage"] for env, o in zip(opening, start)]
    hold = bench.run_pusht_episodes("hold", seeds, 30, bench.hold_actor)
    np.testing.assert_allclose(hold["final_coverage_per_episode"], still, atol=0.02)
    assert max(still) > 0.2
    with pytest.raises(KeyError):
        bench.hold_actor({"observation.image": np.zeros((1, 96, 96, 3))})


def test_pixel_mpc_rows_are_paired_with_the_baselines_per_episode():
    bench = _benchmark_robot()
    a = {"final_coverage_per_episode": [0.5, 0.3, 0.1]}
    b = {"final_coverage_per_episode": [0.4, 0.1, 0.1]}
    assert bench.paired_coverage(a, b) == f"+0.100 +- {1.96 * np.std([0.1, 0.2, 0.0], ddof=1) / np.sqrt(3):.3f}"
    settings = {"horizon": 8, "samples": 16, "iterations": 2, "max_std": 0.3}
    row = {"episodes": 3, "success_rate": 0.0, "final_coverage": 0.3, "best_coverage": 0.4, "settings": settings, **a}
    summary = {"args": {"pixel_episodes": 4, "pixel_model_steps": 10, "context": 8}, "results": {"mpc": row}}
    assert "mpc - hold +0.100" in bench.pixel_mpc_table(summary, {"hold": b})
    assert "paired" not in bench.pixel_mpc_table(summary)


def test_report_files_the_read_block_rows_in_their_own_table(tmp_path):
    """``pusht-read`` results (``pusht_read.json``) get their own table: the reader's fit, the rows and their
    pairs with the state run's hold-still baseline; the vrnn's pixel table is not made up from them."""
    bench = _benchmark_robot()
    settings = {"horizon": 8, "samples": 16, "iterations": 2, "max_std": 0.3}
    row = {"episodes": 3, "success_rate": 0.0, "final_coverage": 0.5, "best_coverage": 0.6, "settings": settings}
    read = {
        "args": {"reader_steps": 10, "pixel_episodes": 4, "pixel_source": "scripted"},
        "block_reader_fit": {"train": 90, "held_out": 10, "rmse_held_out": 5.25, "rmse_predict_train_mean": 50.0},
        "results": {"mpc-goal": {**row, "final_coverage_per_episode": [0.5, 0.6, 0.4]}},
        "commands": ["python scripts/benchmark_robot.py pusht-read"],
    }
    (tmp_path / bench.READ_RESULTS).write_text(json.dumps(read))
    doc = tmp_path / "benchmarks.md"
    bench.report(argparse.Namespace(out=str(tmp_path), doc=str(doc), notes=None))
    text = doc.read_text()
    assert "MPC from pixels through a block reader" in text and "held-out RMSE 5.25" in text
    assert (
        "read block**: model reward + goal-distance value | known goal; reader fit to recorded keypoints | 3 | 0.00 | 0.500"
        in text
    )
    assert "PushT MPC from pixels**" not in text and "paired" not in text  # no state run: no baselines to pair
    hold = {**row, "final_coverage": 0.1, "final_coverage_per_episode": [0.1, 0.2, 0.0]}
    assert "mpc-goal - hold +0.400" in bench.read_mpc_table(read, {"hold": hold})


def test_report_of_a_pixel_run_without_mpc_variants(tmp_path, capsys):
    """``pusht-pixels --pixel-policies`` (data, model and fidelity only) leaves no MPC rows: the report skips the
    table instead of failing on the missing run settings."""
    import argparse

    bench = _benchmark_robot()
    (tmp_path / "pusht_pixels.json").write_text(json.dumps({"results": {}, "seconds": {}, "fidelity": "x"}))
    doc = tmp_path / "benchmarks.md"
    bench.report(argparse.Namespace(out=str(tmp_path), doc=str(doc), notes=None))
    assert "## Robot-learning suites" in doc.read_text() and "MPC from pixels" not in doc.read_text()


def test_compare_pairs_the_runs_episode_by_episode(tmp_path, capsys):
    bench = _benchmark_robot()
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"results": {"mpc": {"final_coverage_per_episode": [0.5, 0.2, 0.0, 0.3]}}}))
    base = tmp_path / "base.json"
    hold = {"final_coverage_per_episode": [0.1, 0.2, 0.1, 0.3]}
    base.write_text(json.dumps({"results": {"random": {"final_coverage_per_episode": [0.0] * 4}, "hold": hold}}))
    bench.compare(bench_args(runs=[str(run), f"{base}:hold"]))
    printed = capsys.readouterr().out
    assert "run.json:mpc: final coverage 0.250 over 4 episodes" in printed
    # differences +0.4, 0, -0.1, 0: mean +0.075; two level, one better, one worse
    assert "| base.json:hold | 0.175 | +0.075 +- " in printed and printed.rstrip().endswith("| 2 | 1 | 1 |")
    with pytest.raises(SystemExit, match="no result 'mpc'"):
        bench.compare(bench_args(runs=[str(run), f"{base}:mpc"]))
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"results": {"mpc": {"final_coverage_per_episode": [0.5]}}}))
    with pytest.raises(SystemExit, match="pairs need the same"):
        bench.compare(bench_args(runs=[str(run), str(short)]))


def bench_args(**values):
    import argparse

    return argparse.Namespace(**values)


def test_pixel_episodes_mix_both_halves_or_take_the_scripted_one():
    bench = _benchmark_robot()
    assert bench.pixel_episodes(200, 4) == [0, 1, 100, 101]  # OU half, scripted half
    assert bench.pixel_episodes(200, 4, "scripted") == [100, 101, 102, 103]
    with pytest.raises(SystemExit, match="between 2 and 100"):
        bench.pixel_episodes(200, 101, "scripted")
