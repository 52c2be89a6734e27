"""Which tokens of a (t, h, w) grid the context encoder sees and which the predictor must predict.

Strategies (``VideoMaskGenerator.strategy``):

* ``multiblock``: V-JEPA 2's 3D multiblock: two mask sets per clip, short-range (8 blocks at spatial scale 0.15)
  and long-range (2 blocks at 0.70); each block is a rectangle with aspect ratio in [0.75, 1.5] spanning every
  time slot; within a set the target is the union of its blocks and the context its complement.
* ``block``: one 3D block (a rectangle over a contiguous run of time slots) of about ``mask_ratio`` of the grid.
* ``random``: random tubes: ``mask_ratio`` of the spatial positions, masked in every time slot.
* ``temporal``: the later ``mask_ratio`` of the time slots (predict the future from the past).
* ``spatial``: one rectangle of about ``mask_ratio`` of the frame, the same region in every time slot.

Every set keeps at least ``min_context`` context tokens. Randomness only from the ``torch.Generator`` given.
Indices are in raster order (time slowest), as the encoder's tokens and transformers' ``VJEPA2Model`` masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STRATEGIES = ("multiblock", "block", "random", "temporal", "spatial")
MULTIBLOCK_SETS = ((8, 0.15), (2, 0.70))
"""(blocks, spatial scale) of V-JEPA 2's short-range and long-range mask sets."""


@dataclass(frozen=True)
class MaskPair:
    """Token indices (sorted, disjoint, ``LongTensor [K]``) of one mask set, and the boolean grid ``[t, h, w]``."""

    context: torch.Tensor
    target: torch.Tensor
    masked: torch.Tensor


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator, high: int) -> int:
    """Uniform in [0, high)."""
    return int(torch.randint(high, (), generator=generator))


def rectangle(
    area: float, height: int, width: int, aspect: tuple[float, float], generator: torch.Generator
) -> tuple[int, int]:
    """(h, w) with ``h*w`` as close to ``area`` as the grid allows, preferring aspect ratios ``w/h`` in range.

    A random aspect ratio in range picks among the closest-area candidates, so blocks vary in shape."""
    target_aspect = math.exp(_uniform(generator, math.log(aspect[0]), math.log(aspect[1])))
    in_range = shapes(area, height, width, aspect)

    def key(hw: tuple[int, int]) -> tuple[float, float]:
        h, w = hw
        return abs(h * w - area), abs(math.log((w / h) / target_aspect))

    best_area = min(abs(h * w - area) for h, w in in_range)
    close = [hw for hw in in_range if abs(hw[0] * hw[1] - area) <= best_area + 0.5]
    return min(close, key=key)


def shapes(area: float, height: int, width: int, aspect: tuple[float, float]) -> list[tuple[int, int]]:
    """The rectangles a block may take: those with aspect ratio ``w/h`` in range, unless the grid is too narrow
    for any of them to come within 10% of ``area`` (a 9x4 grid holds no in-range rectangle above 16 cells): then
    every rectangle, so the masked fraction still follows the configured ratio."""
    candidates = [(h, w) for h in range(1, height + 1) for w in range(1, width + 1)]
    in_range = [(h, w) for h, w in candidates if aspect[0] <= w / h <= aspect[1]]
    if not in_range or min(abs(h * w - area) for h, w in in_range) > max(1.0, 0.1 * area):
        return candidates
    return in_range


def achievable_area(area: float, height: int, width: int, aspect: tuple[float, float]) -> int:
    """The cell count closest to ``area`` among the rectangles ``shapes`` allows."""
    return min((h * w for h, w in shapes(area, height, width, aspect)), key=lambda a: abs(a - area))


class VideoMaskGenerator:
    """Context/target token indices for a ``grid = (t, h, w)`` of tokens (see the module doc for strategies)."""

    def __init__(
        self,
        grid: tuple[int, int, int],
        strategy: str = "multiblock",
        mask_ratio: float = 0.5,
        aspect_ratio: tuple[float, float] = (0.75, 1.5),
        multiblock_sets: tuple[tuple[int, float], ...] = MULTIBLOCK_SETS,
        min_context: int = 1,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown masking strategy {strategy!r}; choose one of {STRATEGIES}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if any(int(g) < 1 for g in grid):
            raise ValueError(f"mask grid must be positive in (t, h, w), got {tuple(grid)}")
        if strategy == "temporal" and grid[0] < 2:
            raise ValueError("temporal masking needs at least 2 time slots (clips of 2 tubelets)")
        if not 0 < aspect_ratio[0] <= aspect_ratio[1]:
            raise ValueError(f"aspect_ratio must be (low, high) with 0 < low <= high, got {aspect_ratio}")
        self.grid = tuple(int(g) for g in grid)
        self.strategy, self.mask_ratio, self.aspect_ratio = strategy, float(mask_ratio), tuple(aspect_ratio)
        self.multiblock_sets = tuple((int(n), float(s)) for n, s in multiblock_sets)
        self.min_context = min(int(min_context), math.prod(self.grid) - 1)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    def __call__(self, generator: torch.Generator) -> list[MaskPair]:
        """One ``MaskPair`` per mask set (two for ``multiblock``, one otherwise)."""
        if self.strategy == "multiblock":
            masks = [self._blocks(n, scale, generator) for n, scale in self.multiblock_sets]
        else:
            masks = [getattr(self, f"_{self.strategy}")(generator)]
        return [self._pair(m, generator) for m in masks]

    # ----------------------------------------------------------------- strategies: boolean [t, h, w], True = target
    def _rect(self, area: float, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        bh, bw = rectangle(area, h, w, self.aspect_ratio, generator)
        top, left = _randint(generator, h - bh + 1), _randint(generator, w - bw + 1)
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[top : top + bh, left : left + bw] = True
        return mask

    def _blocks(self, num_blocks: int, scale: float, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        spatial = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(num_blocks):
            spatial |= self._rect(scale * h * w, generator)
        return spatial[None].expand(t, h, w).clone()

    def _spatial(self, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        return self._rect(self.mask_ratio * h * w, generator)[None].expand(t, h, w).clone()

    def _block(self, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        total = self.mask_ratio * t * h * w
        lengths = [n for n in range(1, t + 1) if total / n <= h * w] or [t]
        # the time extent whose closest achievable rectangle makes the volume closest to the target
        best = min(lengths, key=lambda n: abs(n * achievable_area(total / n, h, w, self.aspect_ratio) - total))
        start = _randint(generator, t - best + 1)
        mask = torch.zeros(t, h, w, dtype=torch.bool)
        mask[start : start + best] = self._rect(total / best, generator)
        return mask

    def _random(self, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        count = min(max(round(self.mask_ratio * h * w), 1), h * w - 1) if h * w > 1 else 0
        chosen = torch.randperm(h * w, generator=generator)[:count]
        spatial = torch.zeros(h * w, dtype=torch.bool)
        spatial[chosen] = True
        return spatial.view(h, w)[None].expand(t, h, w).clone()

    def _temporal(self, generator: torch.Generator) -> torch.Tensor:
        t, h, w = self.grid
        count = min(max(round(self.mask_ratio * t), 1), t - 1)
        mask = torch.zeros(t, h, w, dtype=torch.bool)
        mask[t - count :] = True
        return mask

    # ----------------------------------------------------------------- indices
    def _pair(self, masked: torch.Tensor, generator: torch.Generator) -> MaskPair:
        flat = masked.reshape(-1).clone()
        missing = self.min_context - int((~flat).sum())
        if missing > 0:  # blocks covered (almost) everything: give some target tokens back to the context
            target_idx = flat.nonzero().squeeze(1)
            flat[target_idx[torch.randperm(len(target_idx), generator=generator)[:missing]]] = False
        if not flat.any():  # nothing to predict: take one context token as the target
            flat[_randint(generator, len(flat))] = True
        return MaskPair(
            context=(~flat).nonzero().squeeze(1), target=flat.nonzero().squeeze(1), masked=flat.view(self.grid)
        )

    def batch(self, batch_size: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per mask set, ``(context [B, Kc], target [B, Kt])`` for ``batch_size`` clips, each drawn on its own and
        cut to the batch's smallest count (as V-JEPA's collator does: the cut drops random tokens, so context and
        target stay disjoint)."""
        draws = [self(generator) for _ in range(batch_size)]
        out = []
        for s in range(len(draws[0])):
            pairs = [d[s] for d in draws]
            kc, kt = min(len(p.context) for p in pairs), min(len(p.target) for p in pairs)
            ctx = torch.stack([_subset(p.context, kc, generator) for p in pairs])
            tgt = torch.stack([_subset(p.target, kt, generator) for p in pairs])
            out.append((ctx, tgt))
        return out


def _subset(idx: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    if len(idx) == k:
        return idx
    return idx[torch.randperm(len(idx), generator=generator)[:k]].sort().values


__all__ = ["MULTIBLOCK_SETS", "STRATEGIES", "MaskPair", "VideoMaskGenerator", "rectangle"]
