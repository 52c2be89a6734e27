"""Intuitive physics as the V-JEPA papers measure it: is a model more surprised by the impossible clip of a pair?

A pair is one Playground rollout rendered twice: as simulated (possible) and with an edit from frame ``f`` on that
breaks a law of physics (an object vanishes, teleports, or passes through another one: the edits of
``physics_qa.questions.plausibility_edits``). Both clips are cut to the same window around ``f``: ``context``
frames before it, ``target`` frames from it. A surprise function maps windows ``[B, T, H, W, 3]`` (uint8) to one
number per window; the pairwise accuracy is the share of pairs whose impossible window scores higher (ties count
half), with chance at 50%.

``pixel_change_surprise`` is the trivial detector beside the model: how far the target frames are from the last
context frame. It sees every sudden change, possible or not, which is why a world model has to beat it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worldrl.evaluation.physics_qa import questions as Q
from worldrl.evaluation.physics_qa.simulate import Edit, render_clip, simulate
from worldrl.tasks.scenes.kinds import sample_scene

SurpriseFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PlausibilityPair:
    """Two windows of the same rollout, equal before ``context`` frames and different from there on."""

    kind: str
    """The edit: ``vanish``, ``teleport`` or ``pass_through``."""
    scene: str
    """``<scene kind>-<seed>``."""
    possible: np.ndarray
    """``[context + target, H, W, 3]`` uint8."""
    impossible: np.ndarray


def edit_frame(edit: Edit | tuple[str, str], rollout) -> int | None:
    """The first frame an edit changes: its ``frame``, or the first contact of the pair that passes through."""
    if isinstance(edit, Edit):
        return edit.frame
    time = rollout.contact_time(*edit)
    return None if time is None else int(round(time / rollout.dt))


def window(clip: np.ndarray, start: int, context: int, target: int) -> np.ndarray | None:
    """Frames ``[start - context, start + target)`` of a clip, or None when they do not fit in it."""
    lo, hi = start - context, start + target
    return clip[lo:hi] if lo >= 0 and hi <= len(clip) else None


def make_pairs(
    scene_kind: str,
    count: int,
    *,
    steps: int = 100,
    image_size: int = 64,
    context: int = 4,
    target: int = 4,
    seed: int = 0,
    max_draws: int | None = None,
) -> list[PlausibilityPair]:
    """``count`` pairs from scenes of one kind (seeds ``seed, seed + 1, ...``); scenes without a usable edit are
    skipped, up to ``max_draws`` scenes in all (default ``4 * count``)."""
    pairs: list[PlausibilityPair] = []
    for scene_seed in range(seed, seed + (max_draws or 4 * count)):
        if len(pairs) == count:
            break
        rng = np.random.default_rng(scene_seed)
        rollout = simulate(sample_scene(scene_kind, scene_seed), steps)
        for name, edit in Q.plausibility_edits(rollout, rng):
            start = edit_frame(edit, rollout)
            if start is None:
                continue
            frames = min(start + target, len(rollout.qpos))  # render only what the window needs
            clip = render_clip(rollout, image_size, frames)
            edited = (
                render_clip(rollout, image_size, frames, edit=edit)
                if isinstance(edit, Edit)
                else render_clip(simulate(rollout.scene, steps, exclude=edit), image_size, frames)
            )
            a, b = window(clip, start, context, target), window(edited, start, context, target)
            if a is not None and b is not None and not np.array_equal(a, b):
                pairs.append(PlausibilityPair(name, f"{scene_kind}-{scene_seed}", a, b))
    return pairs


def pixel_change_surprise(windows: np.ndarray, context: int) -> np.ndarray:
    """Mean absolute difference (0..1) of each target frame from the last context frame, per window ``[B]``."""
    x = windows.astype(np.float32) / 255.0
    return np.abs(x[:, context:] - x[:, context - 1 : context]).mean(axis=(1, 2, 3, 4))


def pairwise_accuracy(possible: np.ndarray, impossible: np.ndarray) -> tuple[float, float, float]:
    """Share of pairs where the impossible clip is more surprising (ties: half), with a 95% Wilson interval."""
    if len(possible) != len(impossible) or len(possible) == 0:
        raise ValueError(f"need equal, non-empty surprise arrays, got {len(possible)} and {len(impossible)}")
    wins = float(np.sum(impossible > possible) + 0.5 * np.sum(impossible == possible))
    return (wins / len(possible), *wilson_interval(wins, len(possible)))


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sound near 0 and 1, unlike the normal one)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def score_pairs(pairs: list[PlausibilityPair], surprise: SurpriseFn) -> dict[str, tuple[float, float, float, int]]:
    """Pairwise accuracy (with its interval and pair count) overall and per edit kind."""
    s_pos = surprise(np.stack([p.possible for p in pairs]))
    s_imp = surprise(np.stack([p.impossible for p in pairs]))
    kinds = np.array([str(p.kind) for p in pairs])
    out = {"all": (*pairwise_accuracy(s_pos, s_imp), len(pairs))}
    for kind in sorted(set(kinds)):
        m = kinds == kind
        out[str(kind)] = (*pairwise_accuracy(s_pos[m], s_imp[m]), int(m.sum()))
    return out


__all__ = [
    "PlausibilityPair",
    "edit_frame",
    "make_pairs",
    "pairwise_accuracy",
    "pixel_change_surprise",
    "score_pairs",
    "wilson_interval",
    "window",
]
