"""Where imagination starts: model states observed on real data, as Dreamer starts its rollouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict


def observed_start_states(model: Any, windows: Any, batch: int, rng: np.random.Generator) -> TensorDict:
    """Posterior states of ``batch`` random real windows, flattened to ``[N]`` (padding steps dropped).

    Starting imagined rollouts from states the model inferred from real observations keeps the learner on the
    part of the state space the real env visits, where the model was trained.
    """
    from worldrl.training.trainer import collate_windows, to_task_shapes

    items = [windows[int(i)] for i in rng.integers(len(windows), size=batch)]
    b = to_task_shapes(collate_windows(items), model.task).to(model.device)
    prev = torch.zeros_like(b["action"])
    prev[:, 1:] = b["action"][:, :-1]
    prev[b["is_first"]] = 0.0
    with torch.no_grad():
        states = model.observe(b["obs"], prev, b["is_first"])
    return states[b["mask"]]


__all__ = ["observed_start_states"]
