"""The learned simulator core shared by the Gymnasium env, the native vector env and the TorchRL env.

``LearnedSimulator`` holds, on torch batches, everything an environment adds to a world model: action checks,
the reward and termination source (``worldrl.models.step_scoring``), goals, observation clipping, seeding and
rendering. The single env (batch 1), the vector env (batch N) and the TorchRL env all delegate to it, so they
behave identically. See ``worldrl.envs.world_model_env`` for the user-facing semantics. Observations are keyed
where the task is (``worldrl.models.observations``): a tensor per step for one key, a TensorDict for several.
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
from worldrl.envs.options import ACTION_POLICIES, OBS_MODES, EnvOptions
from worldrl.envs.start_states import dataset_episode_starts, real_env_starts, start_pool  # noqa: F401  (re-export)
from worldrl.errors import EnvError
from worldrl.models import observations as keyed
from worldrl.models.base import Capabilities, WorldModel
from worldrl.models.checkpoint import load_pretrained
from worldrl.models.step_scoring import REWARD_SOURCES, TERMINATION_SOURCES, StepScoring

SimulatorOptions = EnvOptions
"""The former name of ``EnvOptions``."""


# =========================================================================== model
def resolve_model(
    model: WorldModel | str | os.PathLike | None,
    device: str | torch.device | None,
    task_id: str | None = None,
    revision: str | None = None,
) -> WorldModel:
    """A ready model from an instance, a checkpoint dir / Hub id (at ``revision``), or None (the bundled default).

    ``device=None`` keeps an instance where it is and loads checkpoints on the CPU. ``task_id`` asserts what the
    checkpoint simulates: a model trained for another task is refused.
    """
    if revision is not None and not isinstance(model, (str, os.PathLike)):
        given = type(model).__name__ if model is not None else "the bundled default model"
        raise EnvError(f"revision={revision!r} applies to a Hub id given as model=, not to {given}")
    if model is None:
        model = require_default_model()
    if isinstance(model, WorldModel):
        if device is not None and torch.device(device) != model.device:
            model = model.to(device)
    elif isinstance(model, (str, os.PathLike)):
        model = load_pretrained(model, device=device or "cpu", revision=revision)
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


# =========================================================================== batched core
@dataclass
class Transition:
    """One batched step of the learned simulator (all torch, batch first)."""

    state: TensorDict
    obs: keyed.Observation | None
    """Decoded, clipped observation (None for models that cannot decode)."""
    view: keyed.Observation
    """What the agent sees: ``obs`` or the latent."""
    reward: torch.Tensor
    terminated: torch.Tensor
    diverged: torch.Tensor


class LearnedSimulator:
    """The environment logic around a world model on batches: action checks, step, reward, termination, goals."""

    def __init__(self, model: WorldModel, options: EnvOptions) -> None:
        self.model, self.options, self.task = model, options, model.task
        caps = capabilities_of(model)
        self.can_decode = caps.can_decode
        self.obs_mode = options.obs_mode or ("observation" if caps.can_decode else "latent")
        if self.obs_mode == "observation" and not caps.can_decode:
            raise EnvError(f"{type(model).__name__} cannot decode observations: use obs_mode='latent'")
        try:
            self.scoring = StepScoring.resolve(model, options.reward, options.termination)
        except ValueError as err:
            raise EnvError(str(err)) from None
        self.reward_source, self.termination_source = self.scoring.reward_source, self.scoring.termination_source
        self.task_functions = self.scoring.task_functions
        self.device = model.device
        self.single_observation_space = self._observation_space()
        self.single_action_space: gym.spaces.Box = self.task.action_space
        self._bounds = {
            key: (
                torch.as_tensor(space.low, dtype=torch.float32, device=self.device),
                torch.as_tensor(space.high, dtype=torch.float32, device=self.device),
                np.issubdtype(space.dtype, np.integer),
            )
            for key, space in self.task.key_spaces().items()
        }
        self.action_low = np.asarray(self.single_action_space.low, dtype=np.float64)
        self.action_high = np.asarray(self.single_action_space.high, dtype=np.float64)

    def _observation_space(self) -> gym.Space:
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
            raise TypeError(f"action must be numeric, got dtype {array.dtype} (shape {array.shape})")
        if array.shape != expected:
            space = self.single_action_space
            raise ValueError(f"action has shape {array.shape}, expected {expected} (the action space is {space})")
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            bad = (~np.isfinite(array)).reshape(-1, self.task.action_dim).any(-1).nonzero()[0]
            raise ValueError(f"action contains NaN or inf (rows {bad[:5].tolist()} of the batch)")
        array = self._bound(array, action)
        return torch.as_tensor(array.reshape(-1, self.task.action_dim), dtype=torch.float32, device=self.device)

    def check_action_tensor(self, action: torch.Tensor) -> torch.Tensor:
        """The same checks on a torch action ``[..., A]`` (TorchRL); returns float32 on the model's device."""
        if action.shape[-1:] != (self.task.action_dim,):
            raise ValueError(f"action has shape {tuple(action.shape)}, expected (..., {self.task.action_dim})")
        if not torch.isfinite(action).all():
            bad = (~torch.isfinite(action)).reshape(-1, action.shape[-1]).any(-1).nonzero().reshape(-1)
            raise ValueError(f"action contains NaN or inf (rows {bad[:5].tolist()} of the flattened batch)")
        low = torch.as_tensor(self.action_low, dtype=action.dtype, device=action.device).reshape(-1)
        high = torch.as_tensor(self.action_high, dtype=action.dtype, device=action.device).reshape(-1)
        if self.options.action_policy == "error" and ((action < low) | (action > high)).any():
            worst = float(torch.maximum(low - action, action - high).max()) if action.numel() else 0.0
            raise ValueError(
                f"action outside the action space [{low.tolist()}, {high.tolist()}] (by up to {worst:.4g}); "
                "action_policy='clip' clips instead"
            )
        return torch.clamp(action, low, high).to(device=self.device, dtype=torch.float32)

    def _bound(self, array: np.ndarray, original: Any) -> np.ndarray:
        low, high = self.action_low, self.action_high
        if self.options.action_policy == "error" and ((array < low) | (array > high)).any():
            worst = float(np.maximum(low - array, array - high).max())
            raise ValueError(
                f"action is outside the action space {self.single_action_space} (by up to {worst:.4g}); "
                "action_policy='clip' clips instead"
            )
        return np.clip(array, low, high)

    # ----------------------------------------------------------------- goals
    @property
    def uses_goal(self) -> bool:
        return self.reward_source == "goal"

    def embed_goal(self, goal: Any) -> torch.Tensor:
        """Goal observations ``[B, ...]`` (numpy or torch, keyed where the task is) -> embeddings ``[B, D]``."""
        obs = keyed.to_torch(goal, self.task, self.device, 1, what="goal observation")
        with torch.no_grad():
            return self.model.embed(obs).float()

    # ----------------------------------------------------------------- starts and steps
    def start(self, observations: Any) -> Transition:
        """Encode start observations ``[B, *obs_shape]`` (a fresh episode each)."""
        obs = keyed.to_torch(observations, self.task, self.device, 1, what="start observation")
        batch = keyed.batch_size_of(obs)
        prev_action = torch.zeros(batch, 1, self.task.action_dim, device=self.device)
        is_first = torch.ones(batch, 1, dtype=torch.bool, device=self.device)
        sequence = obs.unsqueeze(1) if isinstance(obs, TensorDict) else obs[:, None]
        with torch.no_grad():
            state = self.model.observe_last(sequence, prev_action, is_first)
            decoded, diverged = self._decode(state)
            view = self._view(state, decoded)
        zeros = torch.zeros(batch, device=self.device)
        return Transition(state, decoded, view, zeros, torch.zeros_like(diverged), diverged)

    def step(
        self,
        state: TensorDict,
        obs: keyed.Observation | None,
        action: torch.Tensor,
        generator: torch.Generator | None,
        goal: torch.Tensor | None = None,
    ) -> Transition:
        """One batched ``model.imagine`` and the read-outs of the transition ``(obs, action) -> next``.

        A non-finite prediction (observation, reward or termination) marks the row diverged: its value is
        replaced by 0 (then clipped) and the episode ends, so no agent can learn from a number the model made up.
        """
        with torch.no_grad():
            next_state = self.model.imagine(state, action, generator if self.options.sample else None)
            next_obs, diverged = self._decode(next_state)
            reward = self.scoring.reward(obs, action, next_obs, next_state, goal).float()
            ended = self.scoring.termination_probability(obs, action, next_obs, next_state)
            diverged = diverged | ~torch.isfinite(reward) | ~torch.isfinite(ended)
            reward = torch.where(torch.isfinite(reward), reward, torch.zeros_like(reward))
            ended = torch.nan_to_num(ended, nan=1.0)
            terminated = (ended > self.options.terminal_threshold) | (ended >= 1.0) | diverged
            view = self._view(next_state, next_obs)
        return Transition(next_state, next_obs, view, reward, terminated, diverged)

    def _decode(self, state: TensorDict) -> tuple[keyed.Observation | None, torch.Tensor]:
        batch = state.batch_size[0]
        finite = torch.ones(batch, dtype=torch.bool, device=self.device)
        if not self.can_decode:
            return None, ~finite
        decoded = self.model.decode(state)
        if not self.task.is_keyed:
            obs, finite = self._clip(self.task.obs_key, decoded, finite)
            return obs, ~finite
        entries = {}
        for key in self.task.obs_keys:
            entries[key], finite = self._clip(key, decoded[key], finite)
        return TensorDict(entries, batch_size=[batch], device=self.device), ~finite

    def _clip(self, key: str, value: torch.Tensor, finite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One key's prediction clipped into its space (non-finite -> 0) and the rows' running finiteness."""
        low, high, integer = self._bounds[key]
        value = value.float()
        finite = finite & torch.isfinite(value).reshape(value.shape[0], -1).all(-1)
        value = torch.where(torch.isfinite(value), value, torch.zeros_like(value))
        if integer:
            value = value.round()
        return torch.clamp(value, low, high), finite

    def _view(self, state: TensorDict, obs: keyed.Observation | None) -> keyed.Observation:
        if self.obs_mode == "observation":
            return obs  # type: ignore[return-value]
        latent = self.model.latent(state).float()
        return torch.where(torch.isfinite(latent), latent, torch.zeros_like(latent))

    # ----------------------------------------------------------------- numpy outputs
    def to_numpy(self, view: keyed.Observation) -> np.ndarray | dict[str, np.ndarray]:
        if self.obs_mode == "observation":
            return keyed.to_numpy(view, self.task)
        return view.detach().cpu().numpy().astype(self.single_observation_space.dtype, copy=False)

    def make_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device)

    def render_vector(self, transition: Transition, index: int) -> np.ndarray:
        """What a renderer draws for batch row ``index``: the decoded obs (its first key), else the latent."""
        if transition.obs is not None:
            obs = transition.obs[self.task.obs_key] if self.task.is_keyed else transition.obs
            return obs[index].cpu().numpy()
        return self.model.latent(transition.state[index : index + 1])[0].detach().cpu().numpy()


@dataclass
class SimulatorSetup:
    """What every env front end builds from its ``EnvOptions``."""

    model: WorldModel
    sim: LearnedSimulator
    pool: Any
    """Start observations (``worldrl.envs.start_states``)."""
    goal: torch.Tensor | None
    """Embedding ``[1, D]`` of ``options.goal``, the default goal of every episode."""


def open_simulator(options: EnvOptions) -> SimulatorSetup:
    """Resolve the model, build the simulator, the start pool and the default goal embedding."""
    model = resolve_model(options.model, options.device, options.task_id, options.revision)
    sim = LearnedSimulator(model, options)
    pool = start_pool(model.task, options.start_states, options.dataset, options.start_pool_size, model.start_states)
    goal = None
    if options.goal is not None:
        if not sim.uses_goal:
            raise EnvError(f"goal= is given but reward={sim.reward_source!r}; use reward='goal' to reward reaching it")
        goal = sim.embed_goal(batched(options.goal))
    return SimulatorSetup(model, sim, pool, goal)


BATCH_MEMORY_HEADROOM = 4
"""Multiple of the measured per-env bytes a batch may need at once (step intermediates, copies, numpy outputs)."""


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (host RAM for the CPU), or None where the platform does not say."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _nbytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return sum(_nbytes(v) for v in value.values(include_nested=True, leaves_only=True))


def bytes_per_env(sim: LearnedSimulator, pool: Any) -> int:
    """Bytes one env row holds, measured on one start: model state, observation, view, and its spaces' bounds."""
    first = sim.start(keyed.row(pool, slice(0, 1)))
    spaces = [sim.single_observation_space, sim.single_action_space]
    boxes = [b for s in spaces for b in (s.spaces.values() if isinstance(s, gym.spaces.Dict) else [s])]
    bounds = sum(2 * b.low.nbytes for b in boxes)
    return _nbytes(first.state) + _nbytes(first.obs) + _nbytes(first.view) + bounds


def check_batch_fits(sim: LearnedSimulator, pool: Any, num_envs: int) -> None:
    """Refuse ``num_envs`` rows (``pool``: start observations) that cannot fit in the device's free memory."""
    free = available_memory(sim.device)
    if free is None:
        return
    per_env = bytes_per_env(sim, pool)
    need = BATCH_MEMORY_HEADROOM * per_env * int(num_envs)
    if need > free:
        raise EnvError(
            f"num_envs={num_envs} needs about {need / 2**30:.1f} GiB ({per_env * BATCH_MEMORY_HEADROOM} bytes per env), "
            f"more than the {free / 2**30:.1f} GiB free on {sim.device}; "
            f"at most about {free // (per_env * BATCH_MEMORY_HEADROOM)} envs fit"
        )


def batched(obs: Any) -> Any:
    """One observation (keyed or not) as a batch of one."""
    if isinstance(obs, dict | TensorDict):
        return {key: np.asarray(value)[None] for key, value in obs.items()}
    return np.asarray(obs)[None] if not isinstance(obs, torch.Tensor) else obs[None]


def merge_rows(base: TensorDict, rows: torch.Tensor, new: TensorDict) -> TensorDict:
    """``base`` with ``new``'s entries written at batch ``rows`` (fresh episodes inside a running batch)."""
    missing = sorted(set(new.keys(True, True)) - set(base.keys(True, True)), key=str)
    if missing:
        raise ValueError(f"the model's start states have entries {missing} that its imagined states lack")
    merged = base.clone()
    for key in new.keys(True, True):
        merged.get(key)[rows] = new.get(key).to(merged.get(key).dtype)
    return merged


def put_rows(full: Any, rows: torch.Tensor, part: Any) -> Any:
    """``full`` (a tensor or TensorDict ``[B, ...]``) with ``part`` written at ``rows``; None stays None."""
    if full is None or part is None:
        return full
    full = full.clone()
    full[rows] = part.to(full.dtype) if isinstance(full, torch.Tensor) else part
    return full


__all__ = [
    "ACTION_POLICIES",
    "OBS_MODES",
    "REWARD_SOURCES",
    "TERMINATION_SOURCES",
    "EnvOptions",
    "LearnedSimulator",
    "SimulatorOptions",
    "Transition",
    "capabilities_of",
    "check_batch_fits",
    "merge_rows",
    "open_simulator",
    "put_rows",
    "resolve_model",
    "start_pool",
]
