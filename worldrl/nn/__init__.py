"""Shared layers."""

from worldrl.nn.mlp import mlp, num_parameters, orthogonal_init_
from worldrl.nn.normalizer import Normalizer

__all__ = ["Normalizer", "mlp", "num_parameters", "orthogonal_init_"]
