"""VideoMaskGenerator: context and target are disjoint and cover the grid, the masked fraction follows the
configured ratio, draws are determined by the generator, and bad settings are refused."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldrl.models.vjepa2.masking import STRATEGIES, VideoMaskGenerator

grids = st.tuples(st.integers(2, 6), st.integers(4, 10), st.integers(4, 10))


def _check_pair(gen: VideoMaskGenerator, pair) -> None:
    n = gen.num_tokens
    ctx, tgt = set(pair.context.tolist()), set(pair.target.tolist())
    assert ctx and tgt and not (ctx & tgt)
    assert ctx | tgt == set(range(n))
    assert torch.equal(pair.masked.reshape(-1).nonzero().squeeze(1), pair.target)


@settings(max_examples=40, deadline=None)
@given(grid=grids, strategy=st.sampled_from(STRATEGIES), ratio=st.floats(0.15, 0.85), seed=st.integers(0, 2**31))
def test_context_and_target_partition_the_grid(grid, strategy, ratio, seed) -> None:
    gen = VideoMaskGenerator(grid, strategy, ratio)
    pairs = gen(torch.Generator().manual_seed(seed))
    assert len(pairs) == (2 if strategy == "multiblock" else 1)
    for pair in pairs:
        _check_pair(gen, pair)


@settings(max_examples=40, deadline=None)
@given(
    grid=grids,
    strategy=st.sampled_from(["block", "random", "temporal", "spatial"]),
    ratio=st.floats(0.2, 0.8),
    seed=st.integers(0, 2**31),
)
def test_masked_fraction_is_within_tolerance(grid, strategy, ratio, seed) -> None:
    t, h, w = grid
    pair = VideoMaskGenerator(grid, strategy, ratio)(torch.Generator().manual_seed(seed))[0]
    fraction = len(pair.target) / (t * h * w)
    # the grid's granularity bounds how closely a count of slots, tubes or a rectangle can match the ratio
    tolerance = {
        "temporal": 0.5 / t,
        "random": 0.5 / (h * w) + 1e-9,
        "spatial": 0.5 * max(h, w) / (h * w) + 0.05,
        "block": 0.5 * max(h, w) / (h * w) + 0.5 / t + 0.05,
    }[strategy]
    if strategy == "temporal":  # at least one slot each side
        ratio = min(max(ratio, 1 / t), 1 - 1 / t)
    assert abs(fraction - ratio) <= tolerance, (fraction, ratio)


def test_multiblock_is_v_jepa_2_s_two_sets_through_all_time() -> None:
    gen = VideoMaskGenerator((4, 16, 16), "multiblock")
    short, long = gen(torch.Generator().manual_seed(0))
    for pair in (short, long):
        assert torch.equal(pair.masked, pair.masked[:1].expand_as(pair.masked))  # each block spans every slot
    f_short, f_long = short.masked.float().mean(), long.masked.float().mean()
    assert 0.15 <= f_short < f_long  # 8 blocks of 0.15 vs 2 of 0.70 (overlapping)
    assert f_long >= 0.7 and f_short <= 1 - (1 - 0.15) ** 8 + 0.2


def test_structure_of_the_simple_strategies() -> None:
    g = torch.Generator().manual_seed(1)
    temporal = VideoMaskGenerator((4, 4, 4), "temporal", 0.5)(g)[0].masked
    assert temporal[2:].all() and not temporal[:2].any()  # the later half of the time slots
    for name in ("spatial", "random"):
        masked = VideoMaskGenerator((3, 6, 6), name, 0.4)(g)[0].masked
        assert torch.equal(masked, masked[:1].expand_as(masked))  # same region in every slot
    block = VideoMaskGenerator((4, 8, 8), "block", 0.25)(g)[0].masked
    rows, cols = block.any(0).any(1).nonzero(), block.any(0).any(0).nonzero()
    assert block.any((1, 2)).sum() * (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == block.sum()


def test_draws_are_determined_by_the_generator() -> None:
    gen = VideoMaskGenerator((2, 8, 8), "multiblock")
    a, b = gen(torch.Generator().manual_seed(5)), gen(torch.Generator().manual_seed(5))
    c = gen(torch.Generator().manual_seed(6))
    assert all(torch.equal(x.target, y.target) for x, y in zip(a, b))
    assert not all(torch.equal(x.target, y.target) for x, y in zip(a, c))


def test_batches_are_cut_to_equal_counts_and_stay_disjoint() -> None:
    gen = VideoMaskGenerator((2, 6, 6), "multiblock")
    for ctx, tgt in gen.batch(5, torch.Generator().manual_seed(0)):
        assert ctx.shape[0] == tgt.shape[0] == 5
        for row in range(5):
            assert not set(ctx[row].tolist()) & set(tgt[row].tolist())
            assert len(set(ctx[row].tolist())) == ctx.shape[1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask_ratio": 0.0}, "mask_ratio"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"strategy": "tube"}, "strategy"),
        ({"grid": (1, 4, 4), "strategy": "temporal"}, "time slots"),
        ({"grid": (0, 4, 4)}, "grid"),
    ],
)
def test_bad_settings_are_refused(kwargs, match) -> None:
    args = {"grid": (2, 4, 4), "strategy": "random", "mask_ratio": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        VideoMaskGenerator(args.pop("grid"), **args)


def test_tiny_grids_keep_a_context() -> None:
    gen = VideoMaskGenerator((1, 2, 2), "multiblock")
    for seed in range(20):
        for pair in gen(torch.Generator().manual_seed(seed)):
            _check_pair(gen, pair)
    assert math.prod(gen.grid) == 4
