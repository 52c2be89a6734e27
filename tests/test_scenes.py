"""``worldrl/Playground-v0``: procedural MuJoCo scenes, their event logs and their synthetic contact audio."""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import worldrl  # noqa: F401  (registers the env ids)
from worldrl.errors import ConfigError, EnvError
from worldrl.tasks.scenes.audio import SAMPLE_RATE
from worldrl.tasks.scenes.env import PlaygroundEnv
from worldrl.tasks.scenes.kinds import KINDS, sample_scene
from worldrl.tasks.scenes.mel import LOG_FLOOR, frame_log_mel
from worldrl.tasks.scenes.spec import SceneDescription, SceneObject


@pytest.fixture(autouse=True)
def _egl(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.chdir(tmp_path)


def run(env: gym.Env, steps: int, seed: int = 0, action=None) -> list:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(2, np.float32) if action is None else action)
        out.append(obs)
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_builds_steps_and_renders(kind: str) -> None:
    env = gym.make("worldrl/Playground-v0", scene=kind, render_mode="rgb_array", width=32, height=32)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert obs["pixels"].shape == (32, 32, 3) and obs["pixels"].std() > 0
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(info["events"], list)
    assert env.render().shape == (32, 32, 3)
    scene = env.unwrapped.scene
    assert 2 <= len(scene.objects) <= 6 and scene.kind == kind
    assert SceneDescription.from_dict(scene.to_dict()) == scene


def test_push_passes_gymnasium_and_sb3_checkers_and_rewards_distance() -> None:
    env = gym.make("worldrl/Playground-v0", scene="push", render_mode="rgb_array", width=32, height=32)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, np.float32))
    scene, data = env.unwrapped.scene, env.unwrapped.data
    target = data.xpos[env.unwrapped.model.body(scene.target).id]
    assert reward == pytest.approx(-math.hypot(target[0] - scene.goal[0], target[1] - scene.goal[1]), rel=1e-6)


def test_a_passive_scene_passes_the_checkers_too() -> None:
    env = gym.make("worldrl/Playground-v0", scene="collide", render_mode="rgb_array", width=32, height=32)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)


def test_push_terminates_when_the_target_reaches_the_goal() -> None:
    base = sample_scene("push", 0)
    target = base.object(base.target)
    goal = (target.pos[0] + 0.05, target.pos[1], 0.15)  # the target starts inside the goal zone
    env = PlaygroundEnv(SceneDescription(**{**base.__dict__, "goal": goal}), pixels=False, audio=False)
    env.reset(seed=0)
    _, reward, terminated, *_ = env.step(np.zeros(2, np.float32))
    assert terminated and reward > -0.15


def test_the_action_pushes_the_agent() -> None:
    env = PlaygroundEnv("push", scene_seed=3, pixels=False, audio=False)
    env.reset(seed=0)
    agent = env.model.body(env.scene.agent).id
    x0 = env.data.xpos[agent, 0]
    for _ in range(10):
        env.step(np.array([1.0, 0.0], np.float32))
    assert env.data.xpos[agent, 0] > x0 + 0.05


def test_same_seed_same_scene_and_trajectory() -> None:
    a = run(PlaygroundEnv("collide", pixels=False), 20, seed=5)
    b = run(PlaygroundEnv("collide", pixels=False), 20, seed=5)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    c = run(PlaygroundEnv("collide", pixels=False), 1, seed=6)
    assert not np.array_equal(a[0]["state"], c[0]["state"])


def test_state_holds_each_objects_pose_and_velocity() -> None:
    env = PlaygroundEnv("drop", scene_seed=2, pixels=False, audio=False)
    obs, _ = env.reset(seed=0)
    state = obs["state"].reshape(6, 13)
    for i, o in enumerate(env.scene.objects):
        np.testing.assert_allclose(state[i, :3], o.pos, atol=1e-6)
        np.testing.assert_allclose(state[i, 3:7], o.quat, atol=1e-6)
    assert not state[len(env.scene.objects) :].any()


def test_mjcf_and_initial_state_re_simulate_with_plain_mujoco() -> None:
    env = PlaygroundEnv("collide", scene_seed=0, pixels=False, audio=False)
    run(env, 30)
    model = mujoco.MjModel.from_xml_string(env.xml)
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = env.qpos0, env.qvel0
    mujoco.mj_step(model, data, 30 * 10)
    np.testing.assert_allclose(data.qpos, env.data.qpos, atol=1e-4)  # MJCF prints floats with fewer digits


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(scene="volcano"), "unknown scene kind 'volcano'"),
        (dict(scene="drop", n_objects=0), "n_objects must be in"),
        (dict(scene="drop", render_mode="human"), "render_mode"),
        (dict(scene="drop", width=0), "width and height must be positive"),
    ],
)
def test_bad_env_options_are_one_line_errors(bad: dict, match: str) -> None:
    with pytest.raises((ConfigError, EnvError), match=match) as info:
        PlaygroundEnv(**bad)
    assert "\n" not in str(info.value)


def test_impossible_objects_are_one_line_errors() -> None:
    ball = SceneObject("sphere", "red", "rubber", (0.05,), (0, 0, 0.05))
    cube = SceneObject("box", "blue", "wood", (0.05, 0.05, 0.05), (0.5, 0, 0.05))
    with pytest.raises(ConfigError, match="mass must be positive, got -1"):
        SceneDescription("drop", 0, (ball, SceneObject("box", "blue", "wood", (0.05,) * 3, (0.5, 0, 0.05), mass=-1.0)))
    with pytest.raises(ConfigError, match="needs 2 to 6 objects, got 0"):
        SceneDescription("drop", 0, ())
    with pytest.raises(ConfigError, match="unknown material 'cheese'"):
        SceneDescription("drop", 0, (ball, SceneObject("box", "green", "cheese", (0.05,) * 3, (0.5, 0, 0.05))))
    with pytest.raises(ConfigError, match="distinct colours"):
        SceneDescription("drop", 0, (ball, SceneObject("box", "red", "wood", (0.05,) * 3, (0.5, 0, 0.05))))
    assert SceneDescription("drop", 0, (ball, cube)).object("blue_box").resolved_mass() == pytest.approx(0.6)


# --------------------------------------------------------------------------- events


def dropped_ball(height: float = 0.5) -> SceneDescription:
    ball = SceneObject("sphere", "red", "rubber", (0.05,), (0.0, 0.0, height))
    cube = SceneObject("box", "blue", "wood", (0.05, 0.05, 0.05), (0.8, 0.0, 0.049))  # resting on the floor
    return SceneDescription("drop", 0, (ball, cube))


def test_a_dropped_ball_logs_motion_then_one_floor_contact_at_the_fall_time() -> None:
    env = PlaygroundEnv(dropped_ball(), pixels=False)
    run(env, 25)
    contacts = [e for e in env.events if e.kind == "contact"]
    fall_time = math.sqrt(2 * (0.5 - 0.05) / 9.81)
    assert contacts[0].objects == ("floor", "red_sphere") and contacts[0].time == pytest.approx(fall_time, abs=0.01)
    assert contacts[0].force > 1.0
    assert [e.objects for e in env.events if e.kind == "motion"] == [("red_sphere",)]  # the resting cube never moved
    assert not any("blue_box" in e.objects for e in contacts)  # its resting floor contact at t=0 is ignored


def test_dominoes_fall_in_order() -> None:
    env = PlaygroundEnv("dominoes", scene_seed=3, pixels=False, audio=False)
    run(env, 100)
    falls = [e.objects[0] for e in env.events if e.kind == "fall"]
    assert len(falls) >= 3
    order = env.scene.names()
    assert falls == sorted(falls, key=order.index)


def test_event_log_is_in_info() -> None:
    env = PlaygroundEnv(dropped_ball(), pixels=False, audio=False)
    env.reset(seed=0)
    seen = []
    for _ in range(25):
        *_, info = env.step(np.zeros(2))
        seen += info["events"]
    assert seen == [e.to_dict() for e in env.events] and info["event_log"] == env.events


# --------------------------------------------------------------------------- audio


def test_a_dropped_ball_sounds_within_one_frame_of_its_logged_contact() -> None:
    env = PlaygroundEnv(dropped_ball(), pixels=False)
    frames = run(env, 25)
    mel = np.stack([f["audio"] for f in frames])
    loud = np.flatnonzero(mel.max(1) > math.log10(LOG_FLOOR) + 1)
    contact = next(e for e in env.events if e.kind == "contact")
    assert abs(int(loud[0]) - math.ceil(contact.time / env.dt)) <= 1
    assert np.abs(env.waveform()).max() > 0.01 and env.waveform().shape == (25 * 320,)


def test_a_scene_without_contacts_is_silent() -> None:
    env = PlaygroundEnv("push", scene_seed=1, pixels=False)  # everything at rest, no action
    frames = run(env, 20)
    assert not [e for e in env.events if e.kind == "contact"]
    assert not env.waveform().any()
    np.testing.assert_array_equal(np.stack([f["audio"] for f in frames]), math.log10(LOG_FLOOR))


def test_mel_per_step_equals_mel_of_the_whole_waveform() -> None:
    env = PlaygroundEnv("drop", scene_seed=0, pixels=False)
    frames = run(env, 40)
    whole = frame_log_mel(env.waveform(), 320, SAMPLE_RATE)
    np.testing.assert_allclose(np.stack([f["audio"] for f in frames[1:]]), whole, rtol=1e-5, atol=1e-5)


def test_log_mel_matches_transformers_audio_utils() -> None:
    audio_utils = pytest.importorskip("transformers.audio_utils")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / SAMPLE_RATE
    wave = 0.3 * np.exp(-t / 0.1) * np.sin(2 * np.pi * 900 * t) + 0.01 * rng.standard_normal(t.size)
    ours = frame_log_mel(wave, 320, SAMPLE_RATE, n_mels=32)
    filters = audio_utils.mel_filter_bank(
        num_frequency_bins=161,
        num_mel_filters=32,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm=None,
        mel_scale="htk",
    )
    padded = np.concatenate([np.zeros(160), wave])
    power = audio_utils.spectrogram(
        padded,
        audio_utils.window_function(320, "hann"),
        frame_length=320,
        hop_length=160,
        power=2.0,
        center=False,
        mel_filters=filters,
        mel_floor=1e-30,
        log_mel=None,
        dtype=np.float64,
    )  # [mels, windows]
    reference = np.log10(np.maximum(power.T.reshape(-1, 2, 32).mean(1), LOG_FLOOR))
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_leaving_the_table_and_entering_the_goal_are_logged() -> None:
    r, v = 0.05, 1.2
    rolling = (v, 0.0, 0.0, 0.0, v / r, 0.0)  # rolling without slipping along +x
    on_table = SceneObject("sphere", "red", "rubber", (r,), (0.1, 0.0, 0.4 + r - 0.001), velocity=rolling)
    on_floor = SceneObject("sphere", "blue", "wood", (r,), (-1.0, 0.5, r - 0.001), velocity=rolling)
    scene = SceneDescription(
        "support", 0, (on_table, on_floor), table=(0.0, 0.0, 0.3, 0.3, 0.4), goal=(-0.4, 0.5, 0.15)
    )
    env = PlaygroundEnv(scene, pixels=False, audio=False)
    run(env, 50)
    kinds = {(e.kind, e.objects) for e in env.events}
    assert ("left_table", ("red_sphere",)) in kinds and ("entered_goal", ("blue_sphere",)) in kinds
    assert ("left_table", ("blue_sphere",)) not in kinds and ("entered_goal", ("red_sphere",)) not in kinds
