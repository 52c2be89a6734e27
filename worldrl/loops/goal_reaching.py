"""Goal-image planning judged on the real env: per episode the goal is the observation ``goal_steps`` random
actions away from the start (same seed), then an agent acts ``steps`` times from the start.

Scores per agent: the final real observation's latent distance to the goal's (``model.distance`` of ``embed``:
what the planner minimised, measured on real frames) and, when the MuJoCo model has ``tracked_body`` (Reacher's
``fingertip``), that body's final distance to its goal position with a success threshold. ``mpc-goal`` (CEM in
latent space) runs beside random and zero actions from the same starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from worldrl.agents.goal_mpc import GoalMPCAgent
from worldrl.config_loading import check_fields
from worldrl.models import observations as keyed
from worldrl.tasks.real_envs import make_real_env


@dataclass
class GoalReachingConfig:
    """What ``worldrl plan-goal`` runs."""

    env_id: str = "Reacher-v5"
    """Real env (rendered at the model's camera size)."""
    episodes: int = 20
    """Episodes, seeded 0..episodes-1."""
    steps: int = 15
    """Actions per episode after the start."""
    goal_steps: int = 10
    """Random actions from the start that make the goal observation."""
    success: float = 0.05
    """Success threshold on the tracked body's final distance (m)."""
    tracked_body: str = "fingertip"
    """MuJoCo body whose position defines success (skipped when the model has none)."""
    planner: dict[str, Any] = field(
        default_factory=lambda: {"horizon": 2, "num_samples": 32, "num_elites": 4, "iterations": 2}
    )
    """CEM settings of the ``mpc-goal`` agent."""
    goal_image: np.ndarray | None = None
    """``[H, W, 3]`` uint8 goal frame for every episode (``load_goal_image``); None: rendered goals."""
    save_goals: str | None = None
    """Directory to write each episode's goal frame to (PNG); None: not written."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "episodes": (self.episodes >= 1, ">= 1"),
                "steps": (self.steps >= 1, ">= 1"),
                "goal_steps": (self.goal_steps >= 1, ">= 1"),
                "success": (self.success > 0, "> 0"),
            },
        )


def cem_settings(samples: int, horizon: int, iterations: int) -> dict[str, Any]:
    """The planner settings of a CEM search of ``samples`` candidates (elites: an eighth, at least 2)."""
    return {"horizon": horizon, "num_samples": samples, "num_elites": max(samples // 8, 2), "iterations": iterations}


def load_goal_image(path: str, model: Any, camera: str | None = None) -> np.ndarray:
    """A PNG/JPEG goal as ``[H, W, 3]`` uint8 for ``camera`` (default: the model's first); one-line errors for a
    file that is not an image, another size than the camera's, or a camera the model does not have."""
    from PIL import Image, UnidentifiedImageError

    from worldrl.errors import ConfigError, InputNotFoundError

    cameras = list(getattr(model, "cameras", None) or [])
    camera = camera or (cameras[0] if cameras else None)
    if camera not in cameras:
        raise ConfigError(f"goal camera {camera!r} is not one of the model's cameras {cameras}")
    try:
        with Image.open(path) as img:
            frame = np.array(img.convert("RGB"), np.uint8)  # a writable copy
    except FileNotFoundError as err:
        raise InputNotFoundError(f"goal image {path} does not exist") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ConfigError(f"goal image {path} is not an image PIL can read ({err})") from err
    expected = tuple(model.task.key_space(camera).shape[:2])
    if frame.shape[:2] != expected:
        raise ConfigError(
            f"goal image {path} is {frame.shape[1]}x{frame.shape[0]} but camera {camera!r} of the model sees "
            f"{expected[1]}x{expected[0]} frames"
        )
    return frame


def _save_goal(frame: np.ndarray, directory: str, episode: int) -> None:
    from pathlib import Path

    from PIL import Image

    Path(directory).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(frame)).save(Path(directory) / f"goal_{episode:03d}.png")


def _body(env: Any, name: str) -> np.ndarray | None:
    try:
        return np.array(env.unwrapped.get_body_com(name)[:2], np.float64)  # a copy: MuJoCo reuses the buffer
    except Exception:  # noqa: BLE001 - no such body or not a MuJoCo env
        return None


def _observation(obs: dict[str, Any], model: Any) -> Any:
    """The real env's ``{"state", "pixels"}`` as the model's observation (keyed: camera + state)."""
    frame = np.ascontiguousarray(obs["pixels"])
    if not model.task.is_keyed:
        return frame
    return {key: frame if key in model.cameras else np.asarray(obs["state"], np.float32) for key in model.task.obs_keys}


def run_goal_reaching(model: Any, config: GoalReachingConfig, progress: bool = False) -> dict[str, Any]:
    h, w = model.task.key_space(model.cameras[0]).shape[:2]
    env = make_real_env(config.env_id, pixels=True, width=w, height=h, max_episode_steps=10_000)
    names = ("mpc-goal", "random actions", "zero actions")
    latent = {n: [] for n in names}
    body = {n: [] for n in names}
    seconds, calls = 0.0, 0
    for ep in range(config.episodes):
        rng = np.random.default_rng(1000 + ep)
        obs, _ = env.reset(seed=ep)
        if config.goal_image is not None:
            goal, goal_body = _observation({**obs, "pixels": config.goal_image}, model), None
        else:
            for _ in range(config.goal_steps):
                obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
            goal, goal_body = _observation(obs, model), _body(env, config.tracked_body)
        if config.save_goals:
            _save_goal(obs["pixels"] if config.goal_image is None else config.goal_image, config.save_goals, ep)
        goal_embedding = model.embed(keyed.to_torch(goal, model.task, model.device, 0).unsqueeze(0))
        for name in names:
            obs, _ = env.reset(seed=ep)
            agent = GoalMPCAgent(model, goal=goal, seed=ep, **config.planner) if name == "mpc-goal" else None
            for _ in range(config.steps):
                if agent is not None:
                    start = time.perf_counter()
                    action = agent.act(_observation(obs, model))
                    seconds, calls = seconds + time.perf_counter() - start, calls + 1
                elif name == "random actions":
                    action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
                else:
                    action = np.zeros(env.action_space.shape, np.float32)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            with torch.no_grad():
                final = model.embed(keyed.to_torch(_observation(obs, model), model.task, model.device, 0).unsqueeze(0))
                latent[name].append(float(model.distance(final, goal_embedding)[0]))
            position = _body(env, config.tracked_body)
            if position is not None and goal_body is not None:
                body[name].append(float(np.linalg.norm(position - goal_body)))
        if progress:
            print(f"episode {ep + 1}/{config.episodes}: " + ", ".join(f"{n} {latent[n][-1]:.4f}" for n in names))
    results = {}
    for name in names:
        entry = {"final latent distance": float(np.mean(latent[name]))}
        if body[name]:
            entry[f"final {config.tracked_body} distance"] = float(np.mean(body[name]))
            entry["success"] = float(np.mean(np.asarray(body[name]) < config.success))
        results[name] = entry
    return {
        "agents": results,
        "plan_seconds_per_action": seconds / max(calls, 1),
        "episodes": config.episodes,
        "planner": dict(config.planner),
    }


__all__ = ["GoalReachingConfig", "load_goal_image", "run_goal_reaching"]
