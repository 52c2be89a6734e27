"""Fitting the world model inside the online loop: the model for a task, each iteration's fine-tuning on the
replay buffer with the shared ``Trainer``, and the finiteness checks that stop a diverged run."""

from __future__ import annotations

import contextlib
import math
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from worldrl.data.replay import ReplayBuffer
from worldrl.errors import ConfigError, EnvError
from worldrl.loops.config import OnlineConfig
from worldrl.loops.presets import ModelSpec
from worldrl.models.base import WorldModel, build_model
from worldrl.models.checkpoint import load_pretrained
from worldrl.models.task_spec import TaskSpec


def task_for_env(env: gym.Env, env_id: str) -> TaskSpec:
    """The TaskSpec of a real env; only flat Box observations and continuous Box actions are supported."""
    from worldrl.tasks.real_envs import env_fps

    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(f"{env_id} observes {obs_space}; the online loop needs a flat Box state observation")
    spec = getattr(env, "spec", None)
    return TaskSpec(
        obs_space,
        act_space,
        task_id=env_id,
        fps=float(env_fps(env)),
        max_episode_steps=spec.max_episode_steps if spec is not None else None,
    )


def check_action_space(agent: str, env_id: str, space: gym.Space) -> None:
    """Every agent here samples or squashes continuous actions: discrete spaces get a clear refusal."""
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        raise EnvError(
            f"agent {agent!r} needs a continuous Box action space, but {env_id} has {space}; "
            "discrete actions are not supported by the world-model agents"
        )


def build_world_model(config: OnlineConfig, task: TaskSpec, spec: ModelSpec, device: torch.device) -> WorldModel:
    """A fresh model from the spec, or the pretrained ``config.model`` after checking it models this task."""
    if config.model is None:
        torch.manual_seed(config.seed)
        options = dict(spec.model)
        return build_model(options.pop("family"), options, task).to(device)
    model = load_pretrained(config.model, device=device)
    if model.task.task_id != config.env_id:
        raise ConfigError(
            f"the world model at {config.model} was trained for task {model.task.task_id!r}, "
            f"not --env {config.env_id!r}"
        )
    model.task.check_compatible(task.observation_space, task.action_space)
    return model


def split_episodes_for_fit(replay: ReplayBuffer, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Train/validation episodes: a random 10% held out once there are 4+ episodes (elites need validation)."""
    episodes = np.unique(replay.arrays()["episode"])
    if len(episodes) < 4:
        return episodes, None
    held = rng.choice(episodes, size=max(1, len(episodes) // 10), replace=False)
    return np.setdiff1d(episodes, held), held


def trainer_config(spec: ModelSpec, config: OnlineConfig, iteration: int, device: torch.device) -> Any:
    from worldrl.training import TrainerConfig

    steps = config.model_steps
    options = {
        **spec.trainer,
        "max_steps": steps,
        "warmup_steps": min(int(spec.trainer.get("warmup_steps", 0)), steps // 4),
        "eval_every": 0,  # validate once, at the end of the fit (elite selection)
        "checkpoint_every": 0,
        "keep_last": 1,
        "early_stopping_patience": None,
        "log_every": max(1, min(int(spec.trainer.get("log_every", 10)), steps)),
        "num_workers": 0,  # the windows are in memory: a worker process would only add start-up time
        "loggers": ["jsonl"],
        "progress": False,  # the loop's own bar shows progress; nested fit bars would scroll the terminal
        "device": str(device),
        "seed": config.seed * 100_003 + iteration,  # the trainer re-seeds the global RNGs per fit
    }
    try:
        return TrainerConfig.from_dict(options)
    except ConfigError as err:
        raise ConfigError(f"{spec.source}: trainer: {' '.join(str(err).split())}") from None


def fit_model(
    model: WorldModel, replay: ReplayBuffer, spec: ModelSpec, config: OnlineConfig, iteration: int, workdir: Path
) -> dict[str, float]:
    """Fine-tune ``model`` in place on all real windows; returns the fit's final losses."""
    from worldrl.training import Trainer

    train_eps, val_eps = split_episodes_for_fit(replay, np.random.default_rng([config.seed, iteration]))
    train = replay.windows(spec.window, train_eps)
    val = replay.windows(spec.window, val_eps) if val_eps is not None else train
    model.fit_normalization(replay.stats())
    fit_dir = workdir / f"fit_{iteration:04d}"
    shutil.rmtree(fit_dir, ignore_errors=True)
    trainer = Trainer(model, train, val, trainer_config(spec, config, iteration, model.device), fit_dir)
    with (workdir.parent / "model_fits.log").open("a") as log, contextlib.redirect_stdout(log):
        result = trainer.fit()  # its per-fit summary goes to the log, not between the loop's progress lines
    if trainer.ema is not None:  # act with the weights the trainer validated and saved
        model.load_state_dict(trainer.eval_model.state_dict())
    model.eval()
    for old in workdir.glob("fit_*"):
        if old != fit_dir:
            shutil.rmtree(old, ignore_errors=True)
    return {
        "model/train_loss": _nan_if_none(result.final_train_loss),
        "model/val_loss": _nan_if_none(result.final_val_loss),
    }


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


@torch.no_grad()
def check_imagination(
    model: WorldModel, starts: np.ndarray, action_space: gym.spaces.Box, horizon: int = 10, seed: int = 0
) -> None:
    """Roll random actions from real states through the model; ``FloatingPointError`` if anything is non-finite."""
    device = model.device
    gen = torch.Generator(device=device).manual_seed(seed)
    obs = torch.as_tensor(starts, dtype=torch.float32, device=device)
    batch = obs.shape[0]
    state = model.observe_last(
        obs[:, None],
        torch.zeros(batch, 1, model.task.action_dim, device=device),
        torch.ones(batch, 1, dtype=torch.bool, device=device),
    )
    low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device).reshape(-1)
    high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device).reshape(-1)
    actions = low + (high - low) * torch.rand(batch, horizon, low.numel(), generator=gen, device=device)
    states = model.rollout(state, actions, gen)
    readouts = {"reward": model.reward(states)}
    readouts["observation" if model.capabilities.can_decode else "latent"] = (
        model.decode(states) if model.capabilities.can_decode else model.latent(states)
    )
    for name, value in readouts.items():
        if not bool(torch.isfinite(value).all()):
            raise FloatingPointError(
                f"the world model's imagined {name} is NaN/inf within {horizon} steps of real "
                "states: the model diverged"
            )


def check_finite(metrics: dict[str, float], what: str) -> None:
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"{what} produced non-finite values {bad}")


__all__ = ["build_world_model", "check_action_space", "check_finite", "check_imagination", "fit_model", "task_for_env"]
