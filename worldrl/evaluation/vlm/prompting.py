"""Items -> Gemma 3 chat prompts and model inputs (the processor's own chat template; nothing model-specific).

A prompt is ``[image(s)] question Options: a; b; c.``; the answer is the model turn. Training batches put the
loss on the answer tokens and ``<end_of_turn>`` only; scoring batches hold one sequence per (item, choice).
Sequences are right-padded (teacher forcing); the world branch gets the context clip as ``world_frames``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldrl.evaluation.vlm.items import VLMItem

IGNORE = -100


def prompt_text(item: VLMItem) -> str:
    if item.choices:
        return f"{item.question} Options: {'; '.join(item.choices)}."
    return item.question


def user_messages(item: VLMItem) -> list[dict[str, Any]]:
    from PIL import Image

    content: list[dict[str, Any]] = [{"type": "image", "image": Image.fromarray(im)} for im in item.images]
    content.append({"type": "text", "text": prompt_text(item)})
    return [{"role": "user", "content": content}]


def encode_prompt(processor: Any, item: VLMItem) -> dict[str, torch.Tensor]:
    """The tokenised user turn and generation prompt, batch of one (the same call a Gemma 3 user makes)."""
    return processor.apply_chat_template(
        user_messages(item), tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )


def answer_ids(processor: Any, text: str) -> torch.Tensor:
    return processor.tokenizer(text + "<end_of_turn>", add_special_tokens=False, return_tensors="pt").input_ids[0]


def world_clip(item: VLMItem, frames: int) -> torch.Tensor:
    """The last ``frames`` frames of the item's clip as ``[T, 3, H, W]`` in [-1, 1] (repeating the first if short)."""
    clip = item.frames[-frames:]
    if len(clip) < frames:
        clip = np.concatenate([np.repeat(clip[:1], frames - len(clip), axis=0), clip])
    return torch.from_numpy(np.array(clip)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def pad_stack(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.stack([torch.cat([r, r.new_full((width - len(r),), value)]) for r in rows])


def build_batch(
    processor: Any,
    pairs: list[tuple[VLMItem, str]],
    world_frames: int | None,
    pad_id: int,
    cache: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs for (item, answer text) pairs: labels on the answer only. ``cache`` keeps each item's
    encoded prompt (the chat template and image processing dominate a tiny model's step otherwise)."""
    ids, types, labels, pixels, clips = [], [], [], [], []
    for item, answer in pairs:
        if cache is None:
            prompt = encode_prompt(processor, item)
        elif item.id not in cache:
            prompt = cache[item.id] = encode_prompt(processor, item)
        else:
            prompt = cache[item.id]
        target = answer_ids(processor, answer)
        p_ids = prompt["input_ids"][0]
        ids.append(torch.cat([p_ids, target]))
        types.append(torch.cat([prompt["token_type_ids"][0], torch.zeros_like(target)]))
        labels.append(torch.cat([torch.full_like(p_ids, IGNORE), target]))
        pixels.append(prompt["pixel_values"])
        if world_frames:
            clips.append(world_clip(item, world_frames))
    input_ids = pad_stack(ids, pad_id)
    batch = {
        "input_ids": input_ids,
        "attention_mask": pad_stack([torch.ones_like(r) for r in ids], 0),
        "token_type_ids": pad_stack(types, 0),
        "labels": pad_stack(labels, IGNORE),
        "pixel_values": torch.cat(pixels),
    }
    if world_frames:
        batch["world_frames"] = torch.stack(clips)
    return batch


__all__ = ["IGNORE", "build_batch", "encode_prompt", "prompt_text", "user_messages", "world_clip"]
