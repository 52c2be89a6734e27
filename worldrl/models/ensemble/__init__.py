"""The ``ensemble`` family: a probabilistic MLP ensemble world model (PETS / MBPO)."""

from worldrl.models.base import register_family
from worldrl.models.ensemble.config import ACTIVATIONS, EnsembleConfig
from worldrl.models.ensemble.layers import EnsembleLinear, EnsembleMLP
from worldrl.models.ensemble.model import EnsembleWorldModel

register_family("ensemble", EnsembleConfig, EnsembleWorldModel)

__all__ = ["ACTIVATIONS", "EnsembleConfig", "EnsembleLinear", "EnsembleMLP", "EnsembleWorldModel"]
