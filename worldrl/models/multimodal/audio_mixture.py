"""The next step's audio as a mixture of K spectra: a categorical over components, each a diagonal Gaussian.

A contact whose timing is uncertain makes the next frame's log-mel bimodal (ringing on, or not yet): a point
prediction (the conditional mean) spreads it over frames and never shows an onset. The mixture keeps the modes
apart; the generator samples the component like a frame code (temperature, top-k, top-p) and feeds its mean back.
A greedy rollout feeds back a point prediction chosen by a rule of ``GREEDY_AUDIO``: the mixture's mean (lowest
expected squared error) or the most likely component's mean. Pure functions on ``logits [..., K]``, ``means [..., K,
F]``, ``log_scales [..., K, F]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LOG_SCALE_RANGE = (-3.0, 2.0)
"""Bounds of the per-bin log standard deviation (normalised units): keeps the likelihood finite on silent bins."""


def bounded_log_scales(raw: torch.Tensor) -> torch.Tensor:
    """Raw head outputs squashed smoothly into ``LOG_SCALE_RANGE``."""
    lo, hi = LOG_SCALE_RANGE
    return lo + (hi - lo) * torch.sigmoid(raw)


def mixture_nll(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``x [..., F]`` per feature (divided by F), shape ``[...]``."""
    z = (x[..., None, :] - means) * torch.exp(-log_scales)
    log_normal = (-0.5 * z.pow(2) - log_scales - 0.5 * math.log(2 * math.pi)).sum(-1)  # [..., K]
    log_joint = torch.log_softmax(logits.float(), -1) + log_normal
    return -torch.logsumexp(log_joint, -1) / x.shape[-1]


def mixture_mean(logits: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The conditional mean ``[..., F]`` (the prediction with the lowest expected squared error)."""
    return (torch.softmax(logits.float(), -1)[..., None].to(means.dtype) * means).sum(-2)


def component_means(means: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The chosen components' means ``[..., F]`` for ``index [...]`` long."""
    return means.gather(-2, index[..., None, None].expand(*index.shape, 1, means.shape[-1])).squeeze(-2)


def mode_mean(logits: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The most likely component's mean ``[..., F]``."""
    return component_means(means, logits.argmax(-1))


GREEDY_AUDIO: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mixture_mean,
    "mode": mode_mean,
}
"""What a greedy rollout takes as the next audio from ``(logits, means)``. ``mean``: the conditional mean; a contact
of uncertain timing is spread over frames (no sharp onset), but the squared error of the rollout is lowest. ``mode``:
the most likely spectrum, which keeps onsets sharp but, fed back, compounds towards the likeliest future (measured in
docs/benchmarks.md, "Multimodal family")."""


def greedy_audio(logits: torch.Tensor, means: torch.Tensor, rule: str) -> torch.Tensor:
    """The greedy next audio ``[..., F]`` under ``rule`` (a key of ``GREEDY_AUDIO``)."""
    if rule not in GREEDY_AUDIO:
        raise ValueError(f"greedy audio rule must be one of {sorted(GREEDY_AUDIO)}, got {rule!r}")
    return GREEDY_AUDIO[rule](logits, means)


def choose_components(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Component indices ``[...]``: argmax without a generator, else a categorical sample."""
    if generator is None:
        return logits.argmax(-1)
    flat = torch.softmax(logits.float(), -1).reshape(-1, logits.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])


def rollout_error(
    mixture: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    feature: torch.Tensor,
    audio: torch.Tensor,
    pair_mask: torch.Tensor,
    horizon: int,
    rule: str = "mean",
    cue: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error of an open-loop audio rollout: from each window's first true spectrum, ``mixture(feature
    [B, F'], current [B, F])`` (a dict with ``audio_logits``/``audio_components``) is applied ``horizon`` steps on
    the features ``feature [B, T, F']`` of each step, feeding back the greedy audio of ``rule`` (a key of
    ``GREEDY_AUDIO``: what a greedy rollout feeds back; the gradient flows through it), scored against ``audio [B,
    T, F]``; steps after the episode ends (``pair_mask [B, T-1]``) are left out. ``cue [B, T, C]``: the physics
    head's per-step cue, passed as ``mixture(feature, current, cue)`` (``audio_state_cue``)."""
    current, alive = audio[:, 0], torch.ones_like(pair_mask[:, 0])
    total, count = audio.new_zeros(()), audio.new_zeros(())
    for k in range(1, min(horizon, audio.shape[1] - 1) + 1):
        out = mixture(feature[:, k - 1], current) if cue is None else mixture(feature[:, k - 1], current, cue[:, k - 1])
        current = greedy_audio(out["audio_logits"], out["audio_components"], rule)
        alive = alive & pair_mask[:, k - 1]
        m = alive.to(audio.dtype)
        total = total + ((current - audio[:, k]).pow(2).mean(-1) * m).sum()
        count = count + m.sum()
    return total / count.clamp_min(1.0)


__all__ = [
    "GREEDY_AUDIO",
    "LOG_SCALE_RANGE",
    "bounded_log_scales",
    "choose_components",
    "component_means",
    "greedy_audio",
    "mixture_mean",
    "mixture_nll",
    "mode_mean",
    "rollout_error",
]
