"""Fusion family: Gemma 3 reading "world tokens" from a world model (after TheWorld, Cosmos + Gemma 3).

``WorldGemma.from_pretrained("google/gemma-3-4b-it", enable_world=True, world=WorldSpec(...))`` wraps transformers'
``Gemma3ForConditionalGeneration``: the world encoder (a diffusers Cosmos / Wan video VAE, or any worldrl world
model) turns the frames into latents, ``WorldProjector`` maps them to Gemma's embedding width, and the tokens go
between ``<start_of_world>`` and ``<end_of_world>`` right after ``<bos>``. With ``enable_world=False`` the model is
plain Gemma 3, bit for bit. Files: ``config`` (what to build), ``world_encoders`` (the registry of world branches),
``projection`` (latents -> tokens), ``sequence`` (inserting the world slots), ``freezing`` (stages), ``model``,
``checkpoint`` (save/load referencing the frozen backbones), ``tiny`` (offline tiny Gemma 3 + tokenizer + VAE).
"""

from worldrl.models.fusion.config import PROJECTION_MODES, FusionConfig, WorldSpec
from worldrl.models.fusion.freezing import STAGES, trainable_summary
from worldrl.models.fusion.model import WORLD_TOKENS, WorldGemma

__all__ = ["PROJECTION_MODES", "STAGES", "WORLD_TOKENS", "FusionConfig", "WorldGemma", "WorldSpec", "trainable_summary"]
