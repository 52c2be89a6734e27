"""scripts/pusht_pixel_diagnosis.py: the block's pixels, the region error and the decoded rows it compares."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from _models import VRNN_TINY
from _scripts import load_script

from worldrl.models import TaskSpec, build_model

diagnosis = load_script("pusht_pixel_diagnosis")


def test_block_mask_finds_the_block_colour_only():
    frame = np.full((4, 4, 3), 255, np.uint8)  # white floor
    frame[0, 0] = (119, 136, 153)  # the block
    frame[1, 1] = (125, 140, 150)  # the block, slightly shaded
    frame[2, 2] = (144, 238, 144)  # the goal's light green
    frame[3, 3] = (65, 105, 225)  # the pusher's royal blue
    mask = diagnosis.block_mask(frame)
    assert mask[0, 0] and mask[1, 1]
    assert mask.sum() == 2


def test_region_errors_average_inside_the_region_per_horizon_then_overall():
    truth = np.zeros((1, 2, 2, 2, 3), np.float32)
    pred = truth.copy()
    pred[0, 0, 0, 0] = 3.0  # inside the region at step 1
    pred[0, 1, 1, 1] = 30.0  # outside the region at step 2: not counted
    region = np.zeros((1, 2, 2, 2), bool)
    region[0, 0, 0, :] = True
    region[0, 1, 0, 0] = True
    first, second, overall = diagnosis.region_errors(pred, truth, region, (1, 2))
    assert first == 9.0 / 2  # one of the two region pixels is off by 3 on every channel
    assert second == 0.0
    assert overall == 9.0 / 3


def test_decoded_rows_compare_the_same_windows_with_and_without_the_reference_and_z():
    torch.manual_seed(0)
    task = TaskSpec(
        gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(-1, 1, (2,), np.float32), task_id="PushTiny"
    )
    model = build_model("vrnn", {**VRNN_TINY, "image_size": 8, "reference_frame": True}, task).eval()
    frames = torch.randint(0, 256, (2, 4, 16, 16, 3)).float()
    rows = diagnosis.decoded_rows(model, frames, torch.rand(2, 4, 2) * 2 - 1)
    assert set(rows) == {
        "filtering, blended",
        "filtering, paint only",
        "filtering, z zeroed",
        "imagined, blended",
        "imagined, paint only",
    }
    assert all(value.shape == (2, 3, 16, 16, 3) for value in rows.values())
    assert not np.allclose(rows["filtering, blended"], rows["filtering, paint only"])  # the blend copies the start
    assert not np.allclose(rows["filtering, blended"], rows["imagined, blended"])  # filtering sees every frame


def test_supervision_rows_of_a_motion_head_add_the_predicted_motion_to_the_start():
    torch.manual_seed(0)
    key = "observation.environment_state"
    task = TaskSpec(
        gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
        gym.spaces.Box(-1, 1, (2,), np.float32),
        task_id="PushTiny",
        extra={"supervision_dims": {key: 4}},
    )
    options = {**VRNN_TINY, "image_size": 8, "supervision_keys": [key], "supervision_motion": True}
    model = build_model("vrnn", options, task).eval()
    frames, actions = torch.randint(0, 256, (2, 4, 16, 16, 3)).float(), torch.rand(2, 4, 2) * 2 - 1
    start = {key: np.full((2, 1, 4), 100.0, np.float32)}
    rows = diagnosis.supervision_rows(model, frames, actions, start)
    assert list(rows) == ["imagined: start + predicted motion"]
    _, imagined = diagnosis.filtered_and_imagined(model, frames, actions)
    moved = model.predict_supervision(imagined)[key].detach().numpy()
    np.testing.assert_allclose(rows["imagined: start + predicted motion"][key], 100.0 + moved, rtol=1e-5)


def test_motion_direction_cosine_compares_the_block_centres_displacement():
    values = np.zeros((3, 3, 16), np.float32)  # 3 windows, steps 0..2, 8 keypoints
    values[0, 2, 0::2] = 10.0  # window 0: the block moves +x by 10 px
    values[1, 2, 1::2] = 5.0  # window 1: +y by 5 px
    # window 2 does not move: left out
    pred = np.zeros((3, 2, 16), np.float32)
    pred[0, 1, 0::2] = 3.0  # right direction, wrong length: cosine 1
    pred[1, 1, 1::2] = -2.0  # opposite direction: cosine -1
    cosine, count = diagnosis.motion_direction_cosine(pred, values, 2)
    assert count == 2 and np.isclose(cosine, 0.0)
    assert diagnosis.motion_direction_cosine(pred, values, 1)[1] == 0  # nothing moved by step 1
