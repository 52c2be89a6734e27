"""TorchRL replay buffers (and collector batches) as worldrl replay: what a world model trains from.

``replay_from_torchrl(buffer)`` reads the rows a ``torchrl.collectors.Collector`` wrote into a
``torchrl.data.ReplayBuffer`` (or any tensordict of such rows, batch ``[N]`` or ``[envs, N]``) in TorchRL's layout:
``observation``, ``action``, ``("next", "observation" | "reward" | "terminated" | "truncated" | "done")`` and
``("collector", "traj_ids")``. It returns a ``worldrl.data.replay.ReplayBuffer`` whose rows follow the LeRobot
convention the trainer reads (``obs_t``, ``action_t``, the reward and flags of that step), so
``replay.windows(T)`` feeds ``worldrl.training.Trainer`` directly. Episodes split where the trajectory id changes or
after a done row; rows keep the buffer's storage order (a circular buffer that wrapped starts mid-episode, which
only costs that one episode its start).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from worldrl.data.replay import ReplayBuffer
from worldrl.errors import DatasetError


def _rows(source: Any) -> TensorDictBase:
    if isinstance(source, TensorDictBase):
        td = source
    else:  # a torchrl.data.ReplayBuffer: its storage's rows, in storage order
        td = source[: len(source)] if len(source) else None
        if td is None:
            raise DatasetError("the TorchRL replay buffer is empty: collect into it first")
    if td.batch_dims > 1:  # [envs, time]: one env's rows after another
        td = td.reshape(-1, td.shape[-1]).unbind(0)
        td = torch.cat(list(td), 0)
    return td


def _check_finite(columns: dict[Any, np.ndarray]) -> None:
    """NaN or inf in the rows would train a model on garbage: refused up front, naming the entry and the row."""
    for key, values in columns.items():
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            raise DatasetError(
                f"the TorchRL rows' {key!r} entry holds NaN or inf in {int(bad.sum())} row(s), first at row "
                f"{int(np.argmax(bad))} (storage order)"
            )


def replay_from_torchrl(source: Any, obs_key: Any = "observation", capacity: int | None = None) -> ReplayBuffer:
    """A worldrl ``ReplayBuffer`` with the rows of a TorchRL replay buffer or collector tensordict."""
    td = _rows(source)
    for key in (obs_key, "action", ("next", "reward"), ("next", obs_key)):
        if key not in td.keys(True):
            raise DatasetError(
                f"the TorchRL rows have no {key!r} entry (keys: {sorted(map(str, td.keys(True, True)))})"
            )
    n = td.shape[0]
    flag = lambda key: (
        td.get(("next", key)).reshape(n).bool().cpu().numpy() if ("next", key) in td.keys(True) else np.zeros(n, bool)
    )  # noqa: E731
    terminated, truncated = flag("terminated"), flag("truncated")
    done = flag("done") | terminated | truncated
    if ("collector", "traj_ids") in td.keys(True):
        traj = td.get(("collector", "traj_ids")).reshape(n).cpu().numpy()
        new_traj = np.concatenate([[True], traj[1:] != traj[:-1]])
    else:
        new_traj = np.zeros(n, bool)
    starts = new_traj | np.concatenate([[True], done[:-1]])
    episode = np.cumsum(starts) - 1
    obs = td.get(obs_key).float().cpu().numpy()
    next_obs = td.get(("next", obs_key)).float().cpu().numpy()
    action = td.get("action").float().cpu().numpy().reshape(n, -1)
    reward = td.get(("next", "reward")).float().cpu().numpy().reshape(n)
    _check_finite({"observation": obs, "action": action, ("next", "reward"): reward, ("next", "observation"): next_obs})
    replay = ReplayBuffer(tuple(obs.shape[1:]), action.shape[1], capacity=capacity or max(n, 1))
    for i in range(n):
        replay.add(
            obs[i],
            action[i],
            reward[i],
            terminated[i],
            truncated[i] and not terminated[i],
            next_obs[i],
            int(episode[i]),
        )
    return replay


__all__ = ["replay_from_torchrl"]


def random_slice_buffer(env_id: str, frames: int, slices: int, slice_len: int, seed: int = 0) -> Any:
    """``frames`` random-policy steps of the real ``env_id`` (TorchRL's ``GymEnv`` and ``Collector``) in a TorchRL
    ``ReplayBuffer`` whose ``SliceSampler`` draws ``slices`` whole-episode slices of ``slice_len`` steps per sample:
    the buffer a model-based TorchRL script starts from (and ``replay_from_torchrl`` reads)."""
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, SliceSampler
    from torchrl.data import ReplayBuffer as TorchRLReplayBuffer
    from torchrl.envs import GymEnv

    env = GymEnv(env_id)
    env.set_seed(seed)
    sampler = SliceSampler(slice_len=slice_len, traj_key=("collector", "traj_ids"), strict_length=True)
    buffer = TorchRLReplayBuffer(storage=LazyTensorStorage(frames), sampler=sampler, batch_size=slices * slice_len)
    collector = Collector(env, None, frames_per_batch=min(1000, frames), total_frames=frames)
    for batch in collector:
        buffer.extend(batch.reshape(-1))
    collector.shutdown()
    return buffer
