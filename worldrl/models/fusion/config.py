"""What a fusion model is built from: the Gemma 3 source, the world branch, the projection and what trains."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from worldrl.config_loading import check_fields
from worldrl.errors import ModelConfigurationError

PROJECTION_MODES = ("spatial", "channel")
WORLD_KINDS = ("diffusers", "worldrl")


@dataclass
class WorldSpec:
    """Where the world branch comes from."""

    kind: str = "diffusers"
    """``diffusers``: a video VAE (``AutoencoderKLWan``, ``AutoencoderKLCosmos``); ``worldrl``: a worldrl checkpoint."""
    source: str = ""
    """Local directory or Hub repo id."""
    model_class: str = "AutoencoderKLWan"
    """diffusers class name (``kind="diffusers"``)."""
    subfolder: str | None = None
    """Subfolder of the source holding the VAE (``"vae"`` inside a Cosmos-Predict2 pipeline repo)."""
    image_size: int = 32
    """Frames are resized to this square size before the world encoder (the latent grid follows from it)."""

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "kind": (self.kind in WORLD_KINDS, f"one of {WORLD_KINDS}"),
                "source": (bool(self.source), "a local directory or Hub id"),
                "image_size": (self.image_size >= 8, ">= 8"),
            },
        )

    @classmethod
    def coerce(cls, value: WorldSpec | dict[str, Any] | str | None) -> WorldSpec | None:
        """A spec from itself, a dict (YAML), or a bare source string (a diffusers VAE)."""
        if value is None or isinstance(value, WorldSpec):
            return value
        if isinstance(value, str):
            return cls(source=value)
        if isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ModelConfigurationError(f"world: unknown field(s) {unknown}")
            return cls(**value)
        raise ModelConfigurationError(
            f"world must be a WorldSpec, a dict or a source string, got {type(value).__name__}"
        )


@dataclass
class FusionConfig:
    """A fusion model: Gemma 3 + (optionally) a world branch."""

    gemma: str
    """Gemma 3 source: ``google/gemma-3-4b-it`` or a local directory with the model and its processor."""
    enable_world: bool = True
    """False: plain Gemma 3 (bitwise the same logits and tokens)."""
    world: WorldSpec | None = None
    projection_mode: str = "spatial"
    """``spatial``: one token per latent position (features = channels); ``channel``: one token per channel and
    latent frame (features = the spatial map)."""
    world_steps: int = 0
    """Future latents the world model predicts (its ``imagine``), fed as world tokens after the observed ones."""
    max_world_frames: int = 16
    """Latent time steps the temporal embedding covers (observed + predicted)."""
    freeze_gemma_vision: bool = True
    freeze_gemma_language: bool = True
    freeze_world: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the checkpoint (training run, question set)."""

    def __post_init__(self) -> None:
        self.world = WorldSpec.coerce(self.world)
        check_fields(
            self,
            {
                "projection_mode": (self.projection_mode in PROJECTION_MODES, f"one of {PROJECTION_MODES}"),
                "world_steps": (self.world_steps >= 0, ">= 0"),
                "max_world_frames": (self.max_world_frames >= 1, ">= 1"),
                "world": (self.world is not None or not self.enable_world, "a WorldSpec when enable_world=True"),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ModelConfigurationError(f"fusion config: unknown field(s) {unknown}")
        return cls(**data)


__all__ = ["PROJECTION_MODES", "WORLD_KINDS", "FusionConfig", "WorldSpec"]
