"""Lay out the world tokens in a tokenised Gemma 3 prompt: ``[<bos>, <start_of_world>, <world>*N, <end_of_world>,
...the rest unchanged]`` (world first, so the temporal context precedes the image and the question), and take
them out of generated sequences again so callers see the layout plain Gemma 3 gives."""

from __future__ import annotations

import torch

from worldrl.errors import ModelConfigurationError

FILL_VALUES = {"attention_mask": 1, "labels": -100, "token_type_ids": 0}
"""What the other per-token tensors hold at world positions (world tokens attend causally and carry no loss)."""


def insert_world_slots(
    tensors: dict[str, torch.Tensor], bos_id: int, slot_ids: torch.Tensor, fills: dict[str, int] | None = None
) -> dict[str, torch.Tensor]:
    """Insert ``slot_ids [N]`` after the first ``<bos>`` of every row of ``tensors["input_ids"]``.

    The other ``[B, L]`` tensors get ``fills[name]`` there (default ``FILL_VALUES``; 0 for other names). Rows keep
    one length, so left-padded batches stay rectangular.
    """
    fills = FILL_VALUES if fills is None else fills
    ids = tensors["input_ids"]
    is_bos = ids == bos_id
    if not bool(is_bos.any(dim=1).all()):
        raise ModelConfigurationError(
            "world tokens go after <bos>, but a prompt has no <bos> token: tokenise with the processor's chat template"
        )
    at = is_bos.int().argmax(dim=1) + 1  # first position after <bos>, per row
    out = {}
    for name, value in tensors.items():
        if value is None or value.ndim != 2 or value.shape != ids.shape:
            out[name] = value
            continue
        insert = slot_ids.to(value) if name == "input_ids" else torch.full_like(slot_ids, fills.get(name, 0)).to(value)
        rows = [torch.cat([row[:i], insert, row[i:]]) for row, i in zip(value, at.tolist())]
        out[name] = torch.stack(rows)
    return out


def remove_world_slots(sequences: torch.Tensor, world_ids: torch.Tensor, count: int) -> torch.Tensor:
    """Drop the first ``count`` world-token positions of each row (those inserted by ``insert_world_slots``)."""
    is_world = torch.isin(sequences, world_ids.to(sequences.device))
    keep = ~(is_world & (is_world.int().cumsum(dim=1) <= count))
    return sequences[keep].view(sequences.shape[0], -1)


__all__ = ["FILL_VALUES", "insert_world_slots", "remove_world_slots"]
