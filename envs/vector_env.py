"""``WorldModelVectorEnv``: N copies of a learned simulator stepped by ONE batched model call per step.

The native ``vector_entry_point`` of ``WorldModel-v0`` (``gym.make_vec("WorldModel-v0", num_envs=N, ...)``).
Autoreset follows Gymnasium 1.x and is chosen with ``autoreset_mode``:

* ``"next_step"`` (default, Gymnasium's default): the step after an episode ends returns that env's new start
  observation, reward 0 and ``terminated = truncated = False``, and ignores its action;
* ``"same_step"`` (what Stable-Baselines3 expects): the step that ends an episode already returns the new start
  observation, with the last one in ``info["final_obs"]`` (mask ``info["_final_obs"]``), as ``SyncVectorEnv`` does.
  Finished rows restart from a fresh start state, so recurrent models keep the running rows' memory.

Time limits are per-env step counters (``max_episode_steps``; default: the task's). All per-step work is
torch/numpy over the batch.

Seeding: ``reset(seed=s)`` draws env i's start as a single ``WorldModelEnv`` does after ``reset(seed=s + i)``
(and ``seed=[s_0, ..., s_{N-1}]`` as after ``reset(seed=s_i)``), so with ``sample=False`` the batch reproduces N
single envs exactly; later autoreset starts come from the vector env's own ``np_random``. Sampled imagination
(``sample=True``) draws from one ``torch.Generator`` for the whole batch.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldrl.envs.options import EnvOptions
from worldrl.envs.rendering import Renderer, Size, make_renderer
from worldrl.envs.simulator import Transition, check_batch_fits, merge_rows, open_simulator, put_rows
from worldrl.envs.start_states import check_in_space
from worldrl.envs.world_model_env import RESET_OPTIONS
from worldrl.errors import EnvError
from worldrl.models import observations as keyed
from worldrl.models.base import WorldModel


class WorldModelVectorEnv(VectorEnv):
    """A batch of learned simulators; the constructor takes ``WorldModelEnv``'s arguments (``EnvOptions``) plus
    ``num_envs``, the time limit and the autoreset mode. ``reset(options={"goal": goals})`` takes one goal per env."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        model: WorldModel | str | os.PathLike | None = None,
        *,
        render_mode: str | None = None,
        render_size: Size = (240, 240),
        max_episode_steps: int | None = None,
        time_limit: int | str | None = "task",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        options: EnvOptions | None = None,
        **option_fields: Any,
    ) -> None:
        if num_envs < 1:
            raise EnvError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if model is not None:
            option_fields["model"] = model
        setup = open_simulator(EnvOptions.from_kwargs(options, option_fields))
        check_batch_fits(setup.sim, setup.pool, num_envs)  # before batch_space allocates num_envs bounds
        self.model, self.sim, self._pool, self._default_goal = setup.model, setup.sim, setup.pool, setup.goal
        self.task = self.model.task
        self.task_id = self.task.task_id
        self.num_envs = num_envs
        self.single_observation_space = self.sim.single_observation_space
        self.single_action_space = self.sim.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.max_episode_steps = self._time_limit(max_episode_steps, time_limit)
        self.render_mode, self.render_size = render_mode, tuple(render_size)
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {
            **self.metadata,
            "render_fps": int(round(self.task.fps)) or 30,
            "autoreset_mode": self.autoreset_mode,
        }
        self._generator = self.sim.make_generator()
        self._current: Transition | None = None
        self._goals: torch.Tensor | None = None
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._renderer: Renderer | None = None

    def _time_limit(self, max_episode_steps: int | None, time_limit: int | str | None) -> int | None:
        """``max_episode_steps`` (what gym.make_vec passes) wins over ``time_limit`` (as for ``gym.make``)."""
        steps = max_episode_steps if max_episode_steps is not None else time_limit
        steps = self.task.max_episode_steps if steps == "task" else steps
        if steps is not None and not (isinstance(steps, (int, np.integer)) and steps > 0):
            raise EnvError(f"max_episode_steps / time_limit must be a positive int or None, got {steps!r}")
        return None if steps is None else int(steps)

    # ----------------------------------------------------------------- reset
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = self._seeds(seed)
        if seed is not None or self._np_random is None:  # unseeded resets continue the current generator
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        if seeds[0] is not None:
            self._generator.manual_seed(seeds[0])
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise EnvError(f"unknown reset option(s) {unknown}; supported: {list(RESET_OPTIONS)}")
        self._goals = self._episode_goals(options)
        self._current = self.sim.start(self._start_observations(seeds, options))
        self._steps[:] = 0
        self._autoreset[:] = False
        return self.sim.to_numpy(self._current.view), {}

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise EnvError(f"reset(seed=...) got {len(seeds)} seeds for {self.num_envs} envs")
        return seeds

    def _start_observations(self, seeds: list[int | None], options: dict[str, Any]) -> Any:
        if "observation" in options:
            obs = options["observation"]
            if keyed.batch_size_of(obs) != self.num_envs:
                raise EnvError(
                    f"options['observation'] holds {keyed.batch_size_of(obs)} observations for {self.num_envs} envs"
                )
            check_in_space(obs, self.task)
            return obs
        size = keyed.batch_size_of(self._pool)
        index = self.np_random.integers(size, size=self.num_envs)
        for i, s in enumerate(seeds):  # seeded envs draw as a single env's first reset with that seed does
            if s is not None:
                index[i] = seeding.np_random(s)[0].integers(size)
        return keyed.row(self._pool, index)

    def _episode_goals(self, options: dict[str, Any]) -> torch.Tensor | None:
        """Goal embeddings ``[N, D]``: ``options["goal"]`` (one per env) or the default goal for all."""
        if "goal" in options:
            if not self.sim.uses_goal:
                raise EnvError(f"options['goal'] is given but reward={self.sim.reward_source!r}; use reward='goal'")
            return self.sim.embed_goal(options["goal"])
        if self.sim.uses_goal and self._default_goal is None:
            raise EnvError("reward='goal' needs goals: reset(options={'goal': obs_batch}) or goal= when making the env")
        return None if self._default_goal is None else self._default_goal.expand(self.num_envs, -1)

    # ----------------------------------------------------------------- step
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._current is None:
            raise RuntimeError("WorldModelVectorEnv.step() called before reset(): call reset() first")
        act = self.sim.check_actions(actions, (self.num_envs,))
        t = self.sim.step(self._current.state, self._current.obs, act, self._generator, self._goals)
        reward = t.reward.cpu().numpy().astype(np.float64)
        terminated = t.terminated.cpu().numpy().copy()
        self._steps += 1
        truncated = self._truncated()
        restart = np.flatnonzero(self._autoreset)
        if restart.size:  # next-step mode: rows that ended last step start over now
            t = self._restart(t, restart)
            reward[restart], terminated[restart], truncated[restart] = 0.0, False, False
            self._steps[restart] = 0
        diverged = t.diverged.cpu().numpy().copy()
        # gymnasium's vector-info convention: a value per env and a "_key" mask of the envs it applies to.
        info: dict[str, Any] = {"model_diverged": diverged, "_model_diverged": np.ones(self.num_envs, dtype=bool)}
        ended = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            t, info = self._restart_same_step(t, np.flatnonzero(ended), info)
        else:
            self._autoreset = ended
        self._current = t
        return self.sim.to_numpy(t.view), reward, terminated, truncated, info

    def _restart_same_step(self, t: Transition, rows: np.ndarray, info: dict[str, Any]) -> tuple[Transition, dict]:
        """Same-step mode: finished rows return their next start now; the last observation goes to the info."""
        if not rows.size:
            return t, info
        final, diverged = self.sim.to_numpy(t.view), info["model_diverged"]
        for i in rows:  # gymnasium's own helper builds the object array and the "_final_obs" mask
            row = {"final_obs": keyed.row(final, int(i)), "final_info": {"model_diverged": bool(diverged[i])}}
            info = self._add_info(info, row, int(i))
        self._steps[rows] = 0
        return self._restart(t, rows), info

    def _truncated(self) -> np.ndarray:
        if self.max_episode_steps is None:
            return np.zeros(self.num_envs, dtype=bool)
        return self._steps >= self.max_episode_steps

    def _restart(self, t: Transition, rows: np.ndarray) -> Transition:
        """Replace the finished envs' imagined steps by fresh starts (one batched ``observe`` call)."""
        draw = self.np_random.integers(keyed.batch_size_of(self._pool), size=rows.size)
        fresh = self.sim.start(keyed.row(self._pool, draw))
        index = torch.as_tensor(rows, device=self.sim.device)
        return Transition(
            state=merge_rows(t.state, index, fresh.state),
            obs=put_rows(t.obs, index, fresh.obs),
            view=put_rows(t.view, index, fresh.view),
            reward=put_rows(t.reward, index, fresh.reward),
            terminated=put_rows(t.terminated, index, fresh.terminated),
            diverged=put_rows(t.diverged, index, fresh.diverged),
        )

    # ----------------------------------------------------------------- render / close
    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make_vec")
            return None
        if self._current is None:
            raise RuntimeError("render() called before reset()")
        if self._renderer is None:
            self._renderer = make_renderer(self.task, self.render_size, self.sim.can_decode)
        return tuple(self._renderer(self.sim.render_vector(self._current, i)) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """An ``AutoresetMode`` from itself, its value (``"SameStep"``) or its snake-case name (``"same_step"``)."""
    # DISABLED is not offered: it needs a per-row reset API that the batched simulator does not expose.
    supported = {m: m for m in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)}
    supported.update({m.value: m for m in list(supported)} | {m.name.lower(): m for m in list(supported)})
    if not isinstance(mode, (AutoresetMode, str)) or mode not in supported:
        names = sorted(k for k in supported if isinstance(k, str) and "_" in k)
        raise EnvError(f"autoreset_mode must be one of {names} (or a gymnasium AutoresetMode), got {mode!r}")
    return supported[mode]
