"""World-slot layout as pure functions: insertion after <bos> (left-padded batches too) and removal."""

from __future__ import annotations

import pytest
import torch

from worldrl.errors import ModelConfigurationError
from worldrl.models.fusion.projection import latents_to_tokens
from worldrl.models.fusion.sequence import insert_world_slots, remove_world_slots
from worldrl.models.fusion.world_encoders import check_frame_count, usable_frame_count

BOS, PAD, SOW, SLOT, EOW = 2, 0, 90, 91, 92


def test_slots_go_after_bos_in_left_padded_rows_and_come_out_again():
    ids = torch.tensor([[PAD, PAD, BOS, 5, 6], [BOS, 7, 8, 9, 10]])
    mask = (ids != PAD).long()
    labels = ids.clone()
    slots = torch.tensor([SOW, SLOT, SLOT, EOW])
    out = insert_world_slots({"input_ids": ids, "attention_mask": mask, "labels": labels}, BOS, slots)
    assert out["input_ids"].tolist() == [
        [PAD, PAD, BOS, SOW, SLOT, SLOT, EOW, 5, 6],
        [BOS, SOW, SLOT, SLOT, EOW, 7, 8, 9, 10],
    ]
    assert out["attention_mask"][0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert out["labels"][1, 1:5].tolist() == [-100] * 4
    generated = torch.cat([out["input_ids"], torch.tensor([[SOW], [11]])], dim=1)  # a later SOW is kept
    back = remove_world_slots(generated, torch.tensor([SOW, SLOT, EOW]), 4)
    assert back.tolist() == [[PAD, PAD, BOS, 5, 6, SOW], [BOS, 7, 8, 9, 10, 11]]


def test_a_prompt_without_bos_is_refused():
    with pytest.raises(ModelConfigurationError, match="no <bos>"):
        insert_world_slots({"input_ids": torch.tensor([[5, 6]])}, BOS, torch.tensor([SOW, EOW]), {})


def test_token_layouts():
    latents = torch.arange(2 * 3 * 2 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2, 2)  # B, C, T, H, W
    spatial, times = latents_to_tokens(latents, "spatial")
    assert spatial.shape == (2, 8, 3) and times.tolist() == [0] * 4 + [1] * 4
    assert spatial[0, 5].tolist() == latents[0, :, 1, 0, 1].tolist()
    channel, times = latents_to_tokens(latents, "channel")
    assert channel.shape == (2, 6, 4) and times.tolist() == [0] * 3 + [1] * 3
    assert channel[0, 4].tolist() == latents[0, 1, 1].flatten().tolist()


def test_causal_vae_frame_counts():
    check_frame_count(9, 4)
    for bad in (0, 4, 8):
        with pytest.raises(ModelConfigurationError, match="1 \\+ k\\*4"):
            check_frame_count(bad, 4)
    assert usable_frame_count(8, 4) == 5 and usable_frame_count(8, 8) == 1 and usable_frame_count(8, 1) == 8
