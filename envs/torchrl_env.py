"""``WorldModelTorchRLEnv``: the learned simulator as a stateless, batch-unlocked TorchRL environment.

Everything the next step needs travels in the tensordict: the model's state (its TensorDict, nested under
``"wm_state"``), the observation, and (latent mode with task rewards) the decoded observation. So the env holds
no per-episode state, any batch shape works (a reset tensordict of batch ``[B]`` or ``[B, K]`` sets it), and
TorchRL's MPC planners (``torchrl.modules.planners.CEMPlanner`` / ``MPPIPlanner``) can expand a state over
candidate action sequences and roll it out.

Keys: ``observation`` (decoded observation or latent, see ``obs_mode``), ``wm_state``, optionally
``decoded_observation``; ``action``; ``reward [..., 1]``; ``done``/``terminated``/``truncated [..., 1]`` (never
truncated: add ``torchrl.envs.transforms.StepCounter(max_steps)`` for time limits). Reset draws start states as
``WorldModelEnv`` does, or starts from ``reset(TensorDict({"start_observation": obs}, batch))``. Seeding
(``set_seed``) seeds the start draws and the imagination ``torch.Generator`` (used when ``sample=True``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, TensorSpec, Unbounded
from torchrl.envs import EnvBase

from worldrl.envs.simulator import LearnedSimulator, SimulatorOptions, Transition, resolve_model, start_pool
from worldrl.models.base import WorldModel

START_KEY = "start_observation"
"""Reset tensordict entry that starts episodes from given observations ``[*batch, *obs_shape]``."""


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
        device: str | torch.device | None = None,
        obs_mode: str | None = None,
        reward: str | None = None,
        termination: str | None = None,
        start_states: Any | None = None,
        dataset: str | os.PathLike | None = None,
        sample: bool = False,
        action_policy: str = "clip",
        terminal_threshold: float = 0.5,
        task_id: str | None = None,
        start_pool_size: int = 1024,
    ) -> None:
        options = SimulatorOptions(
            obs_mode, reward, termination, sample, action_policy, terminal_threshold, start_pool_size
        )
        wm = resolve_model(model, device, task_id)
        super().__init__(device=wm.device)
        self.model = wm
        self.sim = LearnedSimulator(wm, options)
        self.task = wm.task
        self.task_id = self.task.task_id
        self.keeps_decoded = self.sim.obs_mode == "latent" and self.sim.task_functions is not None
        pool = start_pool(self.task, start_states, dataset, options.start_pool_size, self.model.start_states)
        self._pool = torch.as_tensor(pool)
        self._start_generator = torch.Generator()
        self._generator = self.sim.make_generator()
        self._make_specs()

    # ----------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        reference = self.sim.start(self._pool[:1])
        self._state_keys = list(reference.state.keys(True, True))
        space = self.sim.single_observation_space
        obs_dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        observation = {
            "observation": box_spec(space.low, space.high, obs_dtype, self.device),
            "wm_state": state_spec(reference.state, self.device),
        }
        if self.keeps_decoded:
            task_space = self.task.observation_space
            observation["decoded_observation"] = Unbounded(task_space.shape, dtype=torch.float32, device=self.device)
        self.observation_spec = Composite(observation, shape=())
        action = self.sim.single_action_space
        self.action_spec = box_spec(action.low, action.high, torch.float32, self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        flag = Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=())

    # ----------------------------------------------------------------- reset / step
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        batch = tensordict.batch_size if tensordict is not None else self.batch_size
        count = math.prod(batch)
        if tensordict is not None and START_KEY in tensordict.keys():
            starts = tensordict.get(START_KEY).reshape(count, *self.task.obs_shape)
        else:
            starts = self._pool[torch.randint(len(self._pool), (count,), generator=self._start_generator)]
        transition = self.sim.start(starts)
        return self._output(transition, batch).exclude("reward")  # rewards belong to steps only

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        batch = tensordict.batch_size
        flat = tensordict.reshape(-1)
        action = self.sim.check_action_tensor(flat.get("action"))
        state = flat.get("wm_state").to(self.sim.device)
        transition = self.sim.step(state, self._task_obs(flat), action, self._generator)
        return self._output(transition, batch)

    def _task_obs(self, flat: TensorDictBase) -> torch.Tensor | None:
        """The decoded observation the task functions score the transition from."""
        if self.sim.obs_mode == "observation":
            return flat.get("observation").float()
        return flat.get("decoded_observation") if self.keeps_decoded else None

    def _output(self, t: Transition, batch: torch.Size) -> TensorDictBase:
        count = t.view.shape[0]
        terminated = t.terminated.reshape(count, 1).bool()
        view = t.view.round().to(torch.uint8) if self.observation_spec["observation"].dtype == torch.uint8 else t.view
        out = {
            "observation": view,
            "wm_state": t.state.select(*self._state_keys, strict=True),
            "reward": t.reward.reshape(count, 1).float(),
            "terminated": terminated,
            "done": terminated.clone(),
            "truncated": torch.zeros_like(terminated),
        }
        if self.keeps_decoded:
            out["decoded_observation"] = t.obs
        return TensorDict(out, batch_size=[count], device=self.device).reshape(batch)

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self._start_generator.manual_seed(seed)
        self._generator.manual_seed(seed + 1)
