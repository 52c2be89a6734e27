"""The event log of an episode: contact onsets, motion onsets, falls, leaving the table, entering the goal zone.

``EventDetector.update`` runs after every physics step. A contact onset is logged once per contact episode of an
(object, object-or-fixture) pair, at the first step its summed normal force (``mujoco.mj_contactForce``) exceeds
``force_threshold``; pairs already touching at t=0 (resting contacts) are ignored until they separate. A pair must
stay apart ``min_gap`` seconds (one frame) before touching again counts as a new onset, so an object chattering on
an edge is one contact and a bounce another. Motion onsets are logged for objects at rest at t=0, falls (tilt past
``tilt_threshold``) for boxes and cylinders that start upright. The detector also reports, per step, the impacts and
sliding contacts the synthetic audio is made from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import mujoco
import numpy as np

from worldrl.tasks.scenes.materials import STATIC_MATERIAL
from worldrl.tasks.scenes.spec import SceneDescription

EVENT_KINDS = ("contact", "motion", "fall", "left_table", "entered_goal")


@dataclass(frozen=True)
class Event:
    kind: str
    """One of ``EVENT_KINDS``."""
    time: float
    """Simulation time (s)."""
    objects: tuple[str, ...]
    """The object (or the sorted pair; fixtures are ``floor``, ``table``, ``ramp``, ``wall_<i>``)."""
    force: float | None = None
    """Contact onsets: summed normal force (N) at onset."""

    def to_dict(self) -> dict:
        return {**asdict(self), "objects": list(self.objects)}

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(data["kind"], float(data["time"]), tuple(data["objects"]), data.get("force"))


@dataclass(frozen=True)
class Impact:
    """A contact onset as the audio sees it."""

    time: float
    force: float
    materials: tuple[str, str]


@dataclass(frozen=True)
class Slide:
    """A sliding contact during one physics step."""

    time: float
    force: float
    speed: float
    """Slip speed at the contact point (m/s)."""
    materials: tuple[str, str]


class EventDetector:
    """Turns the contact stream and object poses into events; ``reset`` at t=0, ``update`` after each step."""

    def __init__(
        self,
        model: mujoco.MjModel,
        scene: SceneDescription,
        *,
        force_threshold: float = 1.0,
        speed_threshold: float = 0.1,
        tilt_threshold: float = math.radians(45),
        slide_speed: float = 0.05,
        min_gap: float = 0.02,
    ):
        self.model, self.scene = model, scene
        self.force_threshold, self.speed_threshold = force_threshold, speed_threshold
        self.tilt_threshold, self.slide_speed, self.min_gap = tilt_threshold, slide_speed, min_gap
        self.names = scene.names()
        self.body_ids = np.array([model.body(n).id for n in self.names])
        self.dof = np.array([int(model.joint(n).dofadr[0]) for n in self.names])
        self.entity = [self._entity(g) for g in range(model.ngeom)]
        materials = {o.name: o.material for o in scene.objects}
        self.material = {name: materials.get(name, STATIC_MATERIAL) for name in set(self.entity)}
        self._force = np.zeros(6)
        self._vel = np.zeros(6)

    def _entity(self, geom: int) -> str:
        body = int(self.model.geom_bodyid[geom])
        return self.model.body(body).name if body != 0 else self.model.geom(geom).name

    # ------------------------------------------------------------------ contacts

    def _contacts(self, data: mujoco.MjData) -> dict[tuple[str, str], tuple[float, float]]:
        """pair -> (summed normal force, max slip speed) over the current contacts."""
        pairs: dict[tuple[str, str], tuple[float, float]] = {}
        for i in range(data.ncon):
            c = data.contact[i]
            a, b = self.entity[c.geom1], self.entity[c.geom2]
            if a == b:
                continue
            mujoco.mj_contactForce(self.model, data, i, self._force)
            key = (a, b) if a < b else (b, a)
            slip = self._slip(data, c)
            force, speed = pairs.get(key, (0.0, 0.0))
            pairs[key] = (force + float(self._force[0]), max(speed, slip))
        return pairs

    def _slip(self, data: mujoco.MjData, contact) -> float:
        """Tangential speed of body 1 relative to body 2 at the contact point."""
        rel = np.zeros(3)
        for geom, sign in ((contact.geom1, 1.0), (contact.geom2, -1.0)):
            body = int(self.model.geom_bodyid[geom])
            if body == 0:
                continue
            mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_BODY, body, self._vel, 0)
            (wx, wy, wz), (rx, ry, rz) = self._vel[:3], contact.pos - data.xpos[body]
            rel += sign * (self._vel[3:] + (wy * rz - wz * ry, wz * rx - wx * rz, wx * ry - wy * rx))
        normal = contact.frame[:3]
        return float(np.linalg.norm(rel - rel.dot(normal) * normal))

    # ------------------------------------------------------------------ object state

    def _speeds(self, data: mujoco.MjData) -> np.ndarray:
        return np.linalg.norm(data.qvel[self.dof[:, None] + np.arange(3)], axis=1)

    def _tilts(self, data: mujoco.MjData) -> np.ndarray:
        return np.arccos(np.clip(data.xmat[self.body_ids, 8], -1.0, 1.0))  # angle of the body z axis to world z

    def _on_table(self, data: mujoco.MjData) -> np.ndarray:
        if self.scene.table is None:
            return np.zeros(len(self.names), bool)
        x, y, hx, hy, top = self.scene.table
        pos = data.xpos[self.body_ids]
        return (np.abs(pos[:, 0] - x) <= hx) & (np.abs(pos[:, 1] - y) <= hy) & (pos[:, 2] > top)

    def _in_goal(self, data: mujoco.MjData) -> np.ndarray:
        if self.scene.goal is None:
            return np.zeros(len(self.names), bool)
        gx, gy, r = self.scene.goal
        pos = data.xpos[self.body_ids]
        return np.hypot(pos[:, 0] - gx, pos[:, 1] - gy) <= r

    # ------------------------------------------------------------------ the log

    def reset(self, data: mujoco.MjData) -> None:
        """Call after ``mj_forward`` at t=0: remembers resting contacts and the objects' initial state."""
        self.events: list[Event] = []
        self.resting = set(self._contacts(data))
        self.touching: set[tuple[str, str]] = set(self.resting)
        self.fired: set[tuple[str, str]] = set()
        self.apart_since: dict[tuple[str, str], float] = {}
        self.still = self._speeds(data) < self.speed_threshold
        shapes = np.array([self.scene.object(n).shape != "sphere" for n in self.names])
        self.upright = shapes & (self._tilts(data) < math.radians(10))
        self.on_table = self._on_table(data)
        self.in_goal = self._in_goal(data)

    def update(self, data: mujoco.MjData) -> tuple[list[Event], list[Impact], list[Slide]]:
        """The events, impacts and sliding contacts of the physics step that just ran."""
        t = float(data.time)
        events, impacts, slides = [], [], []
        pairs = self._contacts(data)
        for key in self.touching - set(pairs):
            self.apart_since.setdefault(key, t)
        for key in set(pairs):
            self.apart_since.pop(key, None)
        for key, since in list(self.apart_since.items()):
            if t - since >= self.min_gap:  # apart long enough: a later touch is a new contact episode
                self.resting.discard(key)
                self.fired.discard(key)
                del self.apart_since[key]
        self.touching = set(pairs)
        for key, (force, speed) in pairs.items():
            mats = (self.material[key[0]], self.material[key[1]])
            if key not in self.resting and key not in self.fired and force > self.force_threshold:
                self.fired.add(key)
                events.append(Event("contact", t, key, round(force, 4)))
                impacts.append(Impact(t, force, mats))
            if speed > self.slide_speed and force > 0:
                slides.append(Slide(t, force, speed, mats))
        moving = self.still & (self._speeds(data) >= self.speed_threshold)
        events += [Event("motion", t, (self.names[i],)) for i in np.flatnonzero(moving)]
        self.still &= ~moving
        fallen = self.upright & (self._tilts(data) > self.tilt_threshold)
        events += [Event("fall", t, (self.names[i],)) for i in np.flatnonzero(fallen)]
        self.upright &= ~fallen
        if self.scene.table is not None:
            left = self.on_table & (data.xpos[self.body_ids, 2] < self.scene.table[4])
            events += [Event("left_table", t, (self.names[i],)) for i in np.flatnonzero(left)]
            self.on_table &= ~left
        if self.scene.goal is not None:
            entered = ~self.in_goal & self._in_goal(data)
            events += [Event("entered_goal", t, (self.names[i],)) for i in np.flatnonzero(entered)]
            self.in_goal |= entered
        self.events += events
        return events, impacts, slides


__all__ = ["EVENT_KINDS", "Event", "EventDetector", "Impact", "Slide"]
