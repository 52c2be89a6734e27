"""Passive rollouts of a scene with plain MuJoCo (trajectory + event log), and clips rendered from them.

``simulate(scene, steps)`` steps the scene with zero action (the same physics as ``PlaygroundEnv``); ``exclude``
turns off contacts between two objects (a clip where one passes through the other is simulated this way).
``render_clip`` replays a stored trajectory through the camera, optionally edited to break a law of physics:
an object vanishes, or teleports.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from worldrl.tasks.scenes.events import Event, EventDetector
from worldrl.tasks.scenes.spec import (
    CAMERA,
    FRAME_SKIP,
    TIMESTEP,
    SceneDescription,
    build_spec,
    initial_state,
)

FPS = round(1 / (TIMESTEP * FRAME_SKIP))


@dataclass
class Rollout:
    scene: SceneDescription
    model: mujoco.MjModel
    xml: str
    qpos: np.ndarray
    """[steps + 1, nq] joint positions per frame."""
    positions: np.ndarray
    """[steps + 1, n_objects, 3] object centres per frame."""
    events: list[Event]

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep) * FRAME_SKIP

    def moved(self, name: str, threshold: float = 0.05) -> bool:
        """Whether the object's centre ever got ``threshold`` m away from its start."""
        i = self.scene.names().index(name)
        return bool(np.linalg.norm(self.positions[:, i] - self.positions[0, i], axis=1).max() > threshold)

    def contact_time(self, a: str, b: str) -> float | None:
        return next((e.time for e in self.events if e.kind == "contact" and set(e.objects) == {a, b}), None)


def simulate(scene: SceneDescription, steps: int, exclude: tuple[str, str] | None = None) -> Rollout:
    spec = build_spec(scene)
    if exclude is not None:
        spec.add_exclude(bodyname1=exclude[0], bodyname2=exclude[1])
    model = spec.compile()
    xml = spec.to_xml()
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = initial_state(scene, model)
    mujoco.mj_forward(model, data)
    detector = EventDetector(model, scene)
    detector.reset(data)
    bodies = [model.body(n).id for n in scene.names()]
    qpos, positions = [data.qpos.copy()], [data.xpos[bodies].copy()]
    for _ in range(steps):
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(model, data)
            detector.update(data)
        qpos.append(data.qpos.copy())
        positions.append(data.xpos[bodies].copy())
    return Rollout(scene, model, xml, np.stack(qpos), np.stack(positions), detector.events)


@dataclass(frozen=True)
class Edit:
    """An impossible edit of a clip: from ``frame`` on, ``obj`` vanishes or is shifted by ``offset`` (teleports)."""

    kind: str
    obj: str
    frame: int
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)


def render_clip(rollout: Rollout, size: int = 64, frames: int | None = None, edit: Edit | None = None) -> np.ndarray:
    """``[frames, size, size, 3]`` uint8 frames of the trajectory (all of it by default), with an optional edit."""
    model, n = rollout.model, len(rollout.qpos) if frames is None else frames
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, size, size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    geom = model.geom(edit.obj).id if edit else None
    adr = int(model.joint(edit.obj).qposadr[0]) if edit else None
    rgba = model.geom_rgba[geom].copy() if edit else None
    out = np.empty((n, size, size, 3), np.uint8)
    try:
        for t in range(n):
            data.qpos[:] = rollout.qpos[t]
            if edit is not None and t >= edit.frame:
                if edit.kind == "vanish":
                    model.geom_rgba[geom, 3] = 0.0
                elif edit.kind == "teleport":
                    data.qpos[adr : adr + 3] += edit.offset
            mujoco.mj_kinematics(model, data)
            renderer.update_scene(data, camera=CAMERA)
            out[t] = renderer.render()
    finally:
        renderer.close()
        if edit is not None:
            model.geom_rgba[geom] = rgba
    return out


__all__ = ["FPS", "Edit", "Rollout", "render_clip", "simulate"]
