"""The scene kinds (after Physion's and CLEVRER's scenarios) and ``sample_scene(kind, seed)``.

Each kind is a sampler ``(rng, n_objects, seed) -> SceneDescription`` in ``KINDS``; colours, materials, sizes and
placements come from the seed, so a seed is a scene. Objects that start on a surface sit 1 mm into it, so their
resting contact exists at t=0 and the event log ignores it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from worldrl.errors import ConfigError
from worldrl.tasks.scenes.materials import COLOURS, OBJECT_MATERIALS, SHAPES
from worldrl.tasks.scenes.spec import MAX_OBJECTS, MIN_OBJECTS, SceneDescription, SceneObject

SINK = 0.001
"""How far a resting object starts inside its support (m)."""


def _size(rng: np.random.Generator, shape: str) -> tuple[float, ...]:
    if shape == "sphere":
        return (round(float(rng.uniform(0.05, 0.09)), 4),)
    if shape == "box":
        return tuple(round(float(v), 4) for v in rng.uniform(0.04, 0.08, 3))
    return (round(float(rng.uniform(0.04, 0.07)), 4), round(float(rng.uniform(0.04, 0.08)), 4))


def _object(
    rng: np.random.Generator,
    colour: str,
    pos: tuple[float, float],
    *,
    shape: str | None = None,
    z: float | None = None,
    size: tuple[float, ...] | None = None,
    material: str | None = None,
    velocity: tuple[float, ...] = (0.0,) * 6,
) -> SceneObject:
    shape = shape or str(rng.choice(SHAPES))
    size = size or _size(rng, shape)
    material = material or str(rng.choice(OBJECT_MATERIALS))
    hh = size[0] if shape == "sphere" else size[-1]
    zz = hh - SINK if z is None else z
    return SceneObject(
        shape,
        colour,
        material,
        size,
        (round(pos[0], 4), round(pos[1], 4), round(zz, 4)),
        velocity=tuple(float(v) for v in velocity),
    )


def _spread(
    rng: np.random.Generator,
    n: int,
    low: float,
    high: float,
    gap: float,
    taken: list[tuple[float, float]] | None = None,
) -> list[tuple[float, float]]:
    """n xy points in a square, at least ``gap`` apart from each other and from ``taken``."""
    points = list(taken or [])
    start = len(points)
    for _ in range(2000):
        if len(points) - start == n:
            break
        p = tuple(float(v) for v in rng.uniform(low, high, 2))
        if all(math.dist(p, q) >= gap for q in points):
            points.append(p)
    if len(points) - start < n:
        raise ConfigError(f"cannot place {n} objects {gap} m apart in [{low}, {high}]^2")
    return points[start:]


def _colours(rng: np.random.Generator, n: int) -> list[str]:
    return [str(c) for c in rng.choice(list(COLOURS), n, replace=False)]


def drop(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    objects = [
        _object(rng, c, p, z=float(rng.uniform(0.25, 0.9))) for c, p in zip(colours, _spread(rng, n, -0.7, 0.7, 0.3))
    ]
    return SceneDescription("drop", seed, tuple(objects))


def collide(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    hit = (float(rng.uniform(0.0, 0.4)), float(rng.uniform(-0.3, 0.3)))
    start = (-0.9, float(rng.uniform(-0.3, 0.3)))
    angle = math.atan2(hit[1] - start[1], hit[0] - start[0]) + float(rng.uniform(-0.35, 0.35))
    speed = float(rng.uniform(1.5, 3.0))
    vx, vy, radius = speed * math.cos(angle), speed * math.sin(angle), float(rng.uniform(0.05, 0.09))
    mover = _object(
        rng,
        colours[0],
        start,
        shape="sphere",
        size=(round(radius, 4),),  # rolling, not skidding
        velocity=(vx, vy, 0, -vy / radius, vx / radius, 0),
    )
    struck = _object(rng, colours[1], hit)
    rest = _spread(rng, n - 2, -0.6, 0.9, 0.3, taken=[start, hit])
    return SceneDescription("collide", seed, (mover, struck, *[_object(rng, c, p) for c, p in zip(colours[2:], rest)]))


def roll(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    angle, half_len, x = float(rng.uniform(0.2, 0.45)), 0.45, -0.8
    radius, thick = float(rng.uniform(0.05, 0.08)), 0.02
    zc = half_len * math.sin(angle) + thick
    along, normal = (math.cos(angle), -math.sin(angle)), (math.sin(angle), math.cos(angle))
    u, h = -0.75 * half_len, thick + radius + 0.002
    ball_pos = (x + u * along[0] + h * normal[0], 0.0)
    ball = _object(
        rng, colours[0], ball_pos, shape="sphere", size=(round(radius, 4),), z=zc + u * along[1] + h * normal[1]
    )
    rest = _spread(rng, n - 1, -0.2, 0.9, 0.28, taken=[(x, 0.0), (x + 0.4, 0.0)])
    if n > 1 and rng.random() < 0.6:  # often something sits in the ball's path
        rest[0] = (float(rng.uniform(0.0, 0.6)), float(rng.uniform(-0.1, 0.1)))
    objects = (ball, *[_object(rng, c, p) for c, p in zip(colours[1:], rest)])
    return SceneDescription("roll", seed, objects, ramp=(x, half_len, 0.25, angle))


def dominoes(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    half = (0.02, 0.08, float(rng.uniform(0.1, 0.15)))
    gaps = rng.uniform(0.12, 0.26, n - 1)
    xs = np.concatenate([[-0.6], -0.6 + np.cumsum(gaps)])
    material = str(rng.choice(OBJECT_MATERIALS))
    tilt = float(rng.uniform(0.15, 0.3))  # the first domino starts tipped towards the others, on its edge
    objects = []
    for i, (c, x) in enumerate(zip(colours, xs)):
        size = tuple(round(v, 4) for v in half)
        if i == 0:
            first = _object(
                rng,
                c,
                (float(x), 0.0),
                shape="box",
                size=size,
                material=material,
                z=size[2] * math.cos(tilt) + size[0] * math.sin(tilt),
                velocity=(0, 0, 0, 0, float(rng.uniform(1.0, 2.0)), 0),
            )
            objects.append(replace(first, quat=(math.cos(tilt / 2), 0.0, math.sin(tilt / 2), 0.0)))
        else:
            objects.append(_object(rng, c, (float(x), 0.0), shape="box", size=size, material=material))
    return SceneDescription("dominoes", seed, tuple(objects))


def support(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    table = (0.0, 0.0, 0.35, 0.3, 0.4) if rng.random() < 0.5 else None
    base = table[4] if table else 0.0
    x0 = float(rng.uniform(-0.2, 0.2)) if table else float(rng.uniform(-0.4, 0.4))
    objects, z, x = [], base, x0
    for c in colours:
        half = float(rng.uniform(0.05, 0.08))
        size = (half, half, half)
        objects.append(_object(rng, c, (x, 0.0), shape="box", size=tuple(round(v, 4) for v in size), z=z + half - SINK))
        z += 2 * half - SINK
        x += float(rng.uniform(-1.3, 1.3)) * half  # offsets past the supporting edge topple the tower
    return SceneDescription("support", seed, tuple(objects), table=table)


def push(rng: np.random.Generator, n: int, seed: int) -> SceneDescription:
    colours = _colours(rng, n)
    agent_xy, target_xy, goal_xy, *rest = _spread(rng, n + 1, -1.2, 1.2, 0.4)
    agent = _object(rng, colours[0], agent_xy, shape="sphere", size=(0.08,), material="rubber")
    target = _object(rng, colours[1], target_xy, shape="box", size=(0.07, 0.07, 0.07), material="plastic")
    others = [_object(rng, c, p) for c, p in zip(colours[2:], rest)]
    return SceneDescription(
        "push", seed, (agent, target, *others), walls=True, goal=(*goal_xy, 0.15), agent=agent.name, target=target.name
    )


@dataclass(frozen=True)
class SceneKind:
    sample: Callable[[np.random.Generator, int, int], SceneDescription]
    objects: tuple[int, int]
    """Default (min, max) object count."""
    description: str


KINDS: dict[str, SceneKind] = {
    "drop": SceneKind(drop, (2, 4), "objects fall onto the floor"),
    "collide": SceneKind(collide, (2, 5), "a rolling sphere is sent towards another object"),
    "roll": SceneKind(roll, (2, 4), "a ball rolls down a ramp"),
    "dominoes": SceneKind(dominoes, (3, 6), "a row of dominoes, the first one tipped"),
    "support": SceneKind(support, (2, 4), "a tower of boxes that may fall, sometimes on a table"),
    "push": SceneKind(push, (2, 4), "an agent sphere pushed by the action; bring the box to the goal zone"),
}


def check_kind(kind: str) -> SceneKind:
    if kind not in KINDS:
        raise ConfigError(f"unknown scene kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]


def sample_scene(kind: str, seed: int, n_objects: int | None = None) -> SceneDescription:
    """The scene of ``kind`` that ``seed`` draws (``n_objects``: fixed count, else drawn from the kind's range)."""
    spec = check_kind(kind)
    if n_objects is not None and not MIN_OBJECTS <= n_objects <= MAX_OBJECTS:
        raise ConfigError(f"n_objects must be in [{MIN_OBJECTS}, {MAX_OBJECTS}], got {n_objects}")
    rng = np.random.default_rng(seed)
    n = int(n_objects) if n_objects is not None else int(rng.integers(spec.objects[0], spec.objects[1] + 1))
    return spec.sample(rng, n, int(seed))


__all__ = ["KINDS", "SceneKind", "check_kind", "sample_scene"]
