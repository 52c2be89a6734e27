"""Decoding math over categorical code distributions: temperature, top-k, top-p (nucleus), greedy and beam search.

Pure functions on logits ``[..., K]`` (K codes of the frame tokenizer), independent of any model. A frame is N codes
whose next-frame distributions the model predicts together, ``[beams, N, K]``, given the codes so far; the codes of one
frame are conditionally independent given the past, so beam search expands a frame position by position with one
model call per frame (``beam_search``). Values the model predicts alongside a frame and feeds back (the next audio
features, the next state) travel with their sequence as "side" values.

Randomness only from a ``torch.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from worldrl.errors import ModelConfigurationError

Side = dict[str, torch.Tensor]
"""Per-sequence values the model predicts alongside the codes and feeds back (audio features, state), each
``[beams, time, ...]`` and one step longer per generated frame; deterministic given the codes, so they follow their
sequence through the beam."""
StepFn = Callable[[torch.Tensor, Side], tuple[torch.Tensor, Side]]
"""``(codes [beams, t, N] long, side) -> (next-frame log-probabilities [beams, N, K], next side values
{name: [beams, ...]})``; ``t`` grows from the prefix length."""


@dataclass(frozen=True)
class SamplingSettings:
    """How the next frame's codes are chosen from the model's categorical distributions."""

    temperature: float = 1.0
    """Divides the logits; 0 means greedy (argmax)."""
    top_k: int = 50
    """Keep the k most likely codes per position (0 keeps all)."""
    top_p: float = 0.95
    """Keep the smallest set of codes whose probability reaches top_p (nucleus sampling); in (0, 1]."""
    beam_size: int = 1
    """> 1: beam search over whole frames (deterministic, ignores temperature/top-k/top-p)."""

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p, self.beam_size)


def check_sampling(temperature: float, top_k: int, top_p: float, beam_size: int) -> None:
    """One-line ModelConfigurationError naming the first setting out of range."""
    if not temperature >= 0.0:  # also refuses NaN
        raise ModelConfigurationError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if int(top_k) != top_k or top_k < 0:
        raise ModelConfigurationError(f"top_k must be an integer >= 0 (0 keeps every code), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ModelConfigurationError(f"top_p must lie in (0, 1], got {top_p}")
    if int(beam_size) != beam_size or beam_size < 1:
        raise ModelConfigurationError(f"beam_size must be an integer >= 1, got {beam_size}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits`` with all but the ``k`` largest of the last dimension set to -inf (``k`` 0 or >= K: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely codes until their probability reaches ``p``; the top code always stays."""
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a code when the codes ranked above it already reach p (so the first code is never dropped).
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p, as most samplers apply them (temperature must be > 0 here)."""
    return top_p_filter(top_k_filter(logits / temperature, top_k), top_p)


def sample_codes(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One code per distribution of ``logits [..., K]``; temperature 0 returns the argmax (greedy)."""
    check_sampling(temperature, top_k, top_p, 1)
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float(), temperature, top_k, top_p).softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def _append(side: Side, new: Side, rows: torch.Tensor | None = None) -> Side:
    """``side`` (reindexed by ``rows``) with each sequence's next values appended in time."""
    out = {}
    for name, value in new.items():
        past = side[name] if rows is None else side[name][rows]
        out[name] = torch.cat([past, value[:, None].to(past.dtype)], dim=1)
    return out


def sequence_log_prob(step: StepFn, codes: torch.Tensor, side: Side, start: int) -> torch.Tensor:
    """Log-likelihood ``[B]`` of frames ``start..T-1`` of ``codes [B, T, N]`` given the frames before and the prefix's
    side values ``side`` (``[B, time, ...]``); later side values are the model's own (teacher forcing on codes)."""
    total = torch.zeros(codes.shape[0], dtype=torch.float64, device=codes.device)
    for t in range(start, codes.shape[1]):
        log_probs, new = step(codes[:, :t], side)
        total += log_probs.double().gather(-1, codes[:, t, :, None]).squeeze(-1).sum(-1)
        side = _append(side, new)
    return total


def greedy_decode(step: StepFn, prefix: torch.Tensor, side: Side, num_steps: int) -> tuple[torch.Tensor, Side]:
    """``prefix [B, t, N]`` extended by ``num_steps`` frames of argmax codes: ``([B, t + num_steps, N], side)``."""
    codes = prefix
    for _ in range(num_steps):
        log_probs, new = step(codes, side)
        codes = torch.cat([codes, log_probs.argmax(-1)[:, None]], dim=1)
        side = _append(side, new)
    return codes, side


@dataclass
class BeamResult:
    codes: torch.Tensor
    """The best sequence, ``[t + num_steps, N]`` (prefix included)."""
    side: Side
    """Its side values, the prefix's followed by one per generated frame."""
    log_prob: float
    """Its log-likelihood over the generated frames."""
    greedy_log_prob: float
    """The greedy sequence's log-likelihood over the same frames (never above ``log_prob``)."""


def beam_search(step: StepFn, prefix: torch.Tensor, side: Side, num_steps: int, beam_size: int) -> BeamResult:
    """The most likely continuation of one ``prefix [t, N]`` (side values ``{name: [time, ...]}``) a beam finds.

    Within a frame the N codes are independent given the past, so keeping the ``beam_size`` best partial frames
    position by position gives exactly the ``beam_size`` best (beam, frame) extensions. Across frames an
    autoregressive model can make the beam prune the greedy path, so the greedy sequence is decoded alongside and
    returned when it ends above the beam: the result is never less likely than greedy decoding.
    """
    check_sampling(1.0, 0, 1.0, beam_size)
    start = prefix.shape[0]
    beams, beam_side = prefix[None], {name: value[None] for name, value in side.items()}
    scores = torch.zeros(1, dtype=torch.float64, device=prefix.device)
    for _ in range(num_steps):
        log_probs, new = step(beams, beam_side)
        log_probs = log_probs.double()  # [beams, N, K]
        parents = torch.arange(beams.shape[0], device=prefix.device)
        frame = torch.zeros(beams.shape[0], 0, dtype=torch.long, device=prefix.device)
        for position in range(log_probs.shape[1]):
            candidates = scores[:, None] + log_probs[parents, position]  # [hyps, K]
            keep = candidates.flatten().topk(min(beam_size, candidates.numel())).indices
            hyp, code = keep // candidates.shape[1], keep % candidates.shape[1]
            scores, parents = candidates.flatten()[keep], parents[hyp]
            frame = torch.cat([frame[hyp], code[:, None]], dim=1)
        beams = torch.cat([beams[parents], frame[:, None]], dim=1)
        beam_side = _append(beam_side, {name: value[parents] for name, value in new.items()}, parents)
    best = int(scores.argmax())
    greedy, greedy_side = greedy_decode(step, prefix[None], {k: v[None] for k, v in side.items()}, num_steps)
    greedy_score = float(sequence_log_prob(step, greedy, {k: v[None] for k, v in side.items()}, start))
    if greedy_score > float(scores[best]):
        return BeamResult(greedy[0], {k: v[0] for k, v in greedy_side.items()}, greedy_score, greedy_score)
    return BeamResult(beams[best], {k: v[best] for k, v in beam_side.items()}, float(scores[best]), greedy_score)


__all__ = [
    "BeamResult",
    "SamplingSettings",
    "Side",
    "StepFn",
    "beam_search",
    "check_sampling",
    "filter_logits",
    "greedy_decode",
    "sample_codes",
    "sequence_log_prob",
    "top_k_filter",
    "top_p_filter",
]
