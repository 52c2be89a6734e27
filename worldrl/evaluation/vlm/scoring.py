"""Answer questions with a (fusion) Gemma 3: multiple choice by the log-likelihood of each option as the model's
turn (no parsing of free text), free-form items by greedy generation."""

from __future__ import annotations

from typing import Any

import torch

from worldrl.evaluation.vlm.items import VLMItem
from worldrl.evaluation.vlm.prompting import IGNORE, build_batch, encode_prompt, world_clip
from worldrl.models.fusion.world_encoders import usable_frame_count


def world_frame_count(model: Any, items: list[VLMItem]) -> int | None:
    """Frames the world branch takes from these items' clips (1 + k*r for a causal VAE); None without a world."""
    if not model.config.enable_world:
        return None
    available = min(len(item.frames) for item in items)
    return usable_frame_count(available, model.world.temporal_ratio)


def sequence_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over the labelled positions, per row. ``logits`` may hold world positions after
    ``<bos>`` (right-padded rows: ``<bos>`` first), which carry no label and are dropped here."""
    extra = logits.shape[1] - labels.shape[1]
    if extra:
        logits = torch.cat([logits[:, :1], logits[:, 1 + extra :]], dim=1)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != IGNORE
    picked = logp.gather(-1, target.clamp(min=0)[..., None])[..., 0]
    return (picked * mask).sum(dim=1)


def _move(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def score_choices(model: Any, items: list[VLMItem], batch_size: int = 32) -> list[list[float]]:
    """Log-likelihood of every choice of every item."""
    pairs = [(item, choice) for item in items for choice in item.choices]
    frames = world_frame_count(model, items)
    pad = model.processor.tokenizer.pad_token_id
    scores: list[float] = []
    prompts: dict[str, dict[str, torch.Tensor]] = {}
    for start in range(0, len(pairs), batch_size):
        batch = build_batch(model.processor, pairs[start : start + batch_size], frames, pad, prompts)
        labels = batch.pop("labels")
        logits = model(**_move(batch, model.device)).logits
        scores += sequence_log_likelihood(logits, labels.to(logits.device)).tolist()
    out, i = [], 0
    for item in items:
        out.append(scores[i : i + len(item.choices)])
        i += len(item.choices)
    return out


@torch.no_grad()
def generate_answer(model: Any, item: VLMItem, max_new_tokens: int = 16) -> str:
    inputs = encode_prompt(model.processor, item)
    frames = world_frame_count(model, [item])
    if frames:
        inputs["world_frames"] = world_clip(item, frames)[None]
    inputs = _move(dict(inputs), model.device)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return model.processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def predict(model: Any, items: list[VLMItem], batch_size: int = 32, max_new_tokens: int = 16) -> list[dict[str, Any]]:
    """One record per item: the prediction, whether it is right, and the choice scores."""
    model.eval()
    choice_items = [item for item in items if item.choices]
    scored = dict(zip((item.id for item in choice_items), score_choices(model, choice_items, batch_size)))
    records = []
    for item in items:
        if item.choices:
            scores = scored[item.id]
            prediction = item.choices[max(range(len(scores)), key=scores.__getitem__)]
        else:
            scores, prediction = [], generate_answer(model, item, max_new_tokens)
        records.append(
            {
                "id": item.id,
                "type": item.type,
                "question": item.question,
                "choices": list(item.choices),
                "answer": item.answer,
                "prediction": prediction,
                "correct": bool(item.is_correct(prediction)),
                "scores": scores,
            }
        )
    return records


__all__ = ["generate_answer", "predict", "score_choices", "sequence_log_likelihood", "world_frame_count"]
