"""Pictures of predicted states: ``render_mode="rgb_array"`` of the learned envs.

* MuJoCo tasks whose observation determines the pose: the real env's model is set to the predicted
  ``qpos``/``qvel`` and rendered offscreen (headless machines: ``MUJOCO_GL=egl``). Positions the observation
  excludes (the root x of locomotion tasks) are drawn at 0, so the camera follows the body in place.
* Pendulum-v1: the pole is drawn with numpy (pygame may be missing).
* Pixel models: the decoded frame itself.
* Anything else (unknown vector tasks, latent-only models): one bar per feature, a readable fallback.

Renderers are found by task id in a registry (``register_renderer``) and return ``uint8 [H, W, 3]`` frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from worldrl.models.task_spec import TaskSpec

Size = tuple[int, int]
"""(height, width) of rendered frames."""


class Renderer(Protocol):
    def __call__(self, vector: np.ndarray) -> np.ndarray:
        """Frame ``uint8 [H, W, 3]`` for one observation (or latent vector)."""

    def close(self) -> None: ...


# --------------------------------------------------------------------------- MuJoCo: obs -> (qpos, qvel)
def _root_x_excluded(n_pos: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Locomotion observations are ``qpos[1:]`` then ``qvel``; the root x is set to 0."""

    def to_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([[0.0], obs[:n_pos]]), obs[n_pos:]

    return to_state


def inverted_pendulum_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return obs[:2], obs[2:4]


def reacher_state(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """obs = cos(q[:2]), sin(q[:2]), target xy, qvel[:2], fingertip - target (xy); the target does not move."""
    joints = np.arctan2(obs[2:4], obs[0:2])
    return np.concatenate([joints, obs[4:6]]), np.concatenate([obs[6:8], [0.0, 0.0]])


MUJOCO_STATES: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "InvertedPendulum-v5": inverted_pendulum_state,
    "HalfCheetah-v5": _root_x_excluded(8),
    "Hopper-v5": _root_x_excluded(5),
    "Walker2d-v5": _root_x_excluded(8),
    "Reacher-v5": reacher_state,
}
"""How each MuJoCo task's observation maps to the simulator's ``(qpos, qvel)``."""


class MujocoStateRenderer:
    """Sets a real MuJoCo env to the predicted pose and renders it offscreen."""

    def __init__(self, task_id: str, size: Size) -> None:
        import gymnasium as gym

        self.to_state = MUJOCO_STATES[task_id]
        self.env = gym.make(task_id, render_mode="rgb_array", height=size[0], width=size[1])
        self.env.reset(seed=0)

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        qpos, qvel = self.to_state(np.asarray(vector, dtype=np.float64))
        self.env.unwrapped.set_state(qpos, qvel)
        return np.ascontiguousarray(self.env.render(), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()


# --------------------------------------------------------------------------- numpy drawings
def draw_segment(canvas: np.ndarray, start: np.ndarray, end: np.ndarray, radius: float, color: tuple[int, ...]) -> None:
    """Paint a capsule (a thick line with round ends) onto ``canvas [H, W, 3]`` in place."""
    rows, cols = np.mgrid[: canvas.shape[0], : canvas.shape[1]]
    points = np.stack([cols, rows], axis=-1).astype(np.float64)
    direction = end - start
    t = np.clip(((points - start) @ direction) / max(float(direction @ direction), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(points - (start + t[..., None] * direction), axis=-1)
    canvas[distance <= radius] = color


def pendulum_frame(obs: np.ndarray, size: Size) -> np.ndarray:
    """Gymnasium's Pendulum picture: a red pole from the centre, upright at angle 0 (obs = cos, sin, thdot)."""
    height, width = size
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    centre = np.array([width / 2.0, height / 2.0])
    length = 0.4 * min(height, width)
    cos, sin = float(obs[0]), float(obs[1])
    tip = centre + length * np.array([sin, -cos])  # screen y points down
    draw_segment(canvas, centre, tip, 0.05 * min(height, width), (204, 77, 77))
    draw_segment(canvas, centre, centre, 0.02 * min(height, width), (0, 0, 0))
    return canvas


class PendulumRenderer:
    def __init__(self, task: TaskSpec, size: Size) -> None:
        self.size = size

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        return pendulum_frame(vector, self.size)

    def close(self) -> None:
        pass


def bar_frame(values: np.ndarray, size: Size) -> np.ndarray:
    """One vertical bar per value, squashed by tanh into the frame (blue up, orange down)."""
    height, width = size
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    values = np.tanh(np.nan_to_num(np.asarray(values, dtype=np.float64).ravel()))
    middle = height // 2
    edges = np.linspace(0, width, len(values) + 1).astype(int)
    for value, left, right in zip(values, edges[:-1], edges[1:]):
        top = int(round(middle - value * (middle - 1)))
        low, high = sorted((top, middle))
        canvas[low : high + 1, left : max(left + 1, right - 1)] = (31, 119, 180) if value >= 0 else (255, 127, 14)
    canvas[middle] = 0
    return canvas


class BarRenderer:
    def __init__(self, task: TaskSpec | None, size: Size) -> None:
        self.size = size

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        return bar_frame(vector, self.size)

    def close(self) -> None:
        pass


class PixelRenderer:
    """Pixel models: the decoded frame, as uint8 RGB (grey frames are repeated over 3 channels)."""

    def __init__(self, task: TaskSpec, size: Size) -> None:
        self.size = size

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        frame = np.asarray(vector)
        if frame.dtype != np.uint8:
            frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        if frame.shape[-1] == 1:
            frame = np.repeat(frame, 3, axis=-1)
        return np.ascontiguousarray(frame[..., :3])

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- registry
RendererFactory = Callable[[TaskSpec, Size], Renderer]
_RENDERERS: dict[str, RendererFactory] = {"Pendulum-v1": PendulumRenderer}
for _task_id in MUJOCO_STATES:
    _RENDERERS[_task_id] = lambda task, size: MujocoStateRenderer(task.task_id, size)


def register_renderer(task_id: str, factory: RendererFactory) -> None:
    """Draw observations of ``task_id`` with ``factory(task, (height, width))``."""
    _RENDERERS[task_id] = factory


def make_renderer(task: TaskSpec, size: Size, can_decode: bool = True) -> Renderer:
    """The renderer for a model's task; latent-only models (``can_decode=False``) get bars of the latent."""
    if not can_decode:
        return BarRenderer(task, size)
    if task.is_pixel:
        return PixelRenderer(task, size)
    factory = _RENDERERS.get(task.task_id or "", BarRenderer)
    return factory(task, size)
