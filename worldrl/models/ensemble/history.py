"""Short observation/action histories for an ensemble whose observation hides part of the state.

PushT observes positions only: the pusher's velocity, which its PD controller carries from step to step, is
not in the observation, so a Markov ``(obs_t, action_t)`` model cannot tell a pusher at rest from one still
moving (measured: one-step pusher error 10.8 px with the current step alone, 4.5 px with one past step). A
history of H past steps gives the members ``obs_t - obs_{t-1}``, ... and ``a_{t-1}``, ... as extra inputs.

All functions are pure and work on windows ``[B, T, ...]`` as ``observe`` and the trainer hand them over.
Before an episode's first step there is nothing: past observations repeat the first one (zero velocity) and
past actions are zero, which is how an episode starts.
"""

from __future__ import annotations

import torch


def episode_start(is_first: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` index of the latest step ``<= t`` marked ``is_first`` (0 when the window holds none)."""
    positions = torch.arange(is_first.shape[1], device=is_first.device).expand_as(is_first)
    marked = torch.where(is_first, positions, torch.zeros_like(positions))
    return torch.cummax(marked, dim=1).values


def _gather_steps(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values [B, T, F]`` at step ``index [B, T, H]`` -> ``[B, T, H, F]``."""
    batch, steps, history = index.shape
    flat = index.reshape(batch, steps * history, 1).expand(-1, -1, values.shape[-1])
    return torch.gather(values, 1, flat).reshape(batch, steps, history, values.shape[-1])


def past_steps(
    obs: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor, history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``history`` steps before each step of a window, most recent first.

    Returns ``obs_{t-1-k}`` ``[B, T, H, D]`` (the episode's first observation where that is before it) and
    ``a_{t-1-k}`` ``[B, T, H, A]`` (zero before the episode; ``prev_action[t]`` is ``a_{t-1}``).
    """
    start = episode_start(is_first).unsqueeze(-1)  # [B, T, 1]
    steps = torch.arange(obs.shape[1], device=obs.device).view(1, -1, 1)
    lag = torch.arange(history, device=obs.device).view(1, 1, -1)
    obs_index = torch.maximum(steps - 1 - lag, start)
    action_step = steps - lag  # prev_action at step t - k holds a_{t-1-k}
    actions = _gather_steps(prev_action, torch.maximum(action_step, start))
    actions = actions * (action_step >= start).unsqueeze(-1).to(actions.dtype)
    return _gather_steps(obs, obs_index.expand(obs.shape[0], -1, -1)), actions


def history_complete(is_first: torch.Tensor, history: int) -> torch.Tensor:
    """``[B, T]``: the window holds step t's whole history, or the episode starts inside it.

    Training rows whose history is cut off by the start of a window (not of an episode) would teach the model
    that a moving pusher is at rest, so the loss leaves them out.
    """
    start = episode_start(is_first)
    steps = torch.arange(is_first.shape[1], device=is_first.device).expand_as(start)
    starts_here = torch.gather(is_first, 1, start)
    return (steps - history >= start) | starts_here
