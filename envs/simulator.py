"""The learned simulator core shared by the Gymnasium env, the native vector env and the TorchRL env.

``LearnedSimulator`` holds, on torch batches, everything an environment adds to a world model: start states,
action checks, the reward and termination source, observation clipping, seeding and rendering. The single env
(batch 1), the vector env (batch N) and the TorchRL env all delegate to it, so they behave identically. See
``worldrl.envs.world_model_env`` for the user-facing semantics (observations, start states, time limits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from worldrl.envs.default_model import require_default_model
from worldrl.envs.tasks import TaskFunctions, get_task, has_task
from worldrl.errors import EnvError
from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.checkpoint import load_pretrained
from worldrl.models.task_spec import TaskSpec

OBS_MODES = ("observation", "latent")
REWARD_SOURCES = ("model", "task")
TERMINATION_SOURCES = ("model", "task", "none")
ACTION_POLICIES = ("clip", "error")



# =========================================================================== options
@dataclass
class SimulatorOptions:
    """How a learned model is turned into an environment (shared by the Gymnasium, vector and TorchRL envs)."""

    obs_mode: str | None = None
    """``"observation"`` (decoded, in the task's space) or ``"latent"``; None: observation where the model can
    decode (``capabilities.can_decode``), else latent."""
    reward: str | None = None
    """``"model"`` (learned reward head) or ``"task"`` (the task's known function on predicted observations,
    envs/tasks.py); None: model where ``capabilities.predicts_reward``, else task."""
    termination: str | None = None
    """``"model"`` (learned terminal probability > ``terminal_threshold``), ``"task"`` or ``"none"``; None: model
    where ``capabilities.predicts_terminal``, else task where the task has a function, else none."""
    sample: bool = False
    """Stochastic imagination with the env's seeded ``torch.Generator``; False: the model's mean prediction."""
    action_policy: str = "clip"
    """Out-of-bounds actions: ``"clip"`` into the action space or ``"error"``. NaN/inf actions always raise."""
    terminal_threshold: float = 0.5
    """A learned terminal probability above this ends the episode."""
    start_pool_size: int = 1024
    """How many real-env resets make the start-state pool when start states come from the real task."""

    def __post_init__(self) -> None:
        for name, allowed in (
            ("obs_mode", OBS_MODES),
            ("reward", REWARD_SOURCES),
            ("termination", TERMINATION_SOURCES),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise EnvError(f"{name} must be one of {allowed} (or None for automatic), got {value!r}")
        if self.action_policy not in ACTION_POLICIES:
            raise EnvError(f"action_policy must be one of {ACTION_POLICIES}, got {self.action_policy!r}")
        if not 0.0 <= self.terminal_threshold <= 1.0:
            raise EnvError(f"terminal_threshold must be in [0, 1], got {self.terminal_threshold}")
        if self.start_pool_size < 1:
            raise EnvError(f"start_pool_size must be >= 1, got {self.start_pool_size}")


# =========================================================================== model and start states
def resolve_model(
    model: WorldModel | str | os.PathLike | None, device: str | torch.device | None, task_id: str | None = None
) -> WorldModel:
    """A ready model from an instance, a checkpoint dir / Hub id, or None (the bundled default).

    ``device=None`` keeps an instance where it is and loads checkpoints on the CPU. ``task_id`` asserts what the
    checkpoint simulates: a model trained for another task is refused.
    """
    if model is None:
        model = require_default_model()
    if isinstance(model, WorldModel):
        if device is not None and torch.device(device) != model.device:
            model = model.to(device)
    elif isinstance(model, (str, os.PathLike)):
        model = load_pretrained(model, device=device or "cpu")
    else:
        raise TypeError(f"model must be a WorldModel, a checkpoint directory or a Hub id, got {type(model).__name__}")
    if task_id is not None and model.task.task_id != task_id:
        raise EnvError(
            f"the world model was trained for task {model.task.task_id!r}, not the requested task_id {task_id!r}"
        )
    return model.eval()


def capabilities_of(model: WorldModel) -> Capabilities:
    """Instance capabilities (a config may switch a head off) fall back to the class's."""
    return getattr(model, "capabilities", type(model).capabilities)


def dataset_episode_starts(root: str | os.PathLike, obs_key: str) -> np.ndarray:
    """The first ``obs_key`` frame of every episode of a LeRobot dataset (state, PNG image or video)."""
    from worldrl.data import LeRobotDatasetReader

    return LeRobotDatasetReader(root).episode_starts(obs_key)


def real_env_starts(task: TaskSpec, count: int) -> np.ndarray:
    """``count`` initial observations of the real task (fixed seeds: the pool is the same in every process)."""
    if not task.task_id or task.task_id not in gym.registry:
        raise EnvError(
            f"no start states: the model's task {task.task_id!r} is not a Gymnasium id, so pass start_states= "
            "(an array of observations) or dataset= (a LeRobot dataset root)"
        )
    env = gym.make(task.task_id)
    try:
        task.check_compatible(env.observation_space, env.action_space)
        first, _ = env.reset(seed=0)
        return np.stack([first] + [env.reset()[0] for _ in range(count - 1)])
    finally:
        env.close()


def start_pool(
    task: TaskSpec, start_states: Any | None, dataset: str | os.PathLike | None, pool_size: int,
    recorded: torch.Tensor | None = None,
) -> np.ndarray:
    """The observations episodes start from, validated against the task's observation shape.

    Precedence: ``start_states``, then ``dataset``, then ``recorded`` (the training dataset's episode starts,
    saved in the checkpoint by the trainer), then resets of the real task's env.
    """
    if start_states is not None:
        pool, source = np.asarray(start_states), "start_states"
    elif dataset is not None:
        pool, source = dataset_episode_starts(dataset, task.obs_key), f"dataset {dataset}"
    elif recorded is not None:
        pool, source = recorded.cpu().numpy(), "the training dataset's episode starts (start_states.safetensors)"
    else:
        pool, source = real_env_starts(task, pool_size), f"{task.task_id} resets"
    if pool.ndim != len(task.obs_shape) + 1 or tuple(pool.shape[1:]) != task.obs_shape or len(pool) == 0:
        raise EnvError(
            f"start states from {source} must have shape (N, {', '.join(map(str, task.obs_shape))}), got {pool.shape}"
        )
    if not np.isfinite(pool.astype(np.float64)).all():
        raise EnvError(f"start states from {source} contain NaN or inf")
    return pool


# =========================================================================== batched core
@dataclass
class Transition:
    """One batched step of the learned simulator (all torch, batch first)."""

    state: TensorDict
    obs: torch.Tensor | None
    """Decoded, clipped observation (None for models that cannot decode)."""
    view: torch.Tensor
    """What the agent sees: ``obs`` or the latent."""
    reward: torch.Tensor
    terminated: torch.Tensor
    diverged: torch.Tensor


class LearnedSimulator:
    """The environment logic around a world model on batches: starts, action checks, step, reward, termination."""

    def __init__(self, model: WorldModel, options: SimulatorOptions) -> None:
        self.model, self.options, self.task = model, options, model.task
        caps = capabilities_of(model)
        self.can_decode = caps.can_decode
        self.obs_mode = options.obs_mode or ("observation" if caps.can_decode else "latent")
        self.reward_source = options.reward or ("model" if caps.predicts_reward else "task")
        default_termination = "task" if has_task(self.task.task_id) else "none"
        self.termination_source = options.termination or ("model" if caps.predicts_terminal else default_termination)
        self._check_sources(caps)
        self.task_functions = self._task_functions()
        self.device = model.device
        self.single_observation_space = self._observation_space()
        self.single_action_space: gym.spaces.Box = self.task.action_space
        space = self.task.observation_space
        self.obs_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
        self.obs_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)
        self.obs_is_integer = np.issubdtype(space.dtype, np.integer)
        self.action_low = np.asarray(self.single_action_space.low, dtype=np.float64)
        self.action_high = np.asarray(self.single_action_space.high, dtype=np.float64)

    # ----------------------------------------------------------------- configuration checks
    def _check_sources(self, caps: Capabilities) -> None:
        if self.obs_mode == "observation" and not caps.can_decode:
            raise EnvError(f"{type(self.model).__name__} cannot decode observations: use obs_mode='latent'")
        if self.reward_source == "model" and not caps.predicts_reward:
            raise EnvError(f"{type(self.model).__name__} does not predict rewards: use reward='task'")
        if self.termination_source == "model" and not caps.predicts_terminal:
            raise EnvError(
                f"{type(self.model).__name__} does not predict termination: use termination='task' or 'none'"
            )
        uses_task = "task" in (self.reward_source, self.termination_source)
        if uses_task and not caps.can_decode:
            raise EnvError("reward/termination='task' scores decoded observations, but the model cannot decode")

    def _task_functions(self) -> TaskFunctions | None:
        if "task" not in (self.reward_source, self.termination_source):
            return None
        try:
            functions = get_task(self.task.task_id)
        except KeyError as err:
            raise EnvError(f"reward/termination='task' needs known task functions: {err.args[0]}") from None
        expected = (functions.obs_dim,), functions.action_dim
        if (self.task.obs_shape, self.task.action_dim) != expected:
            raise EnvError(
                f"task functions of {self.task.task_id!r} expect obs {expected[0]} and {expected[1]} action dims, "
                f"the model has {self.task.obs_shape} and {self.task.action_dim}"
            )
        return functions

    def _observation_space(self) -> gym.spaces.Box:
        if self.obs_mode == "latent":
            dim = int(self.model.latent_dim)
            return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        return self.task.observation_space

    # ----------------------------------------------------------------- actions
    def check_actions(self, action: Any, batch_shape: tuple[int, ...]) -> torch.Tensor:
        """Validate numpy-like actions of shape ``batch_shape + action_shape``; returns float32 ``[B, A]``."""
        expected = (*batch_shape, *self.single_action_space.shape)
        array = np.asarray(action)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"action must be numeric, got dtype {array.dtype} ({action!r})")
        if array.shape != expected:
            space = self.single_action_space
            raise ValueError(f"action has shape {array.shape}, expected {expected} (the action space is {space})")
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"action contains NaN or inf: {action!r}")
        array = self._bound(array, action)
        return torch.as_tensor(array.reshape(-1, self.task.action_dim), dtype=torch.float32, device=self.device)

    def check_action_tensor(self, action: torch.Tensor) -> torch.Tensor:
        """The same checks on a torch action ``[..., A]`` (TorchRL); returns float32 on the model's device."""
        if action.shape[-1:] != (self.task.action_dim,):
            raise ValueError(f"action has shape {tuple(action.shape)}, expected (..., {self.task.action_dim})")
        if not torch.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action}")
        low = torch.as_tensor(self.action_low, dtype=action.dtype, device=action.device).reshape(-1)
        high = torch.as_tensor(self.action_high, dtype=action.dtype, device=action.device).reshape(-1)
        if self.options.action_policy == "error" and ((action < low) | (action > high)).any():
            raise ValueError(f"action outside the action space [{low.tolist()}, {high.tolist()}]: {action}")
        return torch.clamp(action, low, high).to(device=self.device, dtype=torch.float32)

    def _bound(self, array: np.ndarray, original: Any) -> np.ndarray:
        low, high = self.action_low, self.action_high
        if self.options.action_policy == "error" and ((array < low) | (array > high)).any():
            raise ValueError(f"action {original!r} is outside the action space {self.single_action_space}")
        return np.clip(array, low, high)

    # ----------------------------------------------------------------- starts and steps
    def start(self, observations: np.ndarray | torch.Tensor) -> Transition:
        """Encode start observations ``[B, *obs_shape]`` (a fresh episode each)."""
        obs = torch.as_tensor(observations, device=self.device)
        if obs.is_floating_point():
            obs = obs.float()
        if tuple(obs.shape[1:]) != self.task.obs_shape:
            raise ValueError(f"start observation has shape {tuple(obs.shape[1:])}, expected {self.task.obs_shape}")
        if not torch.isfinite(obs.float()).all():
            raise ValueError("start observation contains NaN or inf")
        batch = obs.shape[0]
        prev_action = torch.zeros(batch, 1, self.task.action_dim, device=self.device)
        is_first = torch.ones(batch, 1, dtype=torch.bool, device=self.device)
        with torch.no_grad():
            state = self.model.observe_last(obs[:, None], prev_action, is_first)
            decoded, diverged = self._decode(state)
            view = self._view(state, decoded)
        zeros = torch.zeros(batch, device=self.device)
        return Transition(state, decoded, view, zeros, torch.zeros_like(diverged), diverged)

    def step(
        self, state: TensorDict, obs: torch.Tensor | None, action: torch.Tensor, generator: torch.Generator | None
    ) -> Transition:
        """One batched ``model.imagine`` and the read-outs of the transition ``(obs, action) -> next``."""
        with torch.no_grad():
            next_state = self.model.imagine(state, action, generator if self.options.sample else None)
            next_obs, diverged = self._decode(next_state)
            reward = self._reward(obs, action, next_obs, next_state)
            terminated = self._terminated(obs, action, next_obs, next_state) | diverged
            view = self._view(next_state, next_obs)
        return Transition(next_state, next_obs, view, reward, terminated, diverged)

    def _decode(self, state: TensorDict) -> tuple[torch.Tensor | None, torch.Tensor]:
        batch = state.batch_size[0]
        if not self.can_decode:
            return None, torch.zeros(batch, dtype=torch.bool, device=self.device)
        obs = self.model.decode(state).float()
        finite = torch.isfinite(obs).reshape(batch, -1).all(-1)
        obs = torch.where(torch.isfinite(obs), obs, torch.zeros_like(obs))
        if self.obs_is_integer:
            obs = obs.round()
        return torch.clamp(obs, self.obs_low, self.obs_high), ~finite

    def _view(self, state: TensorDict, obs: torch.Tensor | None) -> torch.Tensor:
        if self.obs_mode == "observation":
            return obs  # type: ignore[return-value]
        latent = self.model.latent(state).float()
        return torch.where(torch.isfinite(latent), latent, torch.zeros_like(latent))

    def _reward(self, obs, action, next_obs, next_state) -> torch.Tensor:
        if self.reward_source == "task":
            reward = self.task_functions.reward(obs, action, next_obs)  # type: ignore[union-attr]
        else:
            reward = self.model.reward(next_state)
        reward = reward.reshape(-1).float()
        return torch.where(torch.isfinite(reward), reward, torch.zeros_like(reward))

    def _terminated(self, obs, action, next_obs, next_state) -> torch.Tensor:
        if self.termination_source == "task":
            return self.task_functions.terminated(obs, action, next_obs).reshape(-1)  # type: ignore[union-attr]
        if self.termination_source == "model":
            return (self.model.terminal(next_state) > self.options.terminal_threshold).reshape(-1)
        return torch.zeros(next_state.batch_size[0], dtype=torch.bool, device=self.device)

    # ----------------------------------------------------------------- numpy outputs
    def to_numpy(self, view: torch.Tensor) -> np.ndarray:
        return view.detach().cpu().numpy().astype(self.single_observation_space.dtype, copy=False)

    def make_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device)

    def render_vector(self, transition: Transition, index: int) -> np.ndarray:
        """What a renderer draws for batch row ``index``: the decoded obs, else the latent."""
        if transition.obs is not None:
            return transition.obs[index].cpu().numpy()
        return self.model.latent(transition.state[index : index + 1])[0].detach().cpu().numpy()


def merge_rows(base: TensorDict, rows: torch.Tensor, new: TensorDict) -> TensorDict:
    """``base`` with ``new``'s entries written at batch ``rows`` (fresh episodes inside a running batch)."""
    missing = sorted(set(new.keys(True, True)) - set(base.keys(True, True)), key=str)
    if missing:
        raise ValueError(f"the model's start states have entries {missing} that its imagined states lack")
    merged = base.clone()
    for key in new.keys(True, True):
        merged.get(key)[rows] = new.get(key).to(merged.get(key).dtype)
    return merged
