"""Real collection of the online loop in N env processes (``OnlineConfig.collect_envs``, ``--collect-envs N``).

Gymnasium's ``AsyncVectorEnv`` steps N copies of the real env in N worker processes (the engine ``worldrl collect
--num-envs`` uses too); the agent acts on the batch of N observations, as in evaluation. Same-step autoreset: a
finished env's last observation arrives in ``info["final_obs"]`` and the agent forgets only that env
(``agent.reset([i])``).

The replay buffer needs each episode's rows together, so transitions wait per env and are written as one segment
when the episode ends, or when ``collect`` returns: an episode still running then is cut, its rows so far become
one segment and its continuation a new one (the buffer's windows never span the cut; a LeRobot export keeps only
segments that end an episode). Episode ids in the buffer are segment ids.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from worldrl.data.replay import ReplayBuffer
from worldrl.errors import ConfigError


class VectorRealCollector:
    """``RealCollector``'s interface over ``num_envs`` real envs in worker processes."""

    def __init__(self, env_id: str, num_envs: int, replay: ReplayBuffer, seed: int) -> None:
        from worldrl.tasks.real_envs import make_real_env

        makers = [partial(make_real_env, env_id) for _ in range(num_envs)]
        self.env = gym.vector.AsyncVectorEnv(makers, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.env.action_space.seed(seed)
        self.replay, self.num_envs = replay, num_envs
        self.obs, _ = self.env.reset(seed=[seed + i for i in range(num_envs)])
        self.pending: list[list[tuple[Any, ...]]] = [[] for _ in range(num_envs)]
        self.running = np.zeros(num_envs)
        self.next_segment = 0
        self.finished_returns: list[float] = []

    def collect(self, steps: int, agent: Any, random_actions: bool) -> None:
        if steps % self.num_envs:
            raise ConfigError(f"{steps} real steps cannot be shared by {self.num_envs} envs (not a multiple)")
        for _ in range(steps // self.num_envs):
            actions = self.env.action_space.sample() if random_actions else agent.act(self.obs, deterministic=False)
            actions = np.asarray(actions, np.float32).reshape(self.num_envs, -1)
            next_obs, reward, terminated, truncated, info = self.env.step(actions)
            done = np.logical_or(terminated, truncated)
            last = np.array(next_obs, copy=True)
            for i in np.flatnonzero(done):
                last[i] = info["final_obs"][i]
            for i in range(self.num_envs):
                self.pending[i].append((self.obs[i], actions[i], reward[i], terminated[i], truncated[i], last[i]))
            self.running += reward
            for i in np.flatnonzero(done):
                self._flush(int(i))
                self.finished_returns.append(float(self.running[i]))
                self.running[i] = 0.0
            if done.any():
                agent.reset([int(i) for i in np.flatnonzero(done)])
            self.obs = next_obs
        for i in range(self.num_envs):
            self._flush(i)

    def _flush(self, i: int) -> None:
        if self.pending[i]:
            for row in self.pending[i]:
                self.replay.add(*row, self.next_segment)
            self.pending[i], self.next_segment = [], self.next_segment + 1

    def pop_returns(self) -> list[float]:
        returns, self.finished_returns = self.finished_returns, []
        return returns

    def close(self) -> None:
        self.env.close()


__all__ = ["VectorRealCollector"]
