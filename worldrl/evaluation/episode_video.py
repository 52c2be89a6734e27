"""One real-env episode of a policy, saved as an mp4 to watch next to its return.

``record_real_episode(agent.act, "Pendulum-v1", "runs/x/final_episode.mp4")`` resets the REAL env with ``seed``,
renders every frame (MuJoCo offscreen, classic control through pygame), acts with ``act_fn`` on the observation
until the episode ends, and writes the frames as H.264 (the codec every browser and player opens; the dataset
writer keeps lerobot's AV1). The file appears atomically: a crash leaves no half-written video.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from worldrl.data.video import EpisodeVideoEncoder, VideoSettings
from worldrl.io import atomic_path

VIDEO_SETTINGS = VideoSettings(vcodec="libx264", crf=23, gop=30)
"""Watchable quality at a few hundred kB per 1000 frames; keyframes each second at 30 fps for seeking."""


@dataclass(frozen=True)
class EpisodeRecording:
    """What ``record_real_episode`` wrote."""

    path: Path
    episode_return: float
    length: int


def record_real_episode(
    act_fn: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    path: str | os.PathLike,
    seed: int = 0,
    size: tuple[int, int] = (240, 240),
    fast_render: bool = True,
    max_steps: int | None = None,
    progress: bool = False,
    camera: str | None = None,
) -> EpisodeRecording:
    """Run one episode of ``act_fn`` (one observation -> one action) in the real ``env_id`` and save it.

    ``fast_render`` turns MuJoCo shadows and reflections off (about 10x faster under software GL); ``max_steps``
    stops early (default: the env's own time limit); ``camera`` names the view (default: a camera of the model
    that follows the body, such as HalfCheetah's ``track``, where there is one; else the env's default view).
    """
    from worldrl.tasks.real_envs import make_real_env, tracking_camera

    height, width = size
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise ValueError(f"video size must be positive and even (H.264 stores 2x2 colour blocks), got {size}")
    camera = camera if camera is not None else tracking_camera(env_id)
    env = make_real_env(
        env_id, render_mode="rgb_array", width=width, height=height, camera=camera, render_effects=not fast_render
    )
    try:
        with atomic_path(path) as tmp:
            total, steps = _record(env, act_fn, tmp, seed, max_steps, f"recording {env_id}", progress)
    finally:
        env.close()
    return EpisodeRecording(Path(path), total, steps)


def _record(
    env: gym.Env,
    act_fn: Callable[[np.ndarray], np.ndarray],
    tmp: Path,
    seed: int,
    max_steps: int | None,
    desc: str,
    progress: bool,
) -> tuple[float, int]:
    """Play and encode the episode into ``tmp``; ``(return, steps)``. The encoder is aborted on any error."""
    from worldrl.tasks.real_envs import env_fps

    obs, _ = env.reset(seed=seed)
    frame = np.asarray(env.render())
    encoder = EpisodeVideoEncoder(tmp, env_fps(env), frame.shape[0], frame.shape[1], VIDEO_SETTINGS)
    try:
        encoder.add(frame)
        total, steps, done = 0.0, 0, False
        limit = max_steps if max_steps is not None else (env.spec.max_episode_steps if env.spec else None)
        with tqdm(total=limit, desc=desc, unit="frame", disable=not progress, leave=False) as bar:
            while not done and (max_steps is None or steps < max_steps):
                obs, reward, terminated, truncated, _ = env.step(act_fn(obs))
                total, steps, done = total + float(reward), steps + 1, bool(terminated or truncated)
                encoder.add(np.asarray(env.render()))
                bar.update(1)
    except BaseException:
        encoder.abort()
        raise
    encoder.close()
    return total, steps


__all__ = ["VIDEO_SETTINGS", "EpisodeRecording", "record_real_episode"]
