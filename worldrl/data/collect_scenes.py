"""Record ``worldrl/Playground-v0`` physics scenes into a LeRobot v3.0 dataset, with their audio and event logs.

``worldrl collect --env worldrl/Playground-v0 --scene collide --episodes N --pixels --audio`` lands here (from
``collect``). Row t holds o_t (``observation.state``, the ``front`` frame as ``observation.images.front``, and the
per-frame log-mel of the synthetic audio derived from contacts as ``observation.audio``), the action a_t and the
step's ``next.*`` reward and flags, as every recording does. Each episode also leaves, under ``meta/worldrl/``
(a folder lerobot's loader never opens)::

    meta/worldrl/audio.json                                how the audio was made (it is synthetic, not recorded)
    meta/worldrl/episode_000000/waveform.wav               16 kHz mono PCM, the audio the mel features come from
    meta/worldrl/episode_000000/events.json                the event log (contacts, motion, falls, table, goal)
    meta/worldrl/episode_000000/scene.xml                  the generated MJCF
    meta/worldrl/episode_000000/scene.json                 the scene description (kind, seed, objects, fixtures)
    meta/worldrl/episode_000000/initial_state.json         qpos / qvel at t=0: re-simulate with plain mujoco

One env, episodes one after another (each reset draws a new scene from the run's seed).
"""

from __future__ import annotations

import io
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from worldrl.data.policies import PolicyContext, make_policy
from worldrl.data.storage_layout import StorageLayout
from worldrl.data.writer import LeRobotDatasetWriter
from worldrl.errors import ConfigError, WorldRLError
from worldrl.io import atomic_write_bytes, atomic_write_text, write_json
from worldrl.tasks.scenes.audio import SAMPLE_RATE
from worldrl.tasks.scenes.env import ENV_ID, PlaygroundEnv
from worldrl.tasks.scenes.mel import N_MELS
from worldrl.tasks.scenes.spec import CAMERA

EXTRAS_DIR = "meta/worldrl"
AUDIO_KEY = "observation.audio"
AUDIO_DESCRIPTION = (
    "synthetic audio derived from contacts (modal impacts and sliding noise synthesised from the "
    "MuJoCo contact stream), not recorded sound: log10 mel power per video frame"
)
DEFAULT_STEPS = 150


def is_scene_env(env_id: str) -> bool:
    return env_id.split(":")[-1] == ENV_ID


def episode_dir(root: str | Path, episode: int) -> Path:
    return Path(root) / EXTRAS_DIR / f"episode_{episode:06d}"


def wav_bytes(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono PCM WAV of a float waveform in [-1, 1]."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes((np.clip(waveform, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 waveform, sample rate) of a file written by ``wav_bytes``."""
    with wave.open(str(path), "rb") as f:
        data = np.frombuffer(f.readframes(f.getnframes()), "<i2")
        return data.astype(np.float32) / 32767, f.getframerate()


def save_extras(root: str | Path, episode: int, env: PlaygroundEnv, audio: bool) -> None:
    """The episode's waveform, event log, MJCF, scene description and initial state under ``meta/worldrl/``."""
    out = episode_dir(root, episode)
    if audio:
        atomic_write_bytes(out / "waveform.wav", wav_bytes(env.waveform()))
    write_json(out / "events.json", {"events": [e.to_dict() for e in env.events]}, sort_keys=False)
    atomic_write_text(out / "scene.xml", env.xml)
    write_json(out / "scene.json", env.scene.to_dict(), sort_keys=False)
    write_json(
        out / "initial_state.json",
        {
            "qpos": env.qpos0.tolist(),
            "qvel": env.qvel0.tolist(),
            "timestep": float(env.model.opt.timestep),
            "frame_skip": 10,
        },
    )


def scene_features(env: PlaygroundEnv, config: Any) -> dict[str, dict[str, Any]]:
    """``worldrl collect``'s features for the scene's state and planar force, plus the synthetic audio."""
    from worldrl.data.collect import build_features

    state_dim = env.observation_space["state"].shape[0]
    layout = StorageLayout(state_dim, None, None, (2,), 2, "float32", ["force_x", "force_y"])
    features = build_features(layout, config)
    if config.audio:
        features[AUDIO_KEY] = {"dtype": "float32", "shape": [N_MELS], "names": None, "description": AUDIO_DESCRIPTION}
    return features


def collect_scenes(config: Any, *, progress: bool = True) -> Any:
    """Record ``config.episodes`` scene episodes (``config.scene`` kind) into ``config.out``; a ``CollectSummary``."""
    from worldrl.data.collect import CollectionInterrupted, CollectSummary, print_summary, run_seed

    if config.num_envs != 1 or config.camera not in (None, CAMERA):
        raise ConfigError(
            f"{ENV_ID} records with one env and its {CAMERA!r} camera; got num_envs="
            f"{config.num_envs}, camera={config.camera!r}"
        )
    start = time.time()
    h, w = config.image_size
    env = PlaygroundEnv(config.scene or "drop", pixels=config.pixels, audio=config.audio, width=w, height=h)
    steps = config.max_episode_steps or DEFAULT_STEPS
    writer = LeRobotDatasetWriter.create(
        config.out,
        env.metadata["render_fps"],
        scene_features(env, config),
        robot_type=ENV_ID,
        overwrite=config.overwrite,
        resume=config.resume,
        vcodec=config.vcodec,
    )
    seed = run_seed(config.seed, writer.num_episodes)
    ctx = PolicyContext(ENV_ID, env.observation_space["state"], env.action_space, 1, seed)
    task = config.task or f"{ENV_ID} {config.scene}"
    returns, lengths, terminated = [], [], 0
    bar = tqdm(total=config.episodes, unit="ep", desc=f"collect {config.scene}", disable=not progress)
    try:
        with writer, bar:
            policy = make_policy(config.policy, ctx, epsilon=config.epsilon)
            for episode in range(config.episodes):
                obs, _ = env.reset(seed=seed + episode)
                policy.reset(np.ones(1, bool))
                rewards = []
                for t in range(steps):
                    action = np.clip(np.asarray(policy(obs["state"][None]), np.float32).reshape(2), -1, 1)
                    next_obs, reward, term, _, _ = env.step(action)
                    trunc = (t == steps - 1) and not term
                    row = {
                        "observation.state": obs["state"],
                        "action": action,
                        "next.reward": np.array([reward], np.float32),
                        "next.done": np.array([term or trunc]),
                        "next.terminated": np.array([term]),
                        "next.truncated": np.array([trunc]),
                    }
                    if config.pixels:
                        row[config.camera_key] = obs["pixels"]
                    if config.audio:
                        row[AUDIO_KEY] = obs["audio"]
                    writer.add_frame(row, task=task)
                    rewards.append(float(reward))
                    obs = next_obs
                    if term:
                        break
                index = writer.save_episode()
                save_extras(config.out, index, env, config.audio)
                returns.append(sum(rewards))
                lengths.append(len(rewards))
                terminated += int(term)
                bar.update(1)
            if config.audio:
                write_json(
                    Path(config.out) / EXTRAS_DIR / "audio.json",
                    {
                        "feature": AUDIO_KEY,
                        "description": AUDIO_DESCRIPTION,
                        "sample_rate": SAMPLE_RATE,
                        "n_mels": N_MELS,
                        "samples_per_frame": env.samples_per_frame,
                        "log": "log10, floor 1e-10",
                    },
                )
    except (Exception, KeyboardInterrupt) as err:
        if isinstance(err, WorldRLError) and not returns:
            raise
        raise CollectionInterrupted(Path(config.out), len(returns), err) from err
    finally:
        env.close()
    result = writer.finalize()
    summary = CollectSummary.build(
        Path(config.out), returns, lengths, terminated, result.bytes_written, time.time() - start, result.num_episodes
    )
    if progress:
        print_summary(summary)
    return summary


__all__ = [
    "AUDIO_DESCRIPTION",
    "AUDIO_KEY",
    "EXTRAS_DIR",
    "collect_scenes",
    "episode_dir",
    "is_scene_env",
    "read_wav",
    "save_extras",
    "wav_bytes",
]
