"""The ``vjepa2`` family's config: encoder, masked predictor, masking, EMA target and the action-conditioned
predictor (V-JEPA 2 and V-JEPA 2-AC; sizes of the public models in ``../shared/REFERENCE.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldrl.config_loading import check_fields
from worldrl.models.base import WorldModelConfig
from worldrl.models.vjepa2.masking import STRATEGIES


def transformer_rules(config: Any) -> dict[str, tuple[bool, str]]:
    """``check_fields`` rules every transformer config shares: 3D RoPE rotates a third of each head per axis, so a
    head needs at least 6 dims."""
    dim, heads = config.dim, config.num_heads
    return {
        "dim": (
            dim > 0 and heads > 0 and dim % heads == 0 and dim // heads >= 6,
            "divisible by num_heads with at least 6 per head",
        ),
        "depth": (config.depth >= 1, "at least 1"),
    }


@dataclass
class EncoderConfig:
    """The video ViT over 3D tubelets (or a pretrained V-JEPA 2 checkpoint in its place)."""

    pretrained: str = ""
    """A transformers ``VJEPA2Model`` checkpoint (local directory or Hub id such as ``facebook/vjepa2-vitl-fpc64-256``)
    used as the frozen encoder; its size fields then override the ones below and it is referenced, not copied, by
    checkpoints. Empty: train a ViT from scratch with masked latent prediction."""
    image_size: int = 64
    """Square input size S: frames are resized (shorter side) and centre-cropped to S x S."""
    patch_size: int = 8
    """Spatial patch size (V-JEPA 2: 16)."""
    tubelet: int = 2
    """Frames per tubelet (V-JEPA 2: 2); single frames are repeated to one tubelet."""
    dim: int = 288
    """Token width (ViT-L: 1024)."""
    depth: int = 6
    """Transformer blocks."""
    num_heads: int = 6
    """Attention heads; ``dim / num_heads`` must be at least 6 (3D RoPE rotates a third per axis)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "image_size": (
                    self.image_size > 0 and self.patch_size > 0 and self.image_size % self.patch_size == 0,
                    "a positive multiple of patch_size",
                ),
                "tubelet": (self.tubelet >= 1, "at least 1"),
                **transformer_rules(self),
            },
        )


@dataclass
class PredictorConfig:
    """The narrow predictor of masked latent prediction (V-JEPA 2: 12 layers, width 384, 12 heads)."""

    dim: int = 144
    """Predictor width (narrower than the encoder)."""
    depth: int = 4
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads (at least 6 dims per head)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                **transformer_rules(self),
            },
        )


@dataclass
class MaskingConfig:
    """Which tokens the context encoder sees (``worldrl.models.vjepa2.masking``)."""

    strategy: str = "multiblock"
    """multiblock (V-JEPA 2), block, random (tubes), temporal (later time slots), spatial (same region per frame)."""
    mask_ratio: float = 0.5
    """Fraction of tokens to predict (every strategy but multiblock, whose sets fix their own scales)."""
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    """Range of block aspect ratios (width / height)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "strategy": (self.strategy in STRATEGIES, f"one of {STRATEGIES}"),
                "mask_ratio": (0.0 < self.mask_ratio < 1.0, "in (0, 1)"),
                "aspect_ratio": (
                    len(self.aspect_ratio) == 2 and 0 < self.aspect_ratio[0] <= self.aspect_ratio[1],
                    "(low, high) with 0 < low <= high",
                ),
            },
        )


@dataclass
class VJEPA2Config(WorldModelConfig):
    """V-JEPA 2 world model: masked latent video pretraining plus the action-conditioned predictor (V-JEPA 2-AC)."""

    architecture_version: ClassVar[int] = 1
    """1: the first layout (encoder, target_encoder, predictor, action_predictor)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The video encoder (or a pretrained checkpoint)."""
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    """The masked-prediction predictor."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """The masking strategy of masked latent prediction."""
    action_predictor: PredictorConfig = field(default_factory=PredictorConfig)
    """The block-causal action-conditioned predictor (V-JEPA 2-AC: 24 layers, width 1024, 16 heads)."""
    cameras: tuple[str, ...] = ()
    """Dataset camera keys to observe; empty: every ``observation.images.*`` key. Cameras are encoded separately
    by the shared encoder; the AC predictor tags each camera's tokens with a learned embedding."""
    state_key: str = "observation.state"
    """Proprioceptive key read as V-JEPA 2-AC's state token when the dataset has it (empty: no state token)."""
    train_encoder: bool = True
    """Train the encoder by masked latent prediction (with an EMA target); False freezes it (a pretrained encoder
    is always frozen) and only the AC predictor learns."""
    ema_momentum: float = 0.99925
    """Target-encoder EMA momentum (V-JEPA 2's constant)."""
    ema_momentum_end: float | None = None
    """When set, the momentum ramps linearly from ``ema_momentum`` to this over ``ema_ramp_steps`` (I-JEPA style)."""
    ema_ramp_steps: int = 0
    """Length of the momentum ramp in optimizer steps."""
    jepa_weight: float = 1.0
    """Weight of the masked latent prediction loss."""
    ac_weight: float = 1.0
    """Weight of the AC losses (teacher forcing + rollout)."""
    rollout_steps: int = 2
    """Autoregressive steps of the AC rollout loss (V-JEPA 2-AC: 2); 0 disables it."""
    residual_prediction: bool = True
    """The AC predictor outputs the change from the current frame's latents (zero-initialised output: untrained,
    it repeats the last frame); False: V-JEPA 2-AC's absolute prediction."""
    context_frames: int = 4
    """Frames of history the AC predictor attends to when imagining (the state keeps this many)."""
    encoder_lr_scale: float = 1.0
    """Learning rate of the encoder relative to the predictors."""
    activation_checkpointing: bool = False
    """Recompute transformer activations in the backward pass (the low-memory preset)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "ema_momentum": (0.0 <= self.ema_momentum < 1.0, "in [0, 1)"),
                "ema_momentum_end": (self.ema_momentum_end is None or 0.0 <= self.ema_momentum_end <= 1.0, "in [0, 1]"),
                "ema_ramp_steps": (self.ema_ramp_steps >= 0, ">= 0"),
                "rollout_steps": (self.rollout_steps >= 0, ">= 0"),
                "context_frames": (self.context_frames >= 1, ">= 1"),
                "jepa_weight": (self.jepa_weight >= 0, ">= 0"),
                "ac_weight": (self.ac_weight > 0, "> 0"),
                "encoder_lr_scale": (self.encoder_lr_scale > 0, "> 0"),
            },
        )

    @classmethod
    def tiny(cls) -> dict[str, Any]:
        return {
            "encoder": {"image_size": 16, "patch_size": 8, "dim": 24, "depth": 1, "num_heads": 2},
            "predictor": {"dim": 12, "depth": 1, "num_heads": 2},
            "action_predictor": {"dim": 12, "depth": 1, "num_heads": 2},
            "masking": {"strategy": "random"},
            "context_frames": 2,
        }


__all__ = ["EncoderConfig", "MaskingConfig", "PredictorConfig", "VJEPA2Config"]
