"""``WorldModelTorchRLEnv``: the learned simulator as a stateless, batch-unlocked TorchRL environment.

Everything the next step needs travels in the tensordict: the model's state (its TensorDict, nested under
``"wm_state"``), the observation, and (latent mode with task rewards) the decoded observation. So the env holds
no per-episode state, any batch shape works (a reset tensordict of batch ``[B]`` or ``[B, K]`` sets it), and
TorchRL's MPC planners (``torchrl.modules.planners.CEMPlanner`` / ``MPPIPlanner``) can expand a state over
candidate action sequences and roll it out.

Keys: ``observation`` (decoded observation or latent, see ``obs_mode``), ``wm_state``, optionally
``decoded_observation``, and with ``reward="goal"`` ``goal_embedding`` (set at reset from a ``goal_observation``
entry or the env's ``goal=``); ``model_diverged [..., 1]`` (bool: the model predicted NaN or inf this step, as the
Gymnasium env's ``info["model_diverged"]``; the value was replaced by 0 and the episode terminates); ``action``; ``reward [..., 1]``; ``done``/``terminated``/``truncated [..., 1]`` (never
truncated: add ``torchrl.envs.transforms.StepCounter(max_steps)`` for time limits). Reset draws start states as
``WorldModelEnv`` does, or starts from ``reset(TensorDict({"start_observation": obs}, batch))``. Seeding
(``set_seed``) seeds the start draws and the imagination ``torch.Generator`` (used when ``sample=True``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, TensorSpec, Unbounded
from torchrl.envs import EnvBase

from worldrl.envs.options import EnvOptions
from worldrl.envs.simulator import Transition, check_batch_fits, open_simulator
from worldrl.errors import EnvError
from worldrl.models import observations as keyed
from worldrl.models.base import WorldModel

START_KEY = "start_observation"
"""Reset tensordict entry that starts episodes from given observations ``[*batch, *obs_shape]``."""
GOAL_OBS_KEY = "goal_observation"
"""Reset tensordict entry with goal observations ``[*batch, *obs_shape]`` (``reward="goal"``)."""
DIVERGED_KEY = "model_diverged"
"""Per-step flag ``[*batch, 1]``: a non-finite prediction (observation, reward or termination) in this row."""
GOAL_KEY = "goal_embedding"
"""The goal's embedding ``[*batch, D]``: carried from step to step with ``reward="goal"`` (the env is stateless)."""


def leaf_spec(value: torch.Tensor, device: torch.device) -> TensorSpec:
    """Spec of one per-element state tensor (``value`` has a leading batch dim of 1)."""
    shape = value.shape[1:]
    if value.dtype == torch.bool:
        return Categorical(2, shape=shape, dtype=torch.bool, device=device)
    return Unbounded(shape=shape, dtype=value.dtype, device=device)


def state_spec(state: TensorDictBase, device: torch.device) -> Composite:
    """A Composite mirroring a model state's (nested) entries, per batch element."""
    entries = {
        key: state_spec(value, device) if isinstance(value, TensorDictBase) else leaf_spec(value, device)
        for key, value in state.items()
    }
    return Composite(entries, shape=(), device=device)


def box_spec(low: np.ndarray, high: np.ndarray, dtype: torch.dtype, device: torch.device) -> TensorSpec:
    """Bounded where every bound is finite, else Unbounded (TorchRL cannot mix)."""
    if np.isfinite(low).all() and np.isfinite(high).all():
        low_t, high_t = torch.as_tensor(low, dtype=dtype), torch.as_tensor(high, dtype=dtype)
        return Bounded(low_t, high_t, shape=low.shape, dtype=dtype, device=device)
    return Unbounded(shape=low.shape, dtype=dtype, device=device)


class WorldModelTorchRLEnv(EnvBase):
    """A learned simulator for TorchRL; takes ``WorldModelEnv``'s model and option arguments."""

    batch_locked = False

    def __init__(
        self,
        model: WorldModel | str | os.PathLike | None = None,
        *,
        options: EnvOptions | None = None,
        **option_fields: Any,
    ) -> None:
        if model is not None:
            option_fields["model"] = model
        setup = open_simulator(EnvOptions.from_kwargs(options, option_fields))
        super().__init__(device=setup.model.device)
        self.model, self.sim, self._default_goal = setup.model, setup.sim, setup.goal
        self.task = self.model.task
        self.task_id = self.task.task_id
        self.keeps_decoded = self.sim.obs_mode == "latent" and self.sim.task_functions is not None
        self._pool = keyed.to_torch(setup.pool, self.task, "cpu", 1, what="start states")
        self._start_generator = torch.Generator()
        self._generator = self.sim.make_generator()
        self._checked_batch = 1
        self._make_specs()

    # ----------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        reference = self.sim.start(keyed.row(self._pool, slice(0, 1)))
        self._state_keys = list(reference.state.keys(True, True))
        flag = Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
        observation = {
            "observation": self._view_spec(),
            "wm_state": state_spec(reference.state, self.device),
            DIVERGED_KEY: flag.clone(),
        }
        if self.keeps_decoded:
            task_space = self.task.observation_space
            observation["decoded_observation"] = Unbounded(task_space.shape, dtype=torch.float32, device=self.device)
        if self.sim.uses_goal:
            dim = self.sim.embed_goal(keyed.row(self._pool, slice(0, 1))).shape[-1]
            observation[GOAL_KEY] = Unbounded((dim,), dtype=torch.float32, device=self.device)
        self.observation_spec = Composite(observation, shape=())
        action = self.sim.single_action_space
        self.action_spec = box_spec(action.low, action.high, torch.float32, self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=())

    def _view_spec(self) -> TensorSpec:
        """``observation``: the latent or the decoded observation, a Composite of keys for keyed tasks."""
        space = self.sim.single_observation_space
        if isinstance(space, gym.spaces.Dict):
            return Composite({key: self._box(sub) for key, sub in space.spaces.items()}, shape=(), device=self.device)
        return self._box(space)

    def _box(self, space: gym.spaces.Box) -> TensorSpec:
        dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        return box_spec(space.low, space.high, dtype, self.device)

    # ----------------------------------------------------------------- reset / step
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        batch = tensordict.batch_size if tensordict is not None else self.batch_size
        count = math.prod(batch)
        if count > self._checked_batch:  # a batch-unlocked env takes any batch: refuse one beyond memory
            check_batch_fits(self.sim, self._pool, count)
            self._checked_batch = count
        if tensordict is not None and START_KEY in tensordict.keys():
            starts = (
                keyed.to_torch(tensordict.get(START_KEY).reshape(count), self.task, self.device, 1, START_KEY)
                if self.task.is_keyed
                else tensordict.get(START_KEY).reshape(count, *self.task.obs_shape)
            )
        else:
            draw = torch.randint(keyed.batch_size_of(self._pool), (count,), generator=self._start_generator)
            starts = keyed.row(self._pool, draw)
        transition = self.sim.start(starts)
        out = self._output(transition, batch, self._reset_goals(tensordict, count))
        return out.exclude("reward")  # rewards belong to steps only

    def _reset_goals(self, tensordict: TensorDictBase | None, count: int) -> torch.Tensor | None:
        """Goal embeddings ``[count, D]`` from a ``goal_observation`` entry, else the default goal."""
        if not self.sim.uses_goal:
            return None
        if tensordict is not None and GOAL_OBS_KEY in tensordict.keys():
            goal = tensordict.get(GOAL_OBS_KEY).reshape(count, *([] if self.task.is_keyed else self.task.obs_shape))
            return self.sim.embed_goal(goal)
        if self._default_goal is None:
            raise EnvError(f"reward='goal' needs goals: a {GOAL_OBS_KEY!r} entry in the reset tensordict or goal=")
        return self._default_goal.expand(count, -1)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        batch = tensordict.batch_size
        flat = tensordict.reshape(-1)
        if "action" not in flat.keys():
            raise EnvError("the step tensordict has no 'action' entry")
        if "wm_state" not in flat.keys():
            raise EnvError("the step tensordict has no 'wm_state' entry: step the tensordict that reset() returned")
        action = self.sim.check_action_tensor(flat.get("action"))
        state = flat.get("wm_state").to(self.sim.device)
        goal = flat.get(GOAL_KEY) if self.sim.uses_goal else None
        transition = self.sim.step(state, self._task_obs(flat), action, self._generator, goal)
        return self._output(transition, batch, goal)

    def _task_obs(self, flat: TensorDictBase) -> Any:
        """The decoded observation the task functions score the transition from."""
        if self.sim.obs_mode == "observation":
            obs = flat.get("observation")
            return obs.float() if isinstance(obs, torch.Tensor) else obs
        return flat.get("decoded_observation") if self.keeps_decoded else None

    def _output(self, t: Transition, batch: torch.Size, goal: torch.Tensor | None = None) -> TensorDictBase:
        count = t.reward.shape[0]
        terminated = t.terminated.reshape(count, 1).bool()
        out = {
            "observation": self._as_spec_dtype(t.view),
            "wm_state": t.state.select(*self._state_keys, strict=True),
            "reward": t.reward.reshape(count, 1).float(),
            "terminated": terminated,
            "done": terminated.clone(),
            DIVERGED_KEY: t.diverged.reshape(count, 1).bool(),
            "truncated": torch.zeros_like(terminated),
        }
        if self.keeps_decoded:
            out["decoded_observation"] = t.obs
        if goal is not None:
            out[GOAL_KEY] = goal
        return TensorDict(out, batch_size=[count], device=self.device).reshape(batch)

    def _as_spec_dtype(self, view: Any) -> Any:
        spec = self.observation_spec["observation"]
        if isinstance(view, TensorDictBase):
            entries = {
                key: view[key].round().to(torch.uint8) if spec[key].dtype == torch.uint8 else view[key]
                for key in view.keys()
            }
            return TensorDict(entries, batch_size=view.batch_size, device=view.device)
        return view.round().to(torch.uint8) if spec.dtype == torch.uint8 else view

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self._start_generator.manual_seed(seed)
        self._generator.manual_seed(seed + 1)
