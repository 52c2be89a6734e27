"""Record a robot-learning suite's env (PushT, ALOHA, Gymnasium-Robotics) in its LeRobot layout.

``collect`` hands these env ids here. The loop is collect's (vector env, autoreset rules, per-env episode
buffers, the same summary); what differs is the row: one feature per observation key of the suite's layout
(``worldrl.data.suite_layouts``) instead of one flat ``observation.state``, and ``next.success`` from the env's
``info["is_success"]``. Frames come from the env's own pixel observation at the published size, so
``image_size`` and ``camera`` do not apply.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from worldrl.data.collect import (
    AUTORESET_RULES,
    CollectConfig,
    CollectSummary,
    _Recorder,
    checked_actions,
    finish_recording,
    print_summary,
    raise_interrupted,
    run_seed,
)
from worldrl.data.policies import PolicyContext, make_policy
from worldrl.data.suite_layouts import SuiteLayout, keyed_features, keyed_observations, policy_input, suite_layout
from worldrl.data.writer import LeRobotDatasetWriter
from worldrl.errors import ConfigError, WorldRLError
from worldrl.tasks.real_envs import env_fps, make_real_env, make_real_vector_env

STEP_FEATURES: dict[str, dict[str, Any]] = {
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
    "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
    "next.truncated": {"dtype": "bool", "shape": [1], "names": None},
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
}


def _vectorization(config: CollectConfig) -> str:
    """``sync`` or ``async``; ``auto`` (where collect offers it) is a worker process per env when there are several."""
    if config.vectorization in ("sync", "async"):
        return config.vectorization
    return "async" if config.num_envs > 1 else "sync"


def _success(info: dict[str, Any], key: str | None, n: int) -> np.ndarray:
    if key is None or key not in info:
        return np.zeros(n, bool)
    return np.asarray(info[key], bool).reshape(n)


def collect_suite(
    config: CollectConfig, *, progress: bool = True, autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP
) -> CollectSummary:
    """``collect`` for a suite env: the same episodes and summary, rows in the suite's layout."""
    if config.camera is not None:
        raise ConfigError(f"CollectConfig.camera does not apply to {config.env_id}: its layout fixes the cameras")
    start = time.time()
    probe = make_real_env(config.env_id, max_episode_steps=config.max_episode_steps)
    layout = suite_layout(config.env_id, probe.observation_space)
    kwargs = layout.kwargs(config.pixels)
    probe.close()
    probe = make_real_env(config.env_id, max_episode_steps=config.max_episode_steps, **kwargs)
    fps, obs_space = layout.fps or env_fps(probe), probe.observation_space
    probe.close()
    envs = make_real_vector_env(
        config.env_id,
        config.num_envs,
        _vectorization(config),
        autoreset_mode=autoreset_mode,
        max_episode_steps=config.max_episode_steps,
        **kwargs,
    )
    try:
        if not isinstance(envs.single_action_space, gym.spaces.Box):
            raise WorldRLError(f"{config.env_id}: only Box actions are recorded, got {envs.single_action_space}")
        n_act = int(np.prod(envs.single_action_space.shape))
        features = {
            **keyed_features(layout, obs_space, config.pixels, config.image_storage),
            "action": {"dtype": "float32", "shape": [n_act], "names": None},
            **STEP_FEATURES,
        }
        writer = LeRobotDatasetWriter.create(
            config.out,
            fps,
            features,
            robot_type=config.env_id,
            overwrite=config.overwrite,
            resume=config.resume,
            vcodec=config.vcodec,
        )
        return _record_into(config, envs, layout, writer, start, progress)
    finally:
        envs.close()


def _record_into(
    config: CollectConfig,
    envs: gym.vector.VectorEnv,
    layout: SuiteLayout,
    writer: LeRobotDatasetWriter,
    start: float,
    progress: bool,
) -> CollectSummary:
    seed = run_seed(config.seed, writer.num_episodes)
    ctx = PolicyContext(config.env_id, envs.single_observation_space, envs.single_action_space, config.num_envs, seed)
    bar = tqdm(total=config.episodes, unit="ep", desc=f"collect {config.env_id}", disable=not progress)
    rec = _Recorder(writer, config.task or config.env_id, config.episodes, config.num_envs, bar)
    try:
        with writer, bar:
            policy = make_policy(config.policy, ctx, epsilon=config.epsilon)
            _record(envs, policy, layout, rec, config, seed)
    except (Exception, KeyboardInterrupt) as err:
        raise_interrupted(err, rec, config)
    summary = finish_recording(writer, rec, config, start)
    if progress:
        print_summary(summary)
    return summary


def _record(
    envs: gym.vector.VectorEnv, policy: Any, layout: SuiteLayout, rec: _Recorder, config: CollectConfig, seed: int
) -> None:
    rule, n = (
        AUTORESET_RULES[AutoresetMode(envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))],
        envs.num_envs,
    )
    obs, _ = envs.reset(seed=seed)
    observations = keyed_observations(layout, obs, config.pixels)
    policy.reset(np.ones(n, bool))
    prev_done = np.zeros(n, bool)
    while not rec.done:
        actions = checked_actions(policy(policy_input(observations)), envs.single_action_space, n, config.policy)
        obs, reward, term, trunc, info = envs.step(actions)
        term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
        done, success = term | trunc, _success(info, layout.success_info, n)
        stored = actions.reshape(n, -1).astype(np.float32)
        for i in np.flatnonzero(rule.recorded(prev_done)):
            row = {key: value[i] for key, value in observations.items()}
            row.update(
                {
                    "action": stored[i],
                    "next.reward": np.array([reward[i]], np.float32),
                    "next.done": done[i : i + 1],
                    "next.terminated": term[i : i + 1],
                    "next.truncated": trunc[i : i + 1],
                    "next.success": success[i : i + 1],
                }
            )
            rec.add(i, row)
            if done[i]:
                rec.finish(i)
        started = rule.started(done, prev_done)
        if started.any():
            policy.reset(started)
        observations = keyed_observations(layout, obs, config.pixels)
        prev_done = done


__all__ = ["collect_suite"]
