"""The ``vrnn`` family: DPGMM variational recurrent autoencoder (AIME), from state vectors or pixels."""

from worldrl.models.base import register_family
from worldrl.models.vrnn.config import VRNNConfig
from worldrl.models.vrnn.model import DPGMMVRNNWorldModel

register_family("vrnn", VRNNConfig, DPGMMVRNNWorldModel)

__all__ = ["DPGMMVRNNWorldModel", "VRNNConfig"]
