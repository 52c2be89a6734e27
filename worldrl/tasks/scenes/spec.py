"""A scene description (objects, fixtures) and its MuJoCo model, built in code with ``mujoco.MjSpec``.

A ``SceneDescription`` is plain data (JSON round trip with ``to_dict`` / ``from_dict``); ``build_spec`` turns it
into an ``MjSpec`` whose ``to_xml()`` is the MJCF stored with recordings, so an episode can be re-simulated with plain
``mujoco``. Every object is a free body named after its colour and shape (``red_sphere``); static geoms are named
``floor``, ``table``, ``ramp``, ``wall_<i>``; the goal zone is a visual-only disc named ``goal``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import mujoco
import numpy as np

from worldrl.errors import ConfigError
from worldrl.tasks.scenes.materials import COLOURS, MATERIALS, SHAPES, STATIC_MATERIAL, material

MAX_OBJECTS = 6
MIN_OBJECTS = 2
TIMESTEP = 0.002
"""Physics step (s)."""
FRAME_SKIP = 10
"""Physics steps per env step: 50 frames/s."""
FLOOR_HALF = 2.0
CAMERA = "front"


@dataclass(frozen=True)
class SceneObject:
    """One free object. ``size``: sphere (radius,), box (half x, half y, half z), cylinder (radius, half height)."""

    shape: str
    colour: str
    material: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    mass: float | None = None
    """kg; None: the material's density times the volume."""
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    velocity: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    """Initial free-joint velocity: linear (world frame), then angular (body frame)."""

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.shape}"

    @property
    def label(self) -> str:
        """How questions name it: ``"red sphere"``."""
        return f"{self.colour} {self.shape}"

    def volume(self) -> float:
        s = self.size
        if self.shape == "sphere":
            return 4.0 / 3.0 * math.pi * s[0] ** 3
        if self.shape == "box":
            return 8.0 * s[0] * s[1] * s[2]
        return math.pi * s[0] ** 2 * 2.0 * s[1]

    def resolved_mass(self) -> float:
        return float(self.mass) if self.mass is not None else MATERIALS[self.material].density * self.volume()

    def half_height(self) -> float:
        """Half extent along z when upright."""
        return self.size[0] if self.shape == "sphere" else self.size[-1]


@dataclass(frozen=True)
class SceneDescription:
    """Everything needed to rebuild a scene: its kind, seed, objects and fixtures."""

    kind: str
    seed: int
    objects: tuple[SceneObject, ...]
    walls: bool = False
    table: tuple[float, float, float, float, float] | None = None
    """(centre x, centre y, half x, half y, top height)."""
    ramp: tuple[float, float, float, float] | None = None
    """(centre x, half length, half width, angle rad): a slab tilted down towards +x."""
    goal: tuple[float, float, float] | None = None
    """(x, y, radius) of the goal zone on the floor."""
    agent: str | None = None
    """Name of the object the action pushes (None: actions have no effect)."""
    target: str | None = None
    """Name of the object that must reach the goal (push scenes)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        n = len(self.objects)
        if not MIN_OBJECTS <= n <= MAX_OBJECTS:
            raise ConfigError(f"a scene needs {MIN_OBJECTS} to {MAX_OBJECTS} objects, got {n}")
        names = [o.name for o in self.objects]
        if len(set(o.colour for o in self.objects)) != n:
            raise ConfigError(f"scene objects must have distinct colours, got {names}")
        for o in self.objects:
            check_object(o)
        for role in ("agent", "target"):
            value = getattr(self, role)
            if value is not None and value not in names:
                raise ConfigError(f"scene {role} {value!r} is not one of its objects {names}")

    def object(self, name: str) -> SceneObject:
        return next(o for o in self.objects if o.name == name)

    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def without(self, name: str) -> SceneDescription:
        """The same scene with one object removed (counterfactuals); needs at least 3 objects."""
        return replace(self, objects=tuple(o for o in self.objects if o.name != name))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneDescription:
        try:
            objects = tuple(
                SceneObject(**{k: tuple(v) if isinstance(v, list) else v for k, v in o.items()})
                for o in data["objects"]
            )
            rest = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "objects"}
            return cls(objects=objects, **rest)
        except (KeyError, TypeError) as err:
            raise ConfigError(f"not a scene description: {err}") from err


def check_object(o: SceneObject) -> None:
    """One-line ConfigErrors for impossible objects (unknown shape/colour/material, non-positive mass or size)."""
    if o.shape not in SHAPES:
        raise ConfigError(f"unknown shape {o.shape!r}; known: {', '.join(SHAPES)}")
    if o.colour not in COLOURS:
        raise ConfigError(f"unknown colour {o.colour!r}; known: {', '.join(COLOURS)}")
    material(o.material)
    want = {"sphere": 1, "box": 3, "cylinder": 2}[o.shape]
    if len(o.size) != want or min(o.size) <= 0:
        raise ConfigError(f"{o.name}: size must be {want} positive numbers for a {o.shape}, got {o.size}")
    if o.mass is not None and not o.mass > 0:
        raise ConfigError(f"{o.name}: mass must be positive, got {o.mass}")
    if len(o.pos) != 3 or len(o.quat) != 4 or len(o.velocity) != 6:
        raise ConfigError(f"{o.name}: pos needs 3 numbers, quat 4, velocity 6")


GEOM_TYPES = {
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
}


def _static(
    spec: mujoco.MjSpec,
    name: str,
    gtype: Any,
    size: list[float],
    pos: list[float],
    rgba: list[float],
    quat: list[float] | None = None,
) -> None:
    m = MATERIALS[STATIC_MATERIAL]
    geom = spec.worldbody.add_geom(
        name=name,
        type=gtype,
        size=size,
        pos=pos,
        rgba=rgba,
        friction=[m.friction, 0.005, 0.0001],
        solref=list(m.solref),
    )
    if quat is not None:
        geom.quat = quat


def build_spec(scene: SceneDescription) -> mujoco.MjSpec:
    """The scene as an ``MjSpec``: floor, fixtures, one free body per object, a light and the ``front`` camera."""
    spec = mujoco.MjSpec()
    spec.modelname = f"worldrl_{scene.kind}_{scene.seed}"
    spec.option.timestep = TIMESTEP
    spec.worldbody.add_light(name="sun", pos=[0, -0.5, 3.0], dir=[0, 0.2, -1], castshadow=False)
    _static(spec, "floor", mujoco.mjtGeom.mjGEOM_PLANE, [FLOOR_HALF, FLOOR_HALF, 0.05], [0, 0, 0], [0.55, 0.55, 0.5, 1])
    if scene.walls:
        for i, (x, y, hx, hy) in enumerate(
            [
                (FLOOR_HALF, 0, 0.05, FLOOR_HALF),
                (-FLOOR_HALF, 0, 0.05, FLOOR_HALF),
                (0, FLOOR_HALF, FLOOR_HALF, 0.05),
                (0, -FLOOR_HALF, FLOOR_HALF, 0.05),
            ]
        ):
            _static(spec, f"wall_{i}", mujoco.mjtGeom.mjGEOM_BOX, [hx, hy, 0.15], [x, y, 0.15], [0.7, 0.7, 0.7, 1])
    if scene.table is not None:
        x, y, hx, hy, top = scene.table
        _static(spec, "table", mujoco.mjtGeom.mjGEOM_BOX, [hx, hy, top / 2], [x, y, top / 2], [0.45, 0.3, 0.2, 1])
    if scene.ramp is not None:
        x, half_len, half_w, angle = scene.ramp
        thick = 0.02
        z = half_len * math.sin(angle) + thick
        quat = [math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0]  # rotate about +y: high end at -x
        _static(
            spec, "ramp", mujoco.mjtGeom.mjGEOM_BOX, [half_len, half_w, thick], [x, 0, z], [0.6, 0.6, 0.65, 1], quat
        )
    if scene.goal is not None:
        gx, gy, r = scene.goal
        spec.worldbody.add_geom(
            name="goal",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[r, 0.002, 0],
            pos=[gx, gy, 0.002],
            rgba=[0.2, 0.9, 0.3, 0.5],
            contype=0,
            conaffinity=0,
        )
    for o in scene.objects:
        mat = MATERIALS[o.material]
        body = spec.worldbody.add_body(name=o.name, pos=list(o.pos), quat=list(o.quat))
        body.add_freejoint(name=o.name)
        body.add_geom(
            name=o.name,
            type=GEOM_TYPES[o.shape],
            size=list(o.size) + [0.0] * (3 - len(o.size)),
            rgba=[*COLOURS[o.colour], 1.0],
            mass=o.resolved_mass(),
            friction=[mat.friction, 0.005, 0.0001],
            solref=list(mat.solref),
        )
    spec.worldbody.add_camera(name=CAMERA, pos=[0.0, -2.6, 1.9], xyaxes=[1, 0, 0, 0, 0.6, 0.8])
    return spec


def compile_scene(scene: SceneDescription) -> tuple[mujoco.MjModel, str]:
    """The compiled model and its MJCF text."""
    spec = build_spec(scene)
    model = spec.compile()
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, 64)
    return model, spec.to_xml()


def initial_state(scene: SceneDescription, model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """qpos and qvel at t=0 from the objects' poses and velocities."""
    qpos, qvel = model.qpos0.copy(), np.zeros(model.nv)
    for o in scene.objects:
        joint = model.joint(o.name)
        a, v = int(joint.qposadr[0]), int(joint.dofadr[0])
        qpos[a : a + 3], qpos[a + 3 : a + 7] = o.pos, o.quat
        qvel[v : v + 6] = o.velocity
    return qpos, qvel


__all__ = [
    "CAMERA",
    "FRAME_SKIP",
    "MAX_OBJECTS",
    "MIN_OBJECTS",
    "TIMESTEP",
    "SceneDescription",
    "SceneObject",
    "build_spec",
    "check_object",
    "compile_scene",
    "initial_state",
]
