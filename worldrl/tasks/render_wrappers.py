"""Rendering wrappers for real envs: frames at a requested size, frames as observations, cheaper MuJoCo scenes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldrl.errors import EnvError


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resample an ``[H, W, 3]`` uint8 frame to ``[height, width, 3]`` (identity if it already fits)."""
    if frame.shape[:2] == (height, width):
        return frame
    from PIL import Image  # pillow ships with matplotlib, a core dependency

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BOX))


class ResizeRender(gym.Wrapper):
    """Resizes ``render()`` output for envs that cannot render at a requested size (classic control)."""

    def __init__(self, env: gym.Env, height: int, width: int):
        super().__init__(env)
        self.height, self.width = height, width

    def render(self) -> np.ndarray:
        return resize_frame(np.asarray(self.env.render()), self.height, self.width)


class PixelObservation(gym.ObservationWrapper):
    """Observation -> ``{"state": obs, "pixels": render()}``, the frame rendered at that observation.

    Unlike gymnasium's ``AddRenderObservation`` it renders nothing at construction, so an async
    vector env's probe env in the parent process never opens a GL context before forking.
    """

    def __init__(self, env: gym.Env, height: int, width: int):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise EnvError(f"PixelObservation needs render_mode='rgb_array', got {env.render_mode!r}")
        pixel_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.observation_space = spaces.Dict({"state": env.observation_space, "pixels": pixel_space}, sort_keys=False)

    def observation(self, observation: Any) -> dict[str, Any]:
        frame = np.asarray(self.env.render())
        if frame.shape != self.observation_space["pixels"].shape:
            raise ValueError(
                f"render() returned a frame of shape {frame.shape}, expected {self.observation_space['pixels'].shape}"
            )
        return {"state": observation, "pixels": frame}


def disable_render_effects(env: gym.Env) -> None:
    """No shadows, no reflections: under software GL (EGL on Mesa) these dominate render time for scenes with a
    large reflective floor, e.g. HalfCheetah-v5 renders 64x64 frames about 10x faster without them."""
    model = getattr(env.unwrapped, "model", None)
    if model is None or not hasattr(model, "light_castshadow"):
        return  # not a MuJoCo env: nothing to switch off
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0


__all__ = ["PixelObservation", "ResizeRender", "disable_render_effects", "resize_frame"]
