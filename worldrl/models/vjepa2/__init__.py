"""The ``vjepa2`` family: V-JEPA 2 masked latent video pretraining and the action-conditioned predictor
(V-JEPA 2-AC), latent only (``obs_mode="latent"``, ``reward="goal"``), optionally on a pretrained encoder."""

from worldrl.models.base import register_family
from worldrl.models.vjepa2.config import EncoderConfig, MaskingConfig, PredictorConfig, VJEPA2Config
from worldrl.models.vjepa2.masking import VideoMaskGenerator
from worldrl.models.vjepa2.model import VJEPA2WorldModel

register_family("vjepa2", VJEPA2Config, VJEPA2WorldModel)

__all__ = [
    "EncoderConfig",
    "MaskingConfig",
    "PredictorConfig",
    "VJEPA2Config",
    "VJEPA2WorldModel",
    "VideoMaskGenerator",
]
