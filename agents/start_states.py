"""Where imagination starts: model states observed on real data, as Dreamer starts its rollouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict


def observed_start_states(
    model: Any, windows: Any, batch: int, rng: np.random.Generator, first_fraction: float = 0.0
) -> TensorDict:
    """Posterior states of ``batch`` random real windows, flattened to ``[N]`` (padding steps dropped).

    Starting imagined rollouts from states the model inferred from real observations keeps the learner on the
    part of the state space the real env visits, where the model was trained. ``first_fraction`` of the windows
    are drawn among those that open an episode (``ReplayWindows``): drawn uniformly, episode starts are one row in
    an episode's length (2% on Reacher-v5), yet every real episode, and every evaluation, begins there.
    """
    from worldrl.training.trainer import collate_windows, to_task_shapes

    index = rng.integers(len(windows), size=batch)
    firsts = first_window_indices(windows) if first_fraction > 0 else np.empty(0, np.int64)
    if firsts.size:
        count = round(first_fraction * batch)
        index[:count] = firsts[rng.integers(firsts.size, size=count)]
    items = [windows[int(i)] for i in index]
    b = to_task_shapes(collate_windows(items), model.task).to(model.device)
    prev = torch.zeros_like(b["action"])
    prev[:, 1:] = b["action"][:, :-1]
    prev[b["is_first"]] = 0.0
    with torch.no_grad():
        states = model.observe(b["obs"], prev, b["is_first"])
    return states[b["mask"]]


def first_window_indices(windows: Any) -> np.ndarray:
    """Indices of the windows that begin an episode (``ReplayWindows``); none for datasets without that record."""
    starts, is_first = getattr(windows, "starts", None), getattr(windows, "is_first", None)
    if starts is None or is_first is None:
        return np.empty(0, np.int64)
    return np.flatnonzero(np.asarray(is_first)[np.asarray(starts)])


__all__ = ["first_window_indices", "observed_start_states"]
