"""A synthetic video dataset for smoke tests: a coloured square moving on a dark canvas, pushed by the action.

Dynamics (per step): ``velocity <- 0.7 * velocity + 0.3 * action``, ``position <- position + speed * velocity``,
bouncing off the walls; actions are a random walk in [-1, 1]^2. Written as a LeRobot dataset with the frames
(``observation.images.front``, PNG inside the parquet), ``observation.state`` = (x, y, vx, vy) in [-1, 1] and
``action``: what the ``vjepa2_debug`` preset trains on (no simulator, no rendering, seconds to write).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldrl.config_loading import check_fields
from worldrl.data.writer import LeRobotDatasetWriter


@dataclass
class MovingShapesConfig:
    """Size of the synthetic dataset."""

    episodes: int = 16
    """Episodes to write."""
    steps: int = 32
    """Frames per episode."""
    image_size: int = 32
    """Square frame size in pixels."""
    square: int = 6
    """Side of the square in pixels."""
    speed: float = 0.15
    """Fraction of the free range crossed per step at unit velocity."""
    fps: int = 10
    """Frame rate recorded in the dataset."""
    seed: int = 0
    """Seed of the actions, start positions and colours."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "episodes": (self.episodes >= 1, ">= 1"),
                "steps": (self.steps >= 2, ">= 2"),
                "image_size": (self.image_size >= 8, ">= 8"),
                "square": (1 <= self.square < self.image_size, "in [1, image_size)"),
                "fps": (self.fps >= 1, ">= 1"),
            },
        )


def render(position: np.ndarray, color: np.ndarray, size: int, square: int) -> np.ndarray:
    """``[size, size, 3]`` uint8: the square centred at ``position`` in [-1, 1]^2 (x right, y down)."""
    frame = np.full((size, size, 3), 20, np.uint8)
    free = size - square
    left, top = np.round((position + 1) / 2 * free).astype(int)
    frame[top : top + square, left : left + square] = color
    return frame


def write_moving_shapes(root: str | Path, config: MovingShapesConfig | None = None) -> Path:
    """Write the dataset to ``root`` (which must not exist yet); returns ``root``."""
    config = config or MovingShapesConfig()
    rng = np.random.default_rng(config.seed)
    s = config.image_size
    features = {
        "observation.images.front": {"dtype": "image", "shape": [s, s, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "vx", "vy"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["ax", "ay"]},
    }
    with LeRobotDatasetWriter.create(root, fps=config.fps, features=features) as writer:
        for _ in range(config.episodes):
            position = rng.uniform(-0.8, 0.8, 2)
            velocity = np.zeros(2)
            color = rng.integers(120, 256, 3).astype(np.uint8)
            action = rng.uniform(-1, 1, 2)
            for _ in range(config.steps):
                action = np.clip(action + rng.normal(0, 0.5, 2), -1, 1)
                writer.add_frame(
                    {
                        "observation.images.front": render(position, color, s, config.square),
                        "observation.state": np.concatenate([position, velocity]).astype(np.float32),
                        "action": action.astype(np.float32),
                    },
                    task="move the square",
                )
                velocity = 0.7 * velocity + 0.3 * action
                position = position + config.speed * velocity
                for i in range(2):  # bounce
                    if abs(position[i]) > 1:
                        position[i] = np.sign(position[i]) * 2 - position[i]
                        velocity[i] = -velocity[i]
            writer.save_episode()
    return Path(root)


__all__ = ["MovingShapesConfig", "render", "write_moving_shapes"]
