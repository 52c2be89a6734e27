"""The small world model shipped inside the package, so ``gym.make("WorldModel-v0")`` works offline.

It is an ``ensemble`` trained on Pendulum-v1, produced by the project's reproducible script (scripts/) and
installed as package data under ``worldrl/assets/default_model/``.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = ("assets", "default_model")
"""Location of the bundled checkpoint relative to the ``worldrl`` package directory."""
DEFAULT_TASK_ID = "Pendulum-v1"
"""The task the bundled checkpoint simulates."""


def default_model_path() -> Path:
    """Directory of the bundled checkpoint (``config.json``, ``model.safetensors``, ``task.json``)."""
    import worldrl

    return Path(worldrl.__file__).resolve().parent.joinpath(*DEFAULT_MODEL_DIR)


def require_default_model() -> Path:
    """The bundled checkpoint's directory, or a clear error where this install lacks it."""
    path = default_model_path()
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled default world model is missing ({path}); reinstall worldrl, or pass "
            "model=<checkpoint dir or Hub id> to gym.make('WorldModel-v0', ...)"
        )
    return path
