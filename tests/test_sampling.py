"""Decoding math of the multimodal generator: filters, temperature 0 = greedy, beam search never below greedy."""

from __future__ import annotations

import itertools

import pytest
import torch

from worldrl.errors import ModelConfigurationError
from worldrl.models.multimodal.sampling import (
    SamplingSettings,
    beam_search,
    greedy_decode,
    sample_codes,
    sequence_log_prob,
    top_k_filter,
    top_p_filter,
)

K, N = 4, 2  # codes per position, positions per frame


def toy_model(seed: int, sharpness: float = 3.0):
    """A random autoregressive code model: the next frame's logits depend on every code of the previous frame and
    on a fed-back side value ("level": a running count of code 0, as the generator feeds back predicted audio)."""
    g = torch.Generator().manual_seed(seed)
    table = sharpness * torch.randn(N, K, N, K, generator=g)  # (prev position, prev code) -> next logits
    bias = sharpness * torch.randn(N, K, generator=g)
    level_weight = sharpness * torch.randn(N, K, generator=g)

    def step(codes: torch.Tensor, side: dict) -> tuple[torch.Tensor, dict]:
        logits = bias.expand(codes.shape[0], N, K).clone()
        level = side["level"][:, -1]
        logits += torch.cos(level)[:, None, None] * level_weight
        if codes.shape[1] > 0:
            prev = codes[:, -1]  # [beams, N]
            for j in range(N):
                logits += table[j, prev[:, j]]
            level = level + (prev == 0).sum(-1)
        return logits.log_softmax(-1), {"level": level.float()}

    return step


def empty(batch: int | None = 1):
    """A prefix of no frames and its one side value (the level before the first frame)."""
    codes, level = torch.zeros(0, N, dtype=torch.long), torch.zeros(1)
    if batch is None:
        return codes, {"level": level}
    return codes[None].expand(batch, 0, N), {"level": level[None].expand(batch, 1)}


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.5, 0.3]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()[torch.tensor([2, 0, 3, 1])]  # shuffled: [0.15, 0.5, 0.05, 0.3]
    assert torch.isfinite(top_p_filter(logits, 0.75)).tolist() == [False, True, False, True]
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [False, True, False, True]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [True, True, False, True]
    assert torch.isfinite(top_p_filter(logits, 0.01)).tolist() == [False, True, False, False]  # the top code stays


def test_sampling_follows_the_filtered_distribution():
    logits = torch.tensor([0.0, 1.0, 2.0, 3.0]).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    codes = sample_codes(logits, temperature=1.0, top_k=2, generator=g)
    assert set(codes.unique().tolist()) == {2, 3}
    p3 = (codes == 3).float().mean().item()
    assert abs(p3 - torch.sigmoid(torch.tensor(1.0)).item()) < 0.02  # e^3 / (e^2 + e^3)


def test_temperature_zero_is_greedy():
    logits = torch.randn(64, N, K, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sample_codes(logits, temperature=0.0), logits.argmax(-1))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_codes(logits, temperature=1e-4, top_k=0, top_p=1.0, generator=g), logits.argmax(-1))
    # Sequence level: temperature-0 sampling decodes exactly the greedy sequence.
    step = toy_model(3)
    codes, side = empty()
    for _ in range(6):
        log_probs, new = step(codes, side)
        codes = torch.cat([codes, sample_codes(log_probs, temperature=0.0)[:, None]], dim=1)
        side = {"level": torch.cat([side["level"], new["level"][:, None]], 1)}
    greedy, greedy_side = greedy_decode(step, *empty(), 6)
    assert torch.equal(codes, greedy) and torch.equal(side["level"], greedy_side["level"])


@pytest.mark.parametrize("seed", range(20))
def test_beam_search_is_never_less_likely_than_greedy(seed):
    step = toy_model(seed)
    greedy, _ = greedy_decode(step, *empty(), 5)
    greedy_lp = float(sequence_log_prob(step, greedy, empty()[1], start=0))
    for beam_size in (1, 2, 3, 5):
        result = beam_search(step, *empty(None), num_steps=5, beam_size=beam_size)
        assert result.log_prob >= greedy_lp - 1e-9
        rescored = float(sequence_log_prob(step, result.codes[None], empty()[1], start=0))
        assert result.log_prob == pytest.approx(rescored, abs=1e-9)
        replayed = empty()[1]
        for t in range(5):  # the side values it returns are those its own codes produce
            new = step(result.codes[None, :t], replayed)[1]["level"]
            replayed = {"level": torch.cat([replayed["level"], new[:, None]], 1)}
        assert torch.equal(result.side["level"], replayed["level"][0])
        if beam_size == 1:
            assert torch.equal(result.codes, greedy[0])


def test_a_wide_beam_finds_the_exact_optimum_that_greedy_misses():
    """Exhaustive search over all K^(N*3) sequences of a small model: a beam as wide as every two-frame prefix
    (K^(2N)) keeps every hypothesis, so it must find the optimum, and on some seeds that beats greedy strictly."""
    strict_wins = 0
    for seed in range(12):
        step = toy_model(seed, sharpness=1.5)
        frames = list(itertools.product(range(K), repeat=N))
        every = torch.tensor(list(itertools.product(frames, repeat=3)), dtype=torch.long)  # [K^(N*3), 3, N]
        best = float(sequence_log_prob(step, every, empty(len(every))[1], start=0).max())
        result = beam_search(step, *empty(None), num_steps=3, beam_size=K ** (2 * N))
        assert result.log_prob == pytest.approx(best, abs=1e-9)
        strict_wins += result.log_prob > result.greedy_log_prob + 1e-6
    assert strict_wins > 0


def test_beam_search_continues_a_prefix():
    step = toy_model(5)
    prefix = torch.tensor([[1, 2], [3, 0]])
    result = beam_search(step, prefix, {"level": torch.tensor([0.0, 1.0])}, num_steps=3, beam_size=4)
    assert result.codes.shape == (5, N) and result.side["level"].shape == (5,)
    assert torch.equal(result.codes[:2], prefix)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_p": 0.0}, "top_p must lie in (0, 1], got 0.0"),
        ({"top_p": 1.5}, "top_p must lie in (0, 1], got 1.5"),
        ({"top_p": float("nan")}, "top_p must lie in (0, 1]"),
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"beam_size": 0}, "beam_size must be an integer >= 1"),
    ],
)
def test_out_of_range_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ModelConfigurationError) as err:
        SamplingSettings(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "top_p" in kwargs:
        with pytest.raises(ModelConfigurationError, match="top_p"):
            sample_codes(torch.zeros(2, K), top_p=kwargs["top_p"])
