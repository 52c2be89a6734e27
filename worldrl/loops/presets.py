"""The world-model half of an online run: which ``model``/``trainer`` sections it fits, from which YAML.

An explicit ``--model-config`` path wins; otherwise the task's preset ``<family>_<task>.yaml`` (family
``ensemble`` unless ``--model-family`` names another, e.g. ``vrnn_pendulum.yaml``) shipped in the package
(``worldrl.configs``, the repository's ``configs/``), so presets work from an installed wheel; otherwise, for the
ensemble, a small generic ensemble.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from worldrl.config_loading import load_yaml
from worldrl.errors import ConfigError, InputNotFoundError

PRESETS_PACKAGE = "worldrl.configs"
"""Where the YAML presets live as package data (``configs/`` of the repository)."""

GENERIC_MODEL: dict[str, Any] = {
    "data": {"window": 2},
    "model": {
        "family": "ensemble",
        "num_members": 5,
        "num_elites": 3,
        "hidden_dims": [200, 200, 200],
        "predict_delta": True,
        "predict_terminal": True,
    },
    "trainer": {"batch_size": 256, "lr": 1.0e-3, "weight_decay": 1.0e-5, "grad_clip": 10.0},
}
"""The small probabilistic ensemble used when a task has no ``configs/ensemble_<task>.yaml`` preset."""


@dataclass
class ModelSpec:
    """The parts of a ``worldrl train`` YAML the loop uses."""

    model: dict[str, Any]
    trainer: dict[str, Any]
    window: int
    source: str


def preset_names(env_id: str) -> list[str]:
    """``HalfCheetah-v5`` -> ``["half_cheetah", "halfcheetah"]``: the preset file stems to look for."""
    base = re.sub(r"-v\d+$", "", env_id.split(":")[-1])
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", base).replace("-", "_").lower()
    return list(dict.fromkeys([snake, snake.replace("_", "")]))


def default_model_config(env_id: str, family: str = "ensemble") -> Path | None:
    """The packaged preset ``<family>_<task>.yaml`` for ``env_id`` (package data, so an installed wheel has it)."""
    presets = resources.files(PRESETS_PACKAGE)
    for name in preset_names(env_id):
        preset = presets / f"{family}_{name}.yaml"
        if preset.is_file():
            return Path(str(preset))
    return None


def load_model_spec(
    path: str | os.PathLike | None,
    env_id: str,
    family: str | None = None,
    options: dict[str, Any] | None = None,
) -> ModelSpec:
    """Model and trainer sections from ``path`` (or the task's preset of ``family``, or the generic ensemble);
    ``family`` given with ``path`` must be the family the file names; ``options`` override model settings."""
    from worldrl.models.base import available_families
    from worldrl.training.run import coerce_numbers

    if family is not None and family not in available_families():
        raise ConfigError(f"unknown model family {family!r}; known families: {available_families()}")
    path = Path(path) if path is not None else default_model_config(env_id, family or "ensemble")
    if path is None and family not in (None, "ensemble"):
        names = " or ".join(f"{family}_{name}.yaml" for name in preset_names(env_id))
        raise ConfigError(f"no packaged {family} preset for {env_id} ({names}); pass --model-config with its YAML")
    if path is None:
        cfg, source = GENERIC_MODEL, "generic ensemble"
    else:
        if not path.is_file():
            raise InputNotFoundError(f"model config {path} does not exist")
        cfg = coerce_numbers(load_yaml(path.read_text(), str(path)) or {})
        source = str(path)
    model = dict(cfg.get("model") or {})
    if options:
        model.update(options)
        source += " with " + ", ".join(f"{key}={value}" for key, value in options.items())
    if not model.get("family"):
        raise ConfigError(f"{source}: model.family is required (e.g. ensemble, vrnn)")
    if family is not None and model["family"] != family:
        raise ConfigError(f"{source} configures model.family {model['family']!r}, but --model-family is {family!r}")
    window = int((cfg.get("data") or {}).get("window", 2))
    if window < 2:
        raise ConfigError(f"{source}: data.window must be >= 2 (a transition needs two steps), got {window}")
    return ModelSpec(model, dict(cfg.get("trainer") or {}), window, source)


__all__ = ["GENERIC_MODEL", "ModelSpec", "default_model_config", "load_model_spec", "preset_names"]
