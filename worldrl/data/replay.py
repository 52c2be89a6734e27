"""In-memory real experience for the online loop, served as training windows like ``WindowDataset``.

The online loop refits the world model every few thousand real steps; re-reading a LeRobot dataset from
disk each time would cost more than the fit, so real transitions live in growable numpy arrays and are
written out as a LeRobot dataset once, at the end (``to_lerobot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class ReplayBuffer:
    """Rows follow the LeRobot convention: obs_t, action_t, reward/terminated/truncated of that step."""

    obs_shape: tuple[int, ...]
    action_dim: int
    capacity: int = 1_000_000
    _obs: list[np.ndarray] = field(default_factory=list)
    _action: list[np.ndarray] = field(default_factory=list)
    _reward: list[float] = field(default_factory=list)
    _terminated: list[bool] = field(default_factory=list)
    _truncated: list[bool] = field(default_factory=list)
    _episode: list[int] = field(default_factory=list)
    _next_obs: list[np.ndarray] = field(default_factory=list)
    num_episodes: int = 0

    def add(self, obs, action, reward, terminated, truncated, next_obs, episode: int) -> None:
        if len(self._obs) >= self.capacity:
            raise RuntimeError(f"replay buffer full ({self.capacity} rows); raise capacity")
        self._obs.append(np.asarray(obs, np.float32).reshape(self.obs_shape))
        self._action.append(np.asarray(action, np.float32).reshape(self.action_dim))
        self._reward.append(float(reward))
        self._terminated.append(bool(terminated))
        self._truncated.append(bool(truncated))
        self._next_obs.append(np.asarray(next_obs, np.float32).reshape(self.obs_shape))
        self._episode.append(int(episode))
        self.num_episodes = max(self.num_episodes, int(episode) + 1)

    def __len__(self) -> int:
        return len(self._obs)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "obs": np.stack(self._obs),
            "action": np.stack(self._action),
            "reward": np.asarray(self._reward, np.float32),
            "terminated": np.asarray(self._terminated, bool),
            "truncated": np.asarray(self._truncated, bool),
            "next_obs": np.stack(self._next_obs),
            "episode": np.asarray(self._episode, np.int64),
        }

    def windows(self, window: int, episodes: np.ndarray | None = None) -> ReplayWindows:
        return ReplayWindows(self.arrays(), window, episodes)

    def sample_obs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Observations drawn uniformly from all real rows (start states for branched model rollouts)."""
        idx = rng.integers(0, len(self), size=n)
        return np.stack([self._obs[i] for i in idx])

    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """``fit_normalization`` statistics of the rows: obs, action, reward, and ``delta`` (next obs - obs) for
        delta-predicting models."""
        a = self.arrays()
        stats = {k: {"mean": a[k].mean(0), "std": a[k].std(0)} for k in ("obs", "action", "reward")}
        delta = a["next_obs"] - a["obs"]
        stats["delta"] = {"mean": delta.mean(0), "std": delta.std(0)}
        return stats

    def to_lerobot(self, root: str | Path, fps: int, task: str, overwrite: bool = True):
        """Write the real experience as a LeRobot v3.0 dataset (state features only)."""
        from worldrl.data import LeRobotDatasetWriter

        a = self.arrays()
        features = {
            "observation.state": {"dtype": "float32", "shape": list(self.obs_shape), "names": None},
            "action": {"dtype": "float32", "shape": [self.action_dim], "names": None},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
            "next.truncated": {"dtype": "bool", "shape": [1], "names": None},
        }
        with LeRobotDatasetWriter.create(root, fps=fps, features=features, overwrite=overwrite) as writer:
            for ep in np.unique(a["episode"]):
                rows = np.flatnonzero(a["episode"] == ep)
                if not (a["terminated"][rows[-1]] or a["truncated"][rows[-1]]):
                    continue  # the episode still running when the loop stopped is not a whole episode
                for i in rows:
                    writer.add_frame(
                        {
                            "observation.state": a["obs"][i],
                            "action": a["action"][i],
                            "next.reward": np.array([a["reward"][i]], np.float32),
                            "next.done": np.array([a["terminated"][i] or a["truncated"][i]]),
                            "next.terminated": np.array([a["terminated"][i]]),
                            "next.truncated": np.array([a["truncated"][i]]),
                        },
                        task=task,
                    )
                writer.save_episode()
            return writer.finalize()


class ReplayWindows(Dataset):
    """Windows of ``window`` rows that never cross episodes, padded past the end with ``mask=False``.

    Same item layout as ``worldrl.data.WindowDataset``, so the shared trainer consumes either.
    """

    def __init__(self, arrays: dict[str, np.ndarray], window: int, episodes: np.ndarray | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.a = arrays
        self.window = window
        ep = arrays["episode"]
        keep = np.ones(len(ep), bool) if episodes is None else np.isin(ep, episodes)
        self.starts = np.flatnonzero(keep)
        boundary = np.concatenate([[True], ep[1:] != ep[:-1]])
        self.is_first = boundary
        # Exclusive end row of each row's episode (rows of one episode are contiguous).
        ends = np.flatnonzero(np.concatenate([boundary[1:], [True]])) + 1
        self.end_of = np.repeat(ends, np.diff(np.concatenate([[0], ends])))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = int(self.starts[i])
        rows = np.arange(start, start + self.window)
        valid = rows < self.end_of[start]
        rows = np.minimum(rows, self.end_of[start] - 1)
        pick = lambda key: self.a[key][rows]  # noqa: E731
        zero = lambda x: x * valid.reshape(-1, *([1] * (x.ndim - 1)))  # noqa: E731
        return {
            "obs": torch.from_numpy(zero(pick("obs")).astype(np.float32)),
            "action": torch.from_numpy(zero(pick("action")).astype(np.float32)),
            "reward": torch.from_numpy(zero(pick("reward")).astype(np.float32)),
            "terminated": torch.from_numpy(pick("terminated") & valid),
            "is_first": torch.from_numpy(self.is_first[rows] & valid),
            "mask": torch.from_numpy(valid),
            "episode_index": torch.tensor(int(self.a["episode"][start])),
        }
