"""``WorldGemma``: transformers' ``Gemma3ForConditionalGeneration`` that also reads world tokens.

A Gemma 3 user's code works unchanged: ``processor.apply_chat_template(messages, tokenize=True, return_dict=True,
return_tensors="pt")`` -> ``model.generate(**inputs)`` -> ``processor.decode``. The model inserts
``[<start_of_world>, <world>*N, <end_of_world>]`` after ``<bos>`` and a forward hook on Gemma's scaled embedding
replaces those rows by the projected world latents times Gemma's ``sqrt(hidden)`` scale, so the ids path of the
stock model runs (``generate`` included: the stock class refuses ``inputs_embeds``). The world sees
``world_frames [B, T, 3, H, W]`` in [-1, 1] when given (a context clip), else the prompt's image (Gemma's
``pixel_values`` are already in [-1, 1]); ``world_latents`` skips the encoder. Generated sequences come back
without the world positions. With ``enable_world=False`` nothing is added or hooked: it *is* plain Gemma 3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldrl.errors import ModelConfigurationError
from worldrl.models.fusion.config import FusionConfig, WorldSpec
from worldrl.models.fusion.freezing import apply_freezing, describe_trainable, stage_flags
from worldrl.models.fusion.projection import WorldProjector, token_count
from worldrl.models.fusion.sequence import FILL_VALUES, insert_world_slots, remove_world_slots
from worldrl.models.fusion.sources import resolve_local_dir
from worldrl.models.fusion.world_encoders import WorldEncoder, load_world_encoder

WORLD_TOKENS = ("<start_of_world>", "<world_soft_token>", "<end_of_world>")
"""Added special tokens: start, the placeholder of each world token, end."""


def add_world_tokens(processor: Any, gemma: nn.Module) -> list[int]:
    """Add ``WORLD_TOKENS`` to the tokenizer (idempotent) and make room for them in the embedding table."""
    tokenizer = processor.tokenizer
    tokenizer.add_tokens(list(WORLD_TOKENS), special_tokens=True)
    ids = [int(tokenizer.convert_tokens_to_ids(t)) for t in WORLD_TOKENS]
    if max(ids) >= gemma.get_input_embeddings().num_embeddings:  # real Gemma 3 has spare rows; tiny ones do not
        gemma.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
    return ids


class WorldGemma(nn.Module):
    """Gemma 3 + a world branch; build it with ``from_pretrained``."""

    def __init__(self, gemma: nn.Module, processor: Any, config: FusionConfig, world: WorldEncoder | None) -> None:
        super().__init__()
        self.gemma, self.processor, self.config, self.world = gemma, processor, config, world
        self.projector: WorldProjector | None = None
        self._payload: torch.Tensor | None = None
        if config.enable_world:
            if world is None:
                raise ModelConfigurationError("enable_world=True needs a world branch (world=...)")
            if config.world_steps and not world.can_predict:
                world.predict(torch.empty(0), config.world_steps)  # raises the one-line error
            ids = add_world_tokens(processor, gemma)
            self.register_buffer("world_ids", torch.tensor(ids), persistent=False)
            hidden = int(gemma.config.text_config.hidden_size)
            grid = world.latent_grid()
            self.projector = WorldProjector(
                world.latent_channels, grid, hidden, config.projection_mode, config.max_world_frames
            )
            embedding = gemma.get_input_embeddings()
            self.projector.to(embedding.weight.device)
            world.to(embedding.weight.device)
            embedding.register_forward_hook(self._world_hook)
        flags = {k: getattr(config, k) for k in ("freeze_gemma_vision", "freeze_gemma_language", "freeze_world")}
        apply_freezing(gemma, world, [self.projector] if self.projector is not None else [], flags)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        gemma_name_or_path: str,
        enable_world: bool = True,
        world: WorldSpec | dict[str, Any] | str | None = None,
        projection_mode: str = "spatial",
        world_steps: int = 0,
        freeze_gemma_vision: bool = True,
        freeze_gemma_language: bool = True,
        freeze_world: bool = True,
        stage: str | None = None,
        max_world_frames: int = 16,
        dtype: torch.dtype | str | None = None,
        device_map: Any = None,
        verbose: bool = True,
    ) -> WorldGemma:
        """A Gemma 3 source (Hub id or directory) with a world branch, or a saved fusion checkpoint directory.

        ``stage`` (``projection``, ``vision``, ``language``, ``world``, ``all``) overrides the three freeze flags.
        Prints the trainable parameter count and share when ``verbose``.
        """
        from worldrl.models.fusion.checkpoint import is_fusion_checkpoint, load_fusion

        if is_fusion_checkpoint(gemma_name_or_path):
            model = load_fusion(gemma_name_or_path, dtype=dtype, device_map=device_map)
        else:
            flags = dict(
                freeze_gemma_vision=freeze_gemma_vision,
                freeze_gemma_language=freeze_gemma_language,
                freeze_world=freeze_world,
            )
            config = FusionConfig(
                gemma=str(gemma_name_or_path),
                enable_world=enable_world,
                world=world if enable_world else None,
                projection_mode=projection_mode,
                world_steps=world_steps,
                max_world_frames=max_world_frames,
                **(stage_flags(stage) if stage else flags),
            )
            model = cls.build(config, dtype=dtype, device_map=device_map)
        if verbose:
            print(describe_trainable(model))
        return model

    @classmethod
    def build(
        cls, config: FusionConfig, dtype: Any = None, device_map: Any = None, processor_dir: str | Path | None = None
    ) -> WorldGemma:
        """Load the Gemma 3 source and the world branch named by ``config``."""
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        local = resolve_local_dir(config.gemma, "gemma")
        gemma = Gemma3ForConditionalGeneration.from_pretrained(local, dtype=dtype, device_map=device_map).eval()
        processor = AutoProcessor.from_pretrained(str(processor_dir or local))
        world = load_world_encoder(config.world) if config.enable_world else None
        model = cls(gemma, processor, config, world)
        model.gemma_local_dir = local
        return model

    def save_pretrained(self, directory: str | Path) -> None:
        """config + projector (+ any unfrozen backbone weights) in safetensors; frozen sources by path and sha256."""
        from worldrl.models.fusion.checkpoint import save_fusion

        save_fusion(self, directory)

    # ------------------------------------------------------------------ world tokens
    def check_pixel_values(self, pixel_values: torch.Tensor | None) -> None:
        """One line when images were not preprocessed to the vision tower's size."""
        if pixel_values is None:
            return
        side = int(self.gemma.config.vision_config.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, side, side):
            raise ModelConfigurationError(
                f"pixel_values must be [N, 3, {side}, {side}] for this model's vision tower, got "
                f"{tuple(pixel_values.shape)}: preprocess images with model.processor"
            )

    def world_rows(
        self,
        world_frames: torch.Tensor | None = None,
        world_latents: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unscaled embedding rows ``[B, N + 2, hidden]``: start, the projected world latents, end."""
        if world_latents is None:
            if world_frames is None:
                if pixel_values is None:
                    raise ModelConfigurationError("world tokens need world_frames, world_latents or an image")
                world_frames = pixel_values[:, None]
            steps = self.config.world_steps
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_world):
                world_latents = self.world.predict(world_frames, steps) if steps else self.world.encode(world_frames)
        return self.projector(world_latents.to(self.projector.boundary.device))

    def world_token_count(self, latent_frames: int) -> int:
        return token_count(self.projector.channels, latent_frames, self.projector.grid, self.config.projection_mode)

    def _world_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Replace the rows at world-token ids by the pending world rows (scaled like text rows)."""
        rows = self._payload
        if rows is None:
            return None
        mask = torch.isin(args[0], self.world_ids)
        count = int(mask.sum())
        if count == 0:
            return None
        if count != rows.shape[0] * rows.shape[1] and args[0].shape[0] % rows.shape[0] == 0:
            rows = rows.repeat_interleave(args[0].shape[0] // rows.shape[0], dim=0)  # beams / num_return_sequences
        if count != rows.shape[0] * rows.shape[1]:
            return None  # a decode step that sampled a world id: the table row stands
        scaled = rows.to(output.dtype) * module.embed_scale.to(output.dtype)
        return output.masked_scatter(mask[..., None], scaled)

    @contextlib.contextmanager
    def _pending(self, rows: torch.Tensor) -> Iterator[None]:
        self._payload = rows
        try:
            yield
        finally:
            self._payload = None

    def _with_world(self, inputs: dict[str, Any], world_frames: Any, world_latents: Any) -> tuple[dict, torch.Tensor]:
        rows = self.world_rows(world_frames, world_latents, inputs.get("pixel_values"))
        if rows.shape[0] != inputs["input_ids"].shape[0]:
            raise ModelConfigurationError(
                f"world inputs hold {rows.shape[0]} item(s) but the prompt batch has {inputs['input_ids'].shape[0]}"
            )
        n = rows.shape[1] - 2
        slots = torch.tensor([self.world_ids[0]] + [self.world_ids[1]] * n + [self.world_ids[2]])
        per_token = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.ndim == 2}
        inserted = insert_world_slots(per_token, int(self.gemma.config.text_config.bos_token_id), slots, FILL_VALUES)
        return {**inputs, **inserted}, rows

    # ------------------------------------------------------------------ the Gemma 3 interface
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        world_frames: torch.Tensor | None = None,
        world_latents: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Gemma 3's forward; with world tokens the logits have N + 2 more positions (after ``<bos>``)."""
        self.check_pixel_values(kwargs.get("pixel_values"))
        if not self.config.enable_world:
            return self.gemma(input_ids=input_ids, **kwargs)
        inputs, rows = self._with_world({"input_ids": input_ids, **kwargs}, world_frames, world_latents)
        with self._pending(rows):
            return self.gemma(**inputs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        world_frames: torch.Tensor | None = None,
        world_latents: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Gemma 3's ``generate``; the returned sequences have the prompt's layout (world positions removed)."""
        self.check_pixel_values(kwargs.get("pixel_values"))
        if not self.config.enable_world:
            return self.gemma.generate(input_ids=input_ids, **kwargs)
        inputs, rows = self._with_world({"input_ids": input_ids, **kwargs}, world_frames, world_latents)
        inputs.setdefault("suppress_tokens", self.world_ids.tolist())
        with self._pending(rows):
            out = self.gemma.generate(**inputs)
        if isinstance(out, torch.Tensor):
            return remove_world_slots(out, self.world_ids, rows.shape[1])
        out.sequences = remove_world_slots(out.sequences, self.world_ids, rows.shape[1])
        return out

    @property
    def device(self) -> torch.device:
        return self.gemma.get_input_embeddings().weight.device


__all__ = ["WORLD_TOKENS", "WorldGemma", "add_world_tokens"]
