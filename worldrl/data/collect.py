"""Record Gymnasium / MuJoCo / dm_control rollouts into a LeRobot v3.0 dataset.

Row t of an episode holds o_t (``observation.state`` and, with pixels, the camera frame rendered
at o_t), the action a_t taken there, ``next.reward`` = r_{t+1} and the ``next.terminated`` /
``next.truncated`` / ``next.done`` flags of that step; the final observation o_T is not stored
(LeRobot's convention).

N envs run in a gymnasium vector env (``AsyncVectorEnv``: one worker process per env, when N > 1) and the
dataset does not depend on N: episode k of a run is reset with its own seed (``episode_seed``) and acted in by
its own policy instance seeded the same way, each env takes the next episode index when it finishes one, and
finished episodes are written in index order (held back until the ones before them are written). So N = 1 and
N = 4 write the same dataset, every episode whole, and exactly ``episodes`` are started. The vector env runs
without autoreset; collect resets the finished envs itself, with their next episode's seed.

(``AUTORESET_RULES`` and ``_Recorder`` serve loops that step autoresetting vector envs, as the robot suites'.)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm.auto import tqdm

from worldrl.config_loading import check_fields
from worldrl.data.collect_scenes import collect_scenes, is_scene_env
from worldrl.data.policies import Policy, PolicyContext, make_policy
from worldrl.data.storage_layout import StorageLayout, check_storable
from worldrl.data.writer import LeRobotDatasetWriter
from worldrl.errors import WorldRLError
from worldrl.tasks.real_envs import env_fps, make_real_env, make_real_vector_env, observation_names
from worldrl.tasks.scenes.env import ENV_ID as SCENE_ENV_ID
from worldrl.tasks.scenes.kinds import check_kind
from worldrl.tasks.suites import suite_of

IMAGE_STORAGE = ("video", "image")
VECTORIZATIONS = ("auto", "sync", "async")
DEFAULT_CAMERA = "front"


@dataclass
class CollectConfig:
    """What to record and where."""

    env_id: str
    """Gymnasium id (e.g. ``"InvertedPendulum-v5"``) or ``"dmc:domain-task"``."""
    out: str | Path
    """Dataset root directory."""
    episodes: int
    """Episodes to save in this run (appended ones with ``resume``)."""
    policy: str = "random"
    """Policy spec: ``random``, ``ou[:k=v,...]``, ``scripted``, ``sb3:[ALGO:]PATH.zip`` or ``module:function``."""
    num_envs: int = 1
    """Envs stepped in parallel; the dataset is the same for every value (see the module doc)."""
    vectorization: str = "auto"
    """``"sync"`` (one process), ``"async"`` (a worker process per env) or ``"auto"`` (async when num_envs > 1)."""
    pixels: bool = False
    """Also record camera frames rendered offscreen at each observation."""
    camera: str | None = None
    """Camera to render (MuJoCo camera name); None: the env's default camera, stored as ``front``."""
    image_size: int | tuple[int, int] = 64
    """Frame size: an int for square frames or ``(height, width)``."""
    image_storage: str = "video"
    """``"video"`` (mp4 files) or ``"image"`` (PNG inside the parquet)."""
    seed: int = 0
    """Seeds episode k's env reset and policy with ``episode_seed(seed, k)``; a resumed run derives fresh seeds."""
    max_episode_steps: int | None = None
    """Time limit overriding the registered one (episodes hitting it are truncated, not terminated)."""
    task: str | None = None
    """Task text stored with every frame; None: the env id."""
    overwrite: bool = False
    """Replace an existing dataset at ``out``."""
    resume: bool = False
    """Append to an existing dataset at ``out`` (features and fps must match)."""
    vcodec: str = "libsvtav1"
    """Video codec for ``image_storage="video"``."""
    epsilon: float = 0.0
    """Probability of replacing each action by a random one."""
    fast_render: bool = False
    """MuJoCo frames without shadows and reflections: about 10x faster with software GL (HalfCheetah-v5 at
    64x64: 9 -> ~100 frames/s on CPU), at the cost of frames that differ from the env's default look."""
    scene: str | None = None
    """``worldrl/Playground-v0`` only: the scene kind (drop, collide, roll, dominoes, support, push)."""
    audio: bool = False
    """``worldrl/Playground-v0`` only: record ``observation.audio`` (synthetic audio derived from contacts) and
    each episode's waveform."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.image_size, int):
            self.image_size = (self.image_size, self.image_size)
        self.image_size = tuple(int(v) for v in self.image_size)
        check_fields(
            self,
            {
                "env_id": (bool(self.env_id), "a Gymnasium id or dmc:domain-task"),
                "episodes": (self.episodes >= 1, ">= 1"),
                "num_envs": (self.num_envs >= 1, ">= 1"),
                "vectorization": (self.vectorization in VECTORIZATIONS, f"one of {VECTORIZATIONS}"),
                "image_size": (len(self.image_size) == 2 and min(self.image_size) > 0, "N or (H, W), positive"),
                "image_storage": (self.image_storage in IMAGE_STORAGE, f"one of {IMAGE_STORAGE}"),
                "max_episode_steps": (self.max_episode_steps is None or self.max_episode_steps >= 1, ">= 1 or None"),
                "epsilon": (0.0 <= self.epsilon <= 1.0, "in [0, 1]"),
                "task": (self.task is None or bool(self.task.strip()), "None or a non-empty text"),
                "policy": (bool(self.policy), "a policy spec"),
                "resume": (
                    not (self.overwrite and self.resume),
                    "False when overwrite is True (they exclude each other)",
                ),
                "scene": (self.scene is None or is_scene_env(self.env_id), f"None unless env_id is {SCENE_ENV_ID!r}"),
                "audio": (not self.audio or is_scene_env(self.env_id), f"False unless env_id is {SCENE_ENV_ID!r}"),
            },
        )
        if self.scene is not None:
            check_kind(self.scene)

    @property
    def camera_key(self) -> str:
        return f"observation.images.{self.camera or DEFAULT_CAMERA}"

    @property
    def vector_mode(self) -> str:
        """``vectorization`` with ``"auto"`` resolved."""
        if self.vectorization != "auto":
            return self.vectorization
        return "async" if self.num_envs > 1 else "sync"


@dataclass(frozen=True)
class CollectSummary:
    """What a collection run recorded."""

    out: Path
    episodes: int
    frames: int
    returns: tuple[float, ...]
    """Per saved episode, the sum of its stored ``next.reward``."""
    lengths: tuple[int, ...]
    terminated: int
    """Episodes that ended by termination (the rest were truncated)."""
    bytes_written: int
    seconds: float
    dataset_episodes: int
    """Episodes in the dataset afterwards (more than ``episodes`` after a resume)."""
    return_stats: dict[str, float] = field(default_factory=dict)
    length_stats: dict[str, float] = field(default_factory=dict)
    recording_seconds: float = float("nan")
    """Time spent stepping envs and writing episodes (``seconds`` less env start-up and finalising)."""

    @classmethod
    def build(
        cls,
        out: Path,
        returns: list[float],
        lengths: list[int],
        terminated: int,
        bytes_written: int,
        seconds: float,
        dataset_episodes: int,
    ) -> CollectSummary:
        return cls(
            out,
            len(returns),
            int(sum(lengths)),
            tuple(returns),
            tuple(lengths),
            terminated,
            bytes_written,
            seconds,
            dataset_episodes,
            describe(returns),
            describe(lengths),
        )


def describe(values: list[float] | list[int]) -> dict[str, float]:
    """mean / std / min / max of a list (NaN when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {k: float("nan") for k in ("mean", "std", "min", "max")}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()), "max": float(arr.max())}


class CollectionInterrupted(WorldRLError, RuntimeError):
    """Collection stopped early (Ctrl-C or an error); the finished episodes were kept.

    A user-facing error even when a policy raised: what the user needs is which episodes survived; the
    cause is chained (``__cause__``) for a traceback in Python.
    """

    def __init__(self, out: Path, episodes_kept: int, cause: BaseException):
        self.out, self.episodes_kept, self.cause = out, episodes_kept, cause
        self.exit_code = 130 if isinstance(cause, KeyboardInterrupt) else 2  # 130: the shell's Ctrl-C status
        why = "interrupted" if isinstance(cause, KeyboardInterrupt) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"collection stopped ({why}); kept {episodes_kept} finished episode(s) in {out}")


# --------------------------------------------------------------------------- autoreset handling


@dataclass(frozen=True)
class AutoresetRule:
    """How a vector env's autoreset mode shapes the stream of step results."""

    recorded: Callable[[np.ndarray], np.ndarray]
    """prev_done -> which envs' step results are real transitions."""
    started: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """(done, prev_done) -> which envs' returned observations begin a new episode."""


AUTORESET_RULES: dict[AutoresetMode, AutoresetRule] = {
    # The step after an episode ends is the reset: it returns o_0 and is not a transition.
    AutoresetMode.NEXT_STEP: AutoresetRule(lambda prev: ~prev, lambda done, prev: prev),
    # A done env is reset within the same step: the returned observation is already o_0.
    AutoresetMode.SAME_STEP: AutoresetRule(lambda prev: np.ones_like(prev), lambda done, prev: done),
}


# --------------------------------------------------------------------------- features and rows


def build_features(layout: StorageLayout, config: CollectConfig) -> dict[str, dict[str, Any]]:
    """The dataset features for an env's storage layout and the config's camera settings."""
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [layout.state_dim], "names": layout.state_names},
        "action": {"dtype": layout.action_dtype, "shape": [layout.action_dim], "names": layout.action_names},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
        "next.truncated": {"dtype": "bool", "shape": [1], "names": None},
    }
    if config.pixels:
        h, w = config.image_size
        features[config.camera_key] = {
            "dtype": config.image_storage,
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
        }
    return features


def checked_actions(actions: Any, space: gym.Space, num_envs: int, spec: str) -> np.ndarray:
    """The policy's batch as the env takes it: shape checked, Box actions clipped to the bounds.

    Clipping here makes the stored action the one the env actually applied (many envs clip inside).
    """
    arr = np.asarray(actions)
    expected = (num_envs, *space.shape)
    if arr.shape != expected:
        raise ValueError(f"policy {spec!r} returned actions of shape {arr.shape}, expected {expected}")
    if isinstance(space, gym.spaces.Box):
        return np.clip(arr, space.low, space.high).astype(space.dtype)
    return arr.astype(np.int64)


def split_observation(obs: Any, layout: StorageLayout, pixels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A vector env's observation batch -> (flat float32 states [N, D], frames [N, H, W, 3] or None)."""
    if pixels:
        return layout.flatten_obs(obs["state"]), np.asarray(obs["pixels"])
    return layout.flatten_obs(obs), None


def run_seed(seed: int, stored_episodes: int) -> int:
    """The seed of a run; a resumed run gets a fresh stream so appended episodes differ from earlier ones."""
    if stored_episodes == 0:
        return seed
    return int(np.random.SeedSequence([seed, stored_episodes]).generate_state(1)[0])


def episode_seed(seed: int, episode: int) -> int:
    """The seed of a run's ``episode``-th episode (its env reset and its policy): a pure function of the two, so
    which env records the episode, and how many envs there are, does not matter."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


# --------------------------------------------------------------------------- the loop


@dataclass
class _Recorder:
    """Per-env episode buffers flushed into the writer as episodes finish."""

    writer: LeRobotDatasetWriter
    task: str
    target: int
    num_envs: int
    bar: Any
    buffers: list[list[dict[str, np.ndarray]]] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    terminated: int = 0

    def __post_init__(self) -> None:
        self.buffers = [[] for _ in range(self.num_envs)]

    @property
    def done(self) -> bool:
        return len(self.returns) >= self.target

    def add(self, i: int, row: dict[str, np.ndarray]) -> None:
        self.buffers[i].append(row)

    def finish(self, i: int) -> None:
        rows, self.buffers[i] = self.buffers[i], []
        self.write(rows)

    def write(self, rows: list[dict[str, np.ndarray]]) -> None:
        """Save one whole episode (ignored once ``target`` episodes are saved)."""
        if self.done:
            return
        for row in rows:
            self.writer.add_frame(row, task=self.task)
        self.writer.save_episode()
        self.returns.append(float(sum(float(r["next.reward"][0]) for r in rows)))
        self.lengths.append(len(rows))
        self.terminated += int(rows[-1]["next.terminated"][0])
        self.bar.update(1)
        self.bar.set_postfix(frames=sum(self.lengths), last_return=f"{self.returns[-1]:.2f}")


@dataclass
class _EpisodeSlots:
    """Which episode each env records (-1: idle, no episodes left to start) and the finished ones held back
    until every lower index is written."""

    target: int
    episode: np.ndarray
    next_episode: int = 0
    next_to_write: int = 0
    held: dict[int, list[dict[str, np.ndarray]]] = field(default_factory=dict)

    def assign(self, envs: np.ndarray) -> None:
        for i in envs:
            self.episode[i] = self.next_episode if self.next_episode < self.target else -1
            self.next_episode += int(self.episode[i] >= 0)

    def finished(self, episode: int, rows: list[dict[str, np.ndarray]]) -> list[list[dict[str, np.ndarray]]]:
        """Hold ``episode``; return the episodes now writable, in index order."""
        self.held[episode] = rows
        ready = []
        while self.next_to_write in self.held:
            ready.append(self.held.pop(self.next_to_write))
            self.next_to_write += 1
        return ready


def _record_in_order(
    envs: gym.vector.VectorEnv,
    make_episode_policy: Callable[[int], Policy],
    layout: StorageLayout,
    rec: _Recorder,
    config: CollectConfig,
    seed: int,
) -> None:
    """Record ``rec.target`` episodes, N-independent (module doc); the vector env must not autoreset."""
    n = envs.num_envs
    slots = _EpisodeSlots(rec.target, np.full(n, -1))
    slots.assign(np.arange(n))
    policies = {int(k): make_episode_policy(episode_seed(seed, int(k))) for k in slots.episode if k >= 0}
    obs, _ = envs.reset(seed=[episode_seed(seed, int(k)) if k >= 0 else None for k in slots.episode])
    state, frames = split_observation(obs, layout, config.pixels)
    buffers: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n)]
    while not rec.done:
        active = np.flatnonzero(slots.episode >= 0)
        chosen = {
            int(i): checked_actions(
                policies[int(slots.episode[i])](state[i : i + 1]), envs.single_action_space, 1, config.policy
            )[0]
            for i in active
        }
        # idle envs (no episode left to start) step with any valid action; nothing of theirs is recorded
        actions = np.stack([chosen.get(i, chosen[int(active[0])]) for i in range(n)])
        obs, reward, term, trunc, _ = envs.step(actions)
        term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
        done, stored = term | trunc, layout.store_action(actions)
        for i in active:
            row = {
                "observation.state": state[i],
                "action": stored[i],
                "next.reward": np.array([reward[i]], np.float32),
                "next.done": done[i : i + 1],
                "next.terminated": term[i : i + 1],
                "next.truncated": trunc[i : i + 1],
            }
            if frames is not None:
                row[config.camera_key] = frames[i]
            buffers[i].append(row)
        state, frames = split_observation(obs, layout, config.pixels)
        if not done.any():
            continue
        ended = np.flatnonzero(done)
        for i in ended:
            if slots.episode[i] >= 0:
                policies.pop(int(slots.episode[i]))
                for rows in slots.finished(int(slots.episode[i]), buffers[i]):
                    rec.write(rows)
                buffers[i] = []
        slots.assign(ended)
        policies.update(
            {
                int(slots.episode[i]): make_episode_policy(episode_seed(seed, int(slots.episode[i])))
                for i in ended
                if slots.episode[i] >= 0
            }
        )
        seeds = [
            episode_seed(seed, int(slots.episode[i])) if done[i] and slots.episode[i] >= 0 else None for i in range(n)
        ]
        obs, _ = envs.reset(seed=seeds, options={"reset_mask": done})
        fresh_state, fresh_frames = split_observation(obs, layout, config.pixels)
        state[done] = fresh_state[done]
        if frames is not None:
            frames[done] = fresh_frames[done]


def _env_kwargs(config: CollectConfig) -> dict[str, Any]:
    h, w = config.image_size
    return {
        "pixels": config.pixels,
        "camera": config.camera,
        "height": h,
        "width": w,
        "max_episode_steps": config.max_episode_steps,
        "render_effects": not config.fast_render,
    }


def collect(config: CollectConfig, *, progress: bool = True) -> CollectSummary:
    """Record ``config.episodes`` episodes into ``config.out``; prints a summary table when ``progress``.

    Raises ``CollectionInterrupted`` (with ``episodes_kept``) when stopped by Ctrl-C or an error after the
    dataset was opened; the finished episodes stay readable.
    """
    if is_scene_env(config.env_id):  # physics scenes: audio, event logs and scene files (collect_scenes.py)
        return collect_scenes(config, progress=progress)
    if suite_of(config.env_id) is not None:  # PushT, ALOHA, Gymnasium-Robotics: LeRobot's layouts (collect_suites.py)
        from worldrl.data.collect_suites import collect_suite

        return collect_suite(config, progress=progress)
    start = time.time()
    probe = make_real_env(config.env_id, max_episode_steps=config.max_episode_steps)
    fps, names = env_fps(probe), observation_names(probe)
    probe.close()
    envs = make_real_vector_env(
        config.env_id, config.num_envs, config.vector_mode, autoreset_mode=AutoresetMode.DISABLED, **_env_kwargs(config)
    )
    try:
        obs_space = envs.single_observation_space["state"] if config.pixels else envs.single_observation_space
        layout = check_storable(config.env_id, obs_space, envs.single_action_space)
        if layout.state_names is None and names is not None and len(names) == layout.state_dim:
            layout = StorageLayout(**{**layout.__dict__, "state_names": names})
        return _collect_into(config, envs, obs_space, layout, fps, start, progress)
    finally:
        envs.close()


def _collect_into(
    config: CollectConfig,
    envs: gym.vector.VectorEnv,
    obs_space: gym.Space,
    layout: StorageLayout,
    fps: int,
    start: float,
    progress: bool,
) -> CollectSummary:
    # a bad --policy fails here, before a dataset exists that would block the corrected rerun (issue 19)
    probe_ctx = PolicyContext(config.env_id, obs_space, envs.single_action_space, config.num_envs, config.seed)
    make_policy(config.policy, probe_ctx, epsilon=config.epsilon)
    writer = LeRobotDatasetWriter.create(
        config.out,
        fps,
        build_features(layout, config),
        robot_type=config.env_id,
        overwrite=config.overwrite,
        resume=config.resume,
        vcodec=config.vcodec,
    )
    seed = run_seed(config.seed, writer.num_episodes)
    bar = tqdm(total=config.episodes, unit="ep", desc=f"collect {config.env_id}", disable=not progress)
    rec = _Recorder(writer, config.task or config.env_id, config.episodes, config.num_envs, bar)

    def episode_policy(policy_seed: int) -> Policy:  # one env's policy for one episode
        ctx = PolicyContext(config.env_id, obs_space, envs.single_action_space, 1, policy_seed)
        return make_policy(config.policy, ctx, epsilon=config.epsilon)

    try:
        with writer, bar:
            recording = time.perf_counter()
            _record_in_order(envs, episode_policy, layout, rec, config, seed)
            recording = time.perf_counter() - recording
    except (Exception, KeyboardInterrupt) as err:
        raise_interrupted(err, rec, config)
    summary = dataclasses.replace(finish_recording(writer, rec, config, start), recording_seconds=recording)
    if progress:
        print_summary(summary)
    return summary


def raise_interrupted(err: BaseException, rec: _Recorder, config: CollectConfig) -> None:
    """Re-raise a recording's failure: a bad option (the policy spec) found before any episode as itself, anything
    later as ``CollectionInterrupted`` (which says how many episodes were kept)."""
    if isinstance(err, WorldRLError) and not rec.returns:
        raise err
    raise CollectionInterrupted(Path(config.out), len(rec.returns), err) from err


def finish_recording(writer: LeRobotDatasetWriter, rec: _Recorder, config: CollectConfig, start: float):
    """Finalise the dataset and summarise what ``rec`` recorded since ``start`` (``time.time()``)."""
    result = writer.finalize()
    return CollectSummary.build(
        Path(config.out),
        rec.returns,
        rec.lengths,
        rec.terminated,
        result.bytes_written,
        time.time() - start,
        result.num_episodes,
    )


def print_summary(summary: CollectSummary, console: Any = None) -> None:
    """The summary as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"collected into {summary.out}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    r, n = summary.return_stats, summary.length_stats
    rows = [
        ("episodes", f"{summary.episodes} ({summary.terminated} terminated)"),
        ("frames", str(summary.frames)),
        ("return mean ± std", f"{r['mean']:.3f} ± {r['std']:.3f}"),
        ("return min / max", f"{r['min']:.3f} / {r['max']:.3f}"),
        ("length mean / min / max", f"{n['mean']:.1f} / {n['min']:.0f} / {n['max']:.0f}"),
        ("dataset episodes", str(summary.dataset_episodes)),
        ("bytes written", f"{summary.bytes_written / 1e6:.2f} MB"),
        ("seconds", f"{summary.seconds:.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    (console or Console()).print(table)
