"""Privileged supervision: dataset vectors the model predicts from its latent but never observes.

A pixel model's frame loss barely notices a small object that moved by a few pixels (PushT's block), so its
dynamics can fit the frames while imagining the object standing still. A head on the latent (h, z) that has to
predict the object's recorded state (the block's keypoints) on filtered, one-step and open-loop imagined states
makes the dynamics carry that motion. The keys are training targets only: ``observe``, planning and the env keep
reading frames. Sizes come from the task (``TaskSpec.extra["supervision_dims"]``, written by ``worldrl train``)
so a checkpoint rebuilds the head without the dataset.

With ``motion`` on, the head predicts how far each key moved since the last real observation instead of its value,
in units of a running RMS of those motions. In absolute units a block pushed by a few pixels is a rounding error of
its position's spread, so the loss barely sees the pushes that planning needs imagined; the motion's own scale
makes them the whole target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from worldrl.errors import ModelConfigurationError
from worldrl.models.task_spec import SUPERVISION_DIMS
from worldrl.nn.mlp import mlp
from worldrl.nn.normalizer import Normalizer

MOTION_MOMENTUM = 0.99
"""Weight of the old value in the running RMS of the motion targets (about the last 100 batches)."""
MOTION_FLOOR = 0.01
"""Smallest motion RMS per dimension, as a fraction of the key's own std: a key that barely moves in a batch is
not blown up into noise (and never divided by zero)."""


def supervision_dims(keys: Sequence[str], extra: Mapping[str, Any]) -> dict[str, int]:
    """``{key: size}`` of ``keys`` from a task's ``extra``; a key without a recorded size is a one-line error."""
    known = dict(extra.get(SUPERVISION_DIMS) or {})
    missing = [k for k in keys if k not in known]
    if missing:
        raise ModelConfigurationError(
            f"vrnn supervision_keys {missing} have no recorded size in the task (extra[{SUPERVISION_DIMS!r}] = "
            f"{known}); `worldrl train` records them from the dataset"
        )
    return {k: int(known[k]) for k in keys}


class SupervisionHead(nn.Module):
    """``feat [..., F]`` -> the supervision keys' values (normalised inside, task units outside)."""

    def __init__(self, in_features: int, hidden: int, dims: Mapping[str, int], motion: bool = False) -> None:
        super().__init__()
        self.keys, self.sizes, self.motion = list(dims), [int(d) for d in dims.values()], motion
        total = sum(self.sizes)
        self.net = mlp(in_features, [hidden], total)
        self.norm = Normalizer((total,))
        if motion:  # buffers, so a reloaded head predicts in the scale it was trained in
            self.register_buffer("motion_rms", torch.ones(total))
            self.register_buffer("motion_updates", torch.zeros((), dtype=torch.long))

    def fit_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Fit the normaliser from each key's dataset statistics (``mean``/``std`` per key, concatenated)."""
        if not all(k in stats for k in self.keys):
            return  # the trainer passes what it has; a head without statistics trains in raw units
        flat = lambda name: torch.cat(
            [torch.as_tensor(stats[k][name], dtype=torch.float32).reshape(-1) for k in self.keys]
        )  # noqa: E731
        self.norm.fit(flat("mean"), flat("std"))

    def raw(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The keys' values ``{key: [B, T, ...]}`` -> ``[B, T, total]`` in task units."""
        return torch.cat([values[k].float().flatten(2) for k in self.keys], -1)

    def targets(self, now: torch.Tensor, since: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Training targets of states at values ``now [..., total]`` (task units) whose last real step recorded
        ``since``: the normalised values, or with ``motion`` the motion since then (``motion_targets``)."""
        return self.motion_targets(now - since, valid) if self.motion else self.norm(now)

    def motion_targets(self, moved: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``motion``: displacements ``[..., total]`` (task units) -> units of the running RMS. In training mode the
        RMS first absorbs the ``valid [...]`` rows (an exponential average, momentum ``MOTION_MOMENTUM``; the first
        batch sets it)."""
        if self.training and bool(valid.any()):
            with torch.no_grad():
                rms = moved[valid].pow(2).mean(0).sqrt()
                keep = MOTION_MOMENTUM if int(self.motion_updates) else 0.0
                self.motion_rms.mul_(keep).add_((1.0 - keep) * torch.maximum(rms, MOTION_FLOOR * self.norm.std))
                self.motion_updates.add_(1)
        return moved / self.motion_rms

    def squared_error(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error per row ``[...]`` of the prediction from ``feat [..., F]`` (normalised units)."""
        return (self.net(feat) - target).pow(2).mean(-1)

    def predict(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{key: [..., size]}`` in task units (with ``motion``: moved since the last real observation)."""
        out = self.net(feat) * self.motion_rms if self.motion else self.norm.denormalize(self.net(feat))
        return dict(zip(self.keys, out.split(self.sizes, -1), strict=True))


__all__ = ["SupervisionHead", "supervision_dims"]
