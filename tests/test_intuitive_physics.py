"""Intuitive-physics pairs and scoring (worldrl.evaluation.intuitive_physics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldrl.evaluation.intuitive_physics import (
    make_pairs,
    pairwise_accuracy,
    pixel_change_surprise,
    score_pairs,
    wilson_interval,
    window,
)


def test_wilson_interval_matches_the_closed_form_values() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson_interval(0, 20)  # stays inside [0, 1] where the normal interval would not
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.1 < hi < 0.2


def test_pairwise_accuracy_counts_ties_as_half_and_refuses_mismatched_inputs() -> None:
    acc, lo, hi = pairwise_accuracy(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 3.0, 5.0]))
    assert acc == pytest.approx(2.5 / 4) and lo < acc < hi
    with pytest.raises(ValueError, match="equal, non-empty"):
        pairwise_accuracy(np.zeros(2), np.zeros(3))


def test_window_cuts_around_the_edit_or_returns_none() -> None:
    clip = np.arange(10)[:, None]
    assert window(clip, 4, 4, 4)[:, 0].tolist() == list(range(8))
    assert window(clip, 3, 4, 4) is None and window(clip, 8, 4, 4) is None


def test_pixel_change_surprise_is_the_mean_distance_from_the_last_context_frame() -> None:
    w = np.zeros((2, 4, 2, 2, 3), np.uint8)
    w[1, 2:] = 255  # the second window changes completely after its context
    assert pixel_change_surprise(w, 2).tolist() == pytest.approx([0.0, 1.0])


@pytest.fixture(scope="module")
def pairs():
    return make_pairs("collide", 3, steps=40, image_size=32, context=4, target=4, seed=1)


def test_pairs_are_equal_before_the_edit_and_differ_after(pairs) -> None:
    assert len(pairs) == 3
    for p in pairs:
        assert p.possible.shape == p.impossible.shape == (8, 32, 32, 3) and p.possible.dtype == np.uint8
        assert not np.array_equal(p.possible[4:], p.impossible[4:])
        if p.kind in ("vanish", "teleport"):  # rendered edits start exactly at the edit frame
            assert np.array_equal(p.possible[:4], p.impossible[:4])


def test_scores_per_kind_and_overall(pairs) -> None:
    scores = score_pairs(pairs, lambda w: pixel_change_surprise(w, 4))
    assert scores["all"][3] == 3 and sum(v[3] for k, v in scores.items() if k != "all") == 3
    # an oracle that knows which window is edited scores 100%; its reverse 0%
    edited = {p.impossible.tobytes() for p in pairs}
    oracle = score_pairs(pairs, lambda w: np.array([float(x.tobytes() in edited) for x in w]))
    assert oracle["all"][0] == 1.0
    anti = score_pairs(pairs, lambda w: np.array([-float(x.tobytes() in edited) for x in w]))
    assert anti["all"][0] == 0.0


def test_vjepa2_surprise_scores_the_pair_windows(pairs) -> None:
    import gymnasium as gym

    from worldrl.models import build_model
    from worldrl.models.task_spec import TaskSpec
    from worldrl.models.vjepa2.config import VJEPA2Config

    key = "observation.images.front"
    task = TaskSpec.keyed({key: gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)}, gym.spaces.Box(-1, 1, (2,)))
    torch.manual_seed(0)
    model = build_model("vjepa2", VJEPA2Config.tiny(), task).eval()
    windows = np.stack([p.possible for p in pairs] + [p.impossible for p in pairs])
    clips = torch.as_tensor(windows)
    obs = TensorDict({key: clips}, batch_size=clips.shape[:2]) if task.is_keyed else clips
    s = model.surprise(obs, context_slots=4 // model.tubelet)
    assert s.shape == (6,) and torch.isfinite(s).all() and (s > 0).all()
    assert not torch.allclose(s[:3], s[3:])  # the edited later frames change what the predictor is scored on
